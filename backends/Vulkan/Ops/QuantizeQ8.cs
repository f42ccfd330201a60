using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// x quantized to int8 blocks of 32 for the int8 MatMul family (not an op of the contract: MatMul records it).
/// Shader: Shaders/quantize_q8.comp, one invocation per block: d = amax / 127, q = roundEven(x / d), as the Cpu backend.
/// The result lives in the stream's scratch ring (<see cref="VulkanStream.Scratch"/>) and is reused by every MatMul
/// of the same submission that reads the same x while nothing wrote x (the q, k and v projections, gate and up): one
/// quantization per activation per step.
/// </summary>
internal static class QuantizeQ8
{
    /// <summary>Bindings x, q; push: blocks.</summary>
    public static readonly KernelSpec Kernel = new("quantize_q8", Bindings: 2, PushBytes: 4);

    /// <summary>Words per block of 32: 8 words of packed signed bytes, then the f32 scale.</summary>
    public const int BlockWords = 9;

    private const uint Workgroup = 64;

    private struct Push
    {
        public uint Blocks;
    }

    /// <summary>Bytes x [T, K] takes quantized (K a multiple of 32).</summary>
    public static long Bytes(int rows, int k) => (long)rows * (k / 32) * BlockWords * 4;

    /// <summary>The range holding <paramref name="x"/> quantized: recorded now, or the one recorded earlier in this
    /// submission for the same bytes of x when nothing has written them since.</summary>
    public static BufferRange Record(VulkanStream s, in TensorView x)
    {
        var source = BufferRange.Read(x);
        if (s.FindQuantized(source) is { } done) return done;
        long blocks = (long)x.Rows * (x.Cols / 32);
        Elementwise.CheckCount(s, "MatMul (x quantization)", blocks * BlockWords);
        BufferRange q = s.Scratch(Bytes(x.Rows, x.Cols));
        var (gx, gy) = VulkanStream.Grid((blocks + Workgroup - 1) / Workgroup);
        s.Dispatch(Kernel, [Workgroup], [source, q], new Push { Blocks = (uint)blocks }, gx, gy);
        BufferRange result = q with { Writes = false };
        s.RememberQuantized(source, result);
        return result;
    }
}
