namespace Serving.Conformance.Tests;

/// <summary>The conformance suite on the Vulkan backend (plugins/Serving.Backends.Vulkan), device 0, with the Khronos
/// validation layer on (Infrastructure/Backends.cs, OptionsFor): any validation message fails the test. Ops without a
/// shader yet are skipped with the device's reason.</summary>
public sealed class VulkanConformance() : ConformanceSuite("vulkan")
{
    /// <summary>
    /// The device configurations the in-process run does not reach, each run as a child process of the tier check
    /// (Program.Main) on a focused subset: the device as if it lacked every optional feature (SERVING_VULKAN_DISABLE=all:
    /// no integer dot product, 16-bit or 8-bit storage, float16 or subgroup arithmetic, so every fallback shader runs
    /// and the logical device is opened without those features, so the validation layer flags any shader that still
    /// uses one); the GPU MatMul arrangement (SERVING_VULKAN_MATMUL=tree: lane trees with subgroup shuffles and integer
    /// dot products, which a CPU driver otherwise never runs) with and without the features; and f32 activations for
    /// the int8-family types (SERVING_VULKAN_MATMUL_X=f32).
    /// </summary>
    public static TheoryData<string> FeatureTiers() => new() { "no-features", "gpu-arrangement", "gpu-arrangement-no-features", "f32-activations" };

    /// <summary>
    /// Each configuration of <see cref="FeatureTiers"/> passes the kernel subset it changes (quick coverage, batch
    /// invariance of MatMul included), and the child's device details show the features masked.
    /// </summary>
    [SkippableTheory, MemberData(nameof(FeatureTiers)), Trait("Category", "Slow")]
    public void FallbacksAndArrangementsPass(string tier)
    {
        _ = Device; // skips with the reason when Vulkan cannot run here
        const string disableAll = "all";
        var (environment, ops) = tier switch
        {
            // Features change MatMul (int8 dot, subgroup tree), RmsNorm/Argmax (subgroup), Attention (16-bit storage).
            "no-features" => (new Dictionary<string, string> { ["SERVING_VULKAN_DISABLE"] = disableAll }, "matmul,rmsnorm,argmax,kvwrite,attention"),
            "gpu-arrangement" => (new Dictionary<string, string> { ["SERVING_VULKAN_MATMUL"] = "tree" }, "matmul"),
            "gpu-arrangement-no-features" => (new Dictionary<string, string> { ["SERVING_VULKAN_MATMUL"] = "tree", ["SERVING_VULKAN_DISABLE"] = disableAll }, "matmul"),
            "f32-activations" => (new Dictionary<string, string> { ["SERVING_VULKAN_MATMUL_X"] = "f32" }, "matmul"),
            _ => throw new ArgumentOutOfRangeException(nameof(tier), tier, null),
        };
        var (exitCode, output) = RunChild(environment, ops);
        Assert.True(exitCode == 0, $"{tier} child exited {exitCode}:\n{output}");
        Assert.Contains("all passed", output);
        if (environment.ContainsKey("SERVING_VULKAN_DISABLE"))
        {
            // The features this device has are reported as disabled, and none of them as present.
            static bool Present(string line) => line.StartsWith("uses: ", StringComparison.Ordinal) || line.StartsWith("has, unused: ", StringComparison.Ordinal);
            string has = string.Join("; ", Device.Descriptor.Details.Where(Present));
            string childHas = string.Join("; ", output.Split('\n').Select(l => l.Trim()).Where(Present));
            foreach (string feature in new[] { "integer dot product", "16-bit storage", "8-bit storage", "subgroup arithmetic", "float16" })
            {
                Assert.DoesNotContain(feature, childHas);
                if (has.Contains(feature, StringComparison.Ordinal))
                    Assert.Matches($"lacks \\(disabled by SERVING_VULKAN_DISABLE.*{feature}", output);
            }
        }
    }
}
