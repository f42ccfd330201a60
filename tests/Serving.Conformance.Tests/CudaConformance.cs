namespace Serving.Conformance.Tests;

/// <summary>
/// The conformance suite on the Cuda backend's kernels. Without a GPU here, the backend's test device runs them:
/// ILGPU's CPU accelerator as cuda:0 (serial lanes: each unit's 32 lanes computed in turn and added in the warp
/// reduction's order), listed only when SERVING_CUDA_TEST_DEVICE=cpu, which this class sets unless the variable is
/// already set — so `SERVING_CUDA_TEST_DEVICE=gpu dotnet test --filter CudaConformance` runs the same suite on a real
/// GPU (skipped, with the probe's reason, where there is none). The warp form is checked against this one bit for bit
/// by CudaWarpFormTests.
/// </summary>
public sealed class CudaConformance : ConformanceSuite
{
    static CudaConformance() => CudaTestDevice.Select();

    /// <summary>The suite on "cuda".</summary>
    public CudaConformance() : base("cuda")
    {
    }
}

/// <summary>Turns the Cuda plugin's test device on for this process (SERVING_CUDA_TEST_DEVICE=cpu) unless the variable
/// was set by whoever started the tests.</summary>
internal static class CudaTestDevice
{
    /// <summary>The variable (CudaPlugin.TestDeviceVariable; the suite does not reference the plugin).</summary>
    public const string Variable = "SERVING_CUDA_TEST_DEVICE";

    /// <summary>Sets the variable to "cpu" when unset.</summary>
    public static void Select()
    {
        if (string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable)))
            Environment.SetEnvironmentVariable(Variable, "cpu");
    }
}
