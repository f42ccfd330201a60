using System.Reflection;
using ILGPU;
using ILGPU.Backends;
using ILGPU.Backends.EntryPoints;
using ILGPU.Backends.PTX;
using ILGPU.Runtime;
using ILGPU.Runtime.Cuda;
using Serving.Backends.Cuda.Kernels;
using Serving.Backends.Cuda.Kernels.Formats;

namespace Serving.Backends.Cuda.Tests;

/// <summary>
/// Every kernel compiles to PTX with ILGPU's PTX backend, here, without a GPU or driver: the dp4a form for sm_61 and
/// sm_90 (and the inline dp4a is in the code), the portable form for sm_52 (and no dp4a in it). What ptxas and the GPU
/// then make of the PTX is for a run on a GPU (scripts/cuda-gpu-check.sh).
/// </summary>
public sealed class PtxTests
{
    private static readonly Type[] Formats =
        [typeof(F32Format), typeof(F16Format), typeof(BF16Format), typeof(Q8_0Format), typeof(Q4_0Format), typeof(Q5_0Format), typeof(Q4_KFormat), typeof(Q5_KFormat), typeof(Q6_KFormat)];

    /// <summary>Every kernel the device loads, for mode <paramref name="mode"/> (KernelSet's list).</summary>
    internal static IEnumerable<(string Name, MethodInfo Method)> Kernels(Type mode)
    {
        MethodInfo Get(Type t, string name = "Kernel") => t.GetMethod(name, BindingFlags.Public | BindingFlags.Static)!;
        foreach (Type f in Formats)
        {
            yield return ($"Embed<{f.Name}>", Get(typeof(Embed)).MakeGenericMethod(f));
            yield return ($"MatMul<{f.Name}>", Get(typeof(MatMul)).MakeGenericMethod(mode, f));
        }
        yield return ("SumSplits", Get(typeof(MatMul), nameof(MatMul.SumSplits)));
        yield return ("RmsNorm", Get(typeof(RmsNorm)).MakeGenericMethod(mode));
        yield return ("QuantizeActivations", Get(typeof(QuantizeActivations)).MakeGenericMethod(mode));
        yield return ("Rope", Get(typeof(Rope)));
        yield return ("KvWrite", Get(typeof(KvWrite)));
        yield return ("Attention", Get(typeof(Attention)).MakeGenericMethod(mode));
        yield return ("SwiGlu", Get(typeof(SwiGlu)));
        yield return ("Add", Get(typeof(Add)));
        yield return ("Gather", Get(typeof(Gather)));
        yield return ("Argmax", Get(typeof(Argmax)).MakeGenericMethod(mode));
    }

    public static TheoryData<string> Targets() => new() { "sm_52", "sm_61", "sm_90" };

    [Theory, MemberData(nameof(Targets))]
    public void Every_kernel_compiles_to_ptx(string target)
    {
        CudaArchitecture arch = target switch
        {
            "sm_52" => CudaArchitecture.SM_52,
            "sm_61" => CudaArchitecture.SM_61,
            _ => CudaArchitecture.SM_90,
        };
        bool dp4a = target != "sm_52";
        Type mode = dp4a ? typeof(WarpDp4aLanes) : typeof(WarpLanes);
        using var context = Context.Create(b => b.EnableAlgorithms().Optimize(OptimizationLevel.O2));
        using var backend = new PTXBackend(context, new CudaCapabilityContext(arch), arch, CudaInstructionSet.ISA_80, null);
        var failures = new List<string>();
        foreach (var (name, method) in Kernels(mode))
        {
            try
            {
                var kernel = (PTXCompiledKernel)backend.Compile(EntryPointDescription.FromExplicitlyGroupedKernel(method), default);
                string ptx = kernel.PTXAssembly;
                if (!ptx.Contains(".entry", StringComparison.Ordinal)) failures.Add($"{name}: no .entry in the PTX");
                bool hasDp4a = ptx.Contains("dp4a.s32.s32", StringComparison.Ordinal);
                bool quantized = name.StartsWith("MatMul<Q", StringComparison.Ordinal);
                if (quantized && dp4a && !hasDp4a) failures.Add($"{name}: no dp4a for {target}");
                if (hasDp4a && !dp4a) failures.Add($"{name}: dp4a in the portable form for {target}");
                if (name.StartsWith("RmsNorm", StringComparison.Ordinal) && !ptx.Contains("shfl.sync", StringComparison.Ordinal))
                    failures.Add($"{name}: no warp shuffle in the reduction");
            }
            catch (Exception e)
            {
                failures.Add($"{name}: {e.GetType().Name}: {e.Message}");
            }
        }
        Assert.True(failures.Count == 0, string.Join("\n", failures));
    }
}
