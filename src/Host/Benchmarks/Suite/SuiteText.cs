using System.Globalization;
using System.Text;
using Serving.Host.Cli;
using Spectre.Console;

namespace Serving.Host.Benchmarks.Suite;

/// <summary>The suite's results as text: the terminal table and results.md.</summary>
internal static class SuiteText
{
    private static readonly string[] Headers =
        ["device", "test", "tokens/s", "tok/s per seq", "ms/token", "floor tok/s", "of floor", "GB/s", "GFLOP/s", "J/token", "tokens/J"];

    /// <summary>One line per device: what it is, its measured peaks, its meter.</summary>
    public static IEnumerable<string> DeviceLines(SuiteResults r)
    {
        foreach (var d in r.Devices)
        {
            string peaks = d.Bandwidth is null ? "" : $"; bandwidth {d.Bandwidth.Value:0.0} GB/s, MatMul {r.Model.WeightType} {d.Compute?.Value:0.0} GFLOP/s";
            string meter = d.Meter is null ? "energy not measured (no meter)" : $"meter {d.Meter.Source} ({d.Meter.Kind})";
            yield return $"{d.Id}: {d.Name} ({d.DriverVersion}){peaks}; {meter}{(d.Error is null ? "" : $"; FAILED: {d.Error}")}";
        }
        if (r.ExternalMeter is { } x) yield return $"external meter: {x.Source} ({x.Kind})";
    }

    /// <summary>The results table: one row per device and test, mean ± standard deviation over the repetitions.</summary>
    public static Table Table(SuiteResults r)
    {
        bool system = r.ExternalMeter is not null;
        var table = Tables.Create(system ? [.. Headers, "system J/token"] : Headers, numeric: true);
        foreach (var row in Rows(r))
            table.AddCells(row);
        return table;
    }

    /// <summary>The table's cells, row by row.</summary>
    public static IEnumerable<string[]> Rows(SuiteResults r)
    {
        bool system = r.ExternalMeter is not null;
        foreach (var d in r.Devices)
            foreach (var t in d.Tests)
            {
                var cells = new List<string>
                {
                    d.Id, t.Name, S(t.TokensPerSecond, 2), S(t.TokensPerSecondPerSequence, 2), S(t.MsPerToken, 3),
                    t.FloorTokensPerSecond is { } f ? f.ToString("0.0", CultureInfo.InvariantCulture) : "-",
                    t.OfFloor is { } o ? $"{o * 100:0}% ({t.FloorBound})" : "-",
                    S(t.AchievedGBps, 2), S(t.AchievedGFlops, 2),
                    Energy(t.JoulesPerToken, t, 4), Energy(t.TokensPerJoule, t, 2),
                };
                if (system) cells.Add(t.SystemJoulesPerToken is { } s ? s.Format(4) : "not measured");
                yield return [.. cells];
            }
    }

    private static string S(Stat? s, int decimals) => s is null ? "-" : s.Format(decimals);

    private static string Energy(Stat? s, TestResult t, int decimals) =>
        s is not null ? $"{s.Format(decimals)}{(t.EnergyMethod == "counter" ? "" : $" ({t.EnergyMethod})")}"
        : t.EnergyMethod == "not measured" ? "not measured" : "no reading";

    /// <summary>results.md: provenance, devices, results, op profiles.</summary>
    public static string Markdown(SuiteResults r)
    {
        var md = new StringBuilder();
        md.AppendLine($"# Serving bench: {r.Model.Name} ({r.Model.WeightType}, {Units.Bytes(r.Model.WeightBytes)})");
        md.AppendLine();
        md.AppendLine($"- run: {r.Created:yyyy-MM-dd HH:mm:ss} UTC on {r.Host.Machine} ({r.Host.Os}, {r.Host.LogicalCpus} logical CPUs, {r.Host.Runtime})");
        md.AppendLine($"- command: `{r.CommandLine}`");
        md.AppendLine($"- build: Serving {r.Host.ServingVersion}, commit {r.Git?.Commit ?? "unknown"}{(r.Git?.Dirty == true ? " (local changes)" : "")}");
        md.AppendLine($"- workload: pp{r.Settings.Prompt} (one sequence), tg{r.Settings.Gen} at batch {string.Join(", ", r.Settings.Batches)} " +
                      $"(sequences decoding from an empty context), {r.Settings.Repetitions} repetitions, KV cache {r.Settings.KvType}; mean ± standard deviation");
        md.AppendLine($"- external meter: {(r.ExternalMeter is { } x ? $"{x.Source} ({x.Kind})" : "none")}");
        md.AppendLine();
        md.AppendLine("## Devices");
        md.AppendLine();
        md.AppendLine("| device | name | driver | fingerprint | bandwidth GB/s | MatMul GFLOP/s | meter | tuner profile |");
        md.AppendLine("|---|---|---|---|---|---|---|---|");
        foreach (var d in r.Devices)
            md.AppendLine($"| {d.Id} | {Cell(d.Name)} | {Cell(d.DriverVersion)} | `{Cell(d.Fingerprint)}` | {Peak(d.Bandwidth)} | {Peak(d.Compute)} | " +
                          $"{(d.Meter is null ? "not measured" : Cell($"{d.Meter.Source} ({d.Meter.Kind})"))} | {(d.TunerProfile is null ? "none" : "yes")} |");
        foreach (var d in r.Devices.Where(d => d.Error is not null))
            md.AppendLine($"\n**{d.Id} failed:** {Cell(d.Error!)}");
        md.AppendLine();
        md.AppendLine("## Results");
        md.AppendLine();
        bool system = r.ExternalMeter is not null;
        string[] headers = system ? [.. Headers, "system J/token"] : Headers;
        md.AppendLine("| " + string.Join(" | ", headers) + " |");
        md.AppendLine("|" + string.Concat(headers.Select((_, i) => i < 2 ? "---|" : "---:|")));
        foreach (var row in Rows(r)) md.AppendLine("| " + string.Join(" | ", row.Select(Cell)) + " |");
        md.AppendLine();
        md.AppendLine("Floors: the fastest the device's own measured peaks allow — weight bytes ÷ measured bandwidth or FLOPs ÷ measured " +
                      "MatMul throughput, whichever is slower (the bound named). Energy only from real meters; \"not measured\" where the device has none.");
        foreach (var d in r.Devices.Where(d => d.Ops is not null))
        {
            md.AppendLine();
            md.AppendLine($"## Time per op, {d.Id} (decode step at batch {d.Ops!.Batch}, device timestamps, mean of {d.Ops.Steps} steps)");
            md.AppendLine();
            if (d.Ops.Note is not null)
            {
                md.AppendLine(d.Ops.Note);
                continue;
            }
            md.AppendLine("| op | ms per step | share | ops per step |");
            md.AppendLine("|---|---:|---:|---:|");
            foreach (var o in d.Ops.PerOp)
                md.AppendLine($"| {o.Op} | {o.MsPerStep:0.000} | {o.MsPerStep / d.Ops.StepMs:P1} | {o.CountPerStep:0.#} |");
            md.AppendLine($"| total | {d.Ops.StepMs:0.000} | | |");
        }
        return md.ToString();
    }

    private static string Peak(Peak? p) => p is null ? "-" : $"{p.Value:0.0} (samples {string.Join(" ", p.Samples.Select(s => s.ToString("0.0", CultureInfo.InvariantCulture)))})";

    private static string Cell(string s) => s.Replace("|", "\\|", StringComparison.Ordinal).Replace("\n", " ", StringComparison.Ordinal);
}
