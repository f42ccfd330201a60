using System.Runtime.Intrinsics;
using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;
using Serving.Conformance.Tests.Infrastructure;

namespace Serving.Conformance.Tests;

/// <summary>
/// Entry point of the test assembly when run as a program, which only the SIMD-tier test does:
/// <c>dotnet exec Serving.Conformance.Tests.dll tier-check &lt;backend&gt; [ops]</c> runs the kernel subset (MatMul with its batch invariance and, for float weights, ±∞ and NaN, RmsNorm, SwiGlu, Add, Argmax, KvWrite and Attention per cache type) on the backend with
/// whatever switches the environment sets (hardware intrinsics for the Cpu backend; SERVING_VULKAN_DISABLE and the
/// MatMul arrangement for Vulkan), prints the tier it ran at, the device's details and each result, and exits
/// 0 when all passed, 1 when a case failed, 2 on bad usage, 3 when the backend is unavailable. <c>ops</c>, a comma
/// list of op names (matmul, rmsnorm, swiglu, add, argmax, kvwrite, attention), limits the subset.
/// <c>dotnet exec Serving.Conformance.Tests.dll suite &lt;Class&gt;</c> runs one suite class without a test host
/// (<see cref="SuiteRunner"/>: for the GPU machine, which carries the runtime but no SDK).
/// </summary>
public static class Program
{
    /// <summary>The command the tier test passes.</summary>
    public const string TierCheckCommand = "tier-check";

    /// <summary>Runs the tier check; see the class summary for arguments and exit codes.</summary>
    public static int Main(string[] args)
    {
        if (args is ["suite", var suite])
            return SuiteRunner.Run(suite);
        if (args is not ([TierCheckCommand, _] or [TierCheckCommand, _, _]))
        {
            Console.Error.WriteLine($"usage: dotnet exec Serving.Conformance.Tests.dll {TierCheckCommand} <backend> [op,op,...] | suite <Class>  (or run the suite with dotnet test)");
            return 2;
        }
        string backend = args[1];
        var only = args.Length > 2 ? args[2].Split(',', StringSplitOptions.RemoveEmptyEntries).Select(o => o.ToLowerInvariant()).ToHashSet() : null;
        bool Wanted(OpKind op) => only is null || only.Contains(op.ToString().ToLowerInvariant());
        Console.WriteLine($"simd: Vector512={Vector512.IsHardwareAccelerated} Vector256={Vector256.IsHardwareAccelerated} Vector128={Vector128.IsHardwareAccelerated}");
        var handle = Backends.Get(backend);
        if (handle.Device is null)
        {
            Console.WriteLine($"unavailable: {handle.UnavailableReason}");
            return 3;
        }
        Console.WriteLine($"device: {handle.Device.Descriptor.Id}, {handle.Device.Descriptor.DriverVersion}");
        foreach (string line in handle.Device.Descriptor.Details) Console.WriteLine($"  {line}");
        var checks = new OpChecks(handle.Device, backend);
        var runs = new List<(string Name, Func<CaseLog> Run)>();
        foreach (var type in OpChecks.WeightTypes)
            if (Wanted(OpKind.MatMul) && checks.Unsupported(OpKind.MatMul, type) is null)
            {
                runs.Add(($"MatMul {type.Name()}", () => checks.MatMul(type, Coverage.Quick)));
                runs.Add(($"MatMul {type.Name()} batch invariance", () => checks.MatMulBatchInvariance(type)));
                if (!type.IsQuantized())
                    runs.Add(($"MatMul {type.Name()} weight ±∞ and NaN", () => checks.MatMulWeightSpecials(type)));
            }
        if (Wanted(OpKind.RmsNorm) && checks.Unsupported(OpKind.RmsNorm, DataType.F32) is null) runs.Add(("RmsNorm", () => checks.RmsNorm(Coverage.Quick)));
        if (Wanted(OpKind.SwiGlu) && checks.Unsupported(OpKind.SwiGlu, DataType.F32) is null) runs.Add(("SwiGlu", () => checks.SwiGlu(Coverage.Quick)));
        if (Wanted(OpKind.Add) && checks.Unsupported(OpKind.Add, DataType.F32) is null) runs.Add(("Add", () => checks.Add(Coverage.Quick)));
        if (Wanted(OpKind.Argmax) && checks.Unsupported(OpKind.Argmax, DataType.F32) is null) runs.Add(("Argmax", () => checks.Argmax(Coverage.Quick)));
        foreach (var type in OpChecks.KvTypes)
            if (checks.Unsupported(OpKind.Attention, type) is null && checks.Unsupported(OpKind.KvWrite, type) is null)
            {
                if (Wanted(OpKind.KvWrite)) runs.Add(($"KvWrite {type.Name()}", () => checks.KvWrite(type, Coverage.Quick)));
                if (Wanted(OpKind.Attention)) runs.Add(($"Attention {type.Name()}", () => checks.Attention(type, Coverage.Quick)));
            }
        if (Wanted(OpKind.Add) && checks.Unsupported(OpKind.Add, DataType.F32) is null) runs.Add(("Add broadcast", () => checks.AddBroadcast(Coverage.Quick)));

        int failed = 0;
        foreach (var (name, run) in runs)
        {
            var log = run();
            failed += log.Failures.Count;
            Console.WriteLine($"{(log.Failures.Count == 0 ? "PASS" : "FAIL")} {name}: {log.Cases - log.Failures.Count}/{log.Cases} cases");
            foreach (var failure in log.Failures.Take(10)) Console.WriteLine("  " + failure);
        }
        if (runs.Count == 0) { Console.WriteLine("nothing supported to check"); return 1; }
        Console.WriteLine(failed == 0 ? "all passed" : $"{failed} cases failed");
        handle.Device.Dispose();
        return failed == 0 ? 0 : 1;
    }
}
