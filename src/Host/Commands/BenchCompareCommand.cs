using System.CommandLine;
using Serving.Host.Benchmarks.Suite;
using Serving.Host.Cli;

namespace Serving.Host.Commands;

/// <summary><c>bench compare a.json b.json</c>: two suite runs side by side, flagging differences beyond the measured spread.</summary>
internal static class BenchCompareCommand
{
    public static Command Create()
    {
        var command = new Command("compare", "Compare two bench results.json files (two machines, two commits): ratios B/A, and which differ beyond the measured spread");
        var a = new Argument<string>("a") { Description = "results.json of run A (the baseline)" };
        var b = new Argument<string>("b") { Description = "results.json of run B" };
        command.Arguments.Add(a);
        command.Arguments.Add(b);
        command.SetAction(parse =>
        {
            SuiteResults ra, rb;
            try
            {
                ra = SuiteResults.Load(parse.GetValue(a)!);
                rb = SuiteResults.Load(parse.GetValue(b)!);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
            {
                return CliErrors.Fail(e.Message);
            }
            var (rows, notes) = SuiteCompare.Compare(ra, rb);
            Console.WriteLine($"A: {parse.GetValue(a)} ({ra.Created:yyyy-MM-dd HH:mm} UTC, {ra.Host.Machine}, commit {Short(ra.Git?.Commit)})");
            Console.WriteLine($"B: {parse.GetValue(b)} ({rb.Created:yyyy-MM-dd HH:mm} UTC, {rb.Host.Machine}, commit {Short(rb.Git?.Commit)})");
            Terminal.Out.WriteTable(SuiteCompare.Table(rows));
            int flagged = rows.Count(r => r.Significant);
            Console.WriteLine($"{flagged} of {rows.Count} differ by more than the measured spread (|mean B − mean A| > sd A + sd B)");
            foreach (string n in notes) Console.WriteLine($"note: {n}");
            return rows.Count == 0 ? CliErrors.Fail("no test in common") : 0;
        });
        return command;
    }

    private static string Short(string? commit) => commit is null ? "unknown" : commit[..Math.Min(12, commit.Length)];
}
