using BenchmarkDotNet.Running;

namespace Serving.Bench;

/// <summary>
/// <c>ops [--quick] [--backend NAME]</c>: the quick op table (µs/op, GB/s per op/type/variant, ~30 s with --quick).
/// <c>matmul [--quick] [--size N] [--types f16,q4_0] [--variants] [--thread-time]</c>: MatMul alone at N = K = size, T = 1 and 64;
/// --thread-time times by the calling thread's CPU time (Linux) and keeps the fastest batch: with
/// DOTNET_PROCESSOR_COUNT=1 (one worker) that is the kernel's own cost on a machine other jobs load.
/// <c>attention [--quick|--verify] [--thread-time] [--backend NAME]</c>: decode attention, f32 against f16 cache, over a sweep of
/// shapes; --verify checks instead that both give the same bits on half-representable values (exit code 1 if not).
/// Anything else goes to BenchmarkDotNet (e.g. <c>--filter *MatMul*</c>); its suites use the backend named by
/// SERVING_BENCH_BACKEND (default cpu). Run in Release.
/// </summary>
public static class Program
{
    /// <summary>Entry point.</summary>
    public static int Main(string[] args)
    {
        if (args.Length > 0 && args[0] is "ops" or "attention" or "matmul")
        {
            bool quick = args.Contains("--quick");
            int at = Array.IndexOf(args, "--backend");
            string backend = at >= 0 && at + 1 < args.Length ? args[at + 1] : BenchConfig.Backend;
            try
            {
                var device = BackendLoader.Open(backend);
                int rc = 0;
                if (args[0] == "matmul")
                {
                    int size = Arg(args, "--size") is { } v ? int.Parse(v, System.Globalization.CultureInfo.InvariantCulture) : 2048;
                    var types = (Arg(args, "--types") ?? "f32,q8_0,q4_0").Split(',')
                        .Select(n => Enum.GetValues<Serving.Abstractions.DataType>().First(d => Serving.Abstractions.DataTypes.Name(d) == n)).ToList();
                    new OpsTable(device, TimeSpan.FromSeconds(quick ? 0.25 : 1.5), args.Contains("--thread-time")).RunMatMul(size, types, args.Contains("--variants"));
                }
                else if (args[0] == "ops") new OpsTable(device, TimeSpan.FromSeconds(quick ? 0.25 : 1.5)).Run();
                else if (args.Contains("--verify")) rc = new AttentionSweep(device, TimeSpan.Zero).Verify() == 0 ? 0 : 1;
                else new AttentionSweep(device, TimeSpan.FromSeconds(quick ? 0.5 : 2), args.Contains("--thread-time")).Run();
                device.Dispose();
                return rc;
            }
            catch (InvalidOperationException e)
            {
                Console.Error.WriteLine(e.Message);
                return 3;
            }
        }
        BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args); // suites carry [Config(typeof(BenchConfig))]
        return 0;
    }

    private static string? Arg(string[] args, string name)
    {
        int at = Array.IndexOf(args, name);
        return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
    }
}
