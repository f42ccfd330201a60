using System.Globalization;
using Serving.Host.Cli;
using Spectre.Console;

namespace Serving.Host.Benchmarks.Suite;

/// <summary>One test compared between two runs.</summary>
/// <param name="Device">Device id in A (and B's when it differs).</param>
/// <param name="Test">Test name.</param>
/// <param name="A">Tokens/s in A.</param>
/// <param name="B">Tokens/s in B.</param>
/// <param name="Ratio">B ÷ A of the means.</param>
/// <param name="Significant">True when the means differ by more than the two standard deviations together (the
/// mean ± sd ranges do not overlap): a difference larger than the measured spread.</param>
/// <param name="EnergyA">Tokens per joule in A, or null.</param>
/// <param name="EnergyB">Tokens per joule in B, or null.</param>
/// <param name="EnergySignificant">As <paramref name="Significant"/>, for tokens per joule (false when either is missing).</param>
internal sealed record Comparison(string Device, string Test, Stat A, Stat B, double Ratio, bool Significant, Stat? EnergyA, Stat? EnergyB, bool EnergySignificant);

/// <summary>
/// <c>bench compare a.json b.json</c>: the same tests of two runs side by side (two machines, two commits), the ratio
/// B ÷ A, and a flag where the difference exceeds the measured spread. Devices are matched by id, then by fingerprint,
/// and when each run has exactly one device, those two are compared (two machines' cpu:0 need no matching).
/// </summary>
internal static class SuiteCompare
{
    /// <summary>True when |mean B − mean A| is larger than sd A + sd B.</summary>
    public static bool Differs(Stat a, Stat b) => Math.Abs(b.Mean - a.Mean) > a.StdDev + b.StdDev;

    /// <summary>The comparisons, and notes on what could not be matched.</summary>
    public static (List<Comparison> Rows, List<string> Notes) Compare(SuiteResults a, SuiteResults b)
    {
        var rows = new List<Comparison>();
        var notes = new List<string>();
        if (a.Model.Name != b.Model.Name || a.Model.WeightType != b.Model.WeightType)
            notes.Add($"different models: A {a.Model.Name} ({a.Model.WeightType}), B {b.Model.Name} ({b.Model.WeightType})");
        if (a.Settings.Prompt != b.Settings.Prompt || a.Settings.Gen != b.Settings.Gen)
            notes.Add($"different workloads: A pp{a.Settings.Prompt}/tg{a.Settings.Gen}, B pp{b.Settings.Prompt}/tg{b.Settings.Gen} (tests match by name only)");
        var pairs = new List<(DeviceResults A, DeviceResults B)>();
        foreach (var da in a.Devices)
        {
            var db = b.Devices.FirstOrDefault(d => d.Id == da.Id) ?? b.Devices.FirstOrDefault(d => d.Fingerprint.Length > 0 && d.Fingerprint == da.Fingerprint);
            if (db is null && a.Devices.Count == 1 && b.Devices.Count == 1) db = b.Devices[0];
            if (db is null) notes.Add($"{da.Id}: not in B");
            else pairs.Add((da, db));
        }
        foreach (var db in b.Devices.Where(d => pairs.All(p => p.B != d))) notes.Add($"{db.Id}: not in A");
        foreach (var (da, db) in pairs)
        {
            if (da.Fingerprint != db.Fingerprint)
                notes.Add($"{da.Id}: different hardware or driver (A {da.Name}, {da.DriverVersion}; B {db.Name}, {db.DriverVersion})");
            foreach (var ta in da.Tests)
            {
                var tb = db.Tests.FirstOrDefault(t => t.Name == ta.Name);
                if (tb is null)
                {
                    notes.Add($"{da.Id} {ta.Name}: not in B");
                    continue;
                }
                if (ta.TokensPerSecond is not { } sa || tb.TokensPerSecond is not { } sb) continue;
                bool energy = ta.TokensPerJoule is not null && tb.TokensPerJoule is not null;
                rows.Add(new Comparison(da.Id == db.Id ? da.Id : $"{da.Id} / {db.Id}", ta.Name, sa, sb, sb.Mean / sa.Mean, Differs(sa, sb),
                    ta.TokensPerJoule, tb.TokensPerJoule, energy && Differs(ta.TokensPerJoule!, tb.TokensPerJoule!)));
            }
        }
        return (rows, notes);
    }

    /// <summary>The comparison as a table.</summary>
    public static Table Table(List<Comparison> rows)
    {
        var table = Tables.Create(["device", "test", "A tokens/s", "B tokens/s", "B/A", "beyond spread", "A tokens/J", "B tokens/J", "B/A tokens/J"], numeric: true);
        foreach (var r in rows)
            table.AddCells(r.Device, r.Test, r.A.Format(), r.B.Format(), r.Ratio.ToString("0.000", CultureInfo.InvariantCulture) + "x",
                r.Significant ? (r.Ratio > 1 ? "yes: B faster" : "yes: B slower") + (r.A.N < 2 || r.B.N < 2 ? " (1 sample: no spread)" : "") : "no",
                r.EnergyA?.Format() ?? "not measured", r.EnergyB?.Format() ?? "not measured",
                r.EnergyA is { } ea && r.EnergyB is { } eb ? $"{eb.Mean / ea.Mean:0.000}x{(r.EnergySignificant ? " *" : "")}" : "-");
        return table;
    }
}
