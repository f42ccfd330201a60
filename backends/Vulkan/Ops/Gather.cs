using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>output[r, :] = source[rows[r], :] (a row id out of range gives zeros). Shader: Shaders/gather.comp.</summary>
internal static class Gather
{
    /// <summary>Bindings source, rows, output; push: n, cols, source rows.</summary>
    public static readonly KernelSpec Kernel = new("gather", Bindings: 3, PushBytes: 12);

    private const uint Workgroup = 256;

    private static readonly KernelVariant Default = new("gather_f32_rows", OpKind.Gather, DataType.F32, "one element per invocation");

    private struct Push
    {
        public uint N, Cols, SourceRows;
    }

    /// <summary>The variants for <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type) => OpTable.F32Only(type, Default);

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView source, in TensorView rows, in TensorView output, KernelVariant variant)
    {
        long n = (long)output.Rows * output.Cols;
        Elementwise.CheckCount(s, "Gather", Math.Max(n, (long)source.Rows * source.Cols));
        var (x, y) = VulkanStream.Grid((n + Workgroup - 1) / Workgroup);
        s.Dispatch(Kernel, [Workgroup], [BufferRange.Read(source), BufferRange.Read(rows), BufferRange.Write(output)],
            new Push { N = (uint)n, Cols = (uint)source.Cols, SourceRows = (uint)source.Rows }, x, y);
    }
}
