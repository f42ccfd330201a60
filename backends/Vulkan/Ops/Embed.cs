using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// Rows of an f32, f16 or bf16 table for token ids (an id out of range gives zeros). Shader: Shaders/embed.comp
/// (constant_id 3 = table type), reading the GGUF values from 32-bit words. A table larger than one binding may span
/// (maxStorageBufferRange) is read in row windows, one dispatch each: a dispatch writes the outputs whose id falls in
/// its window (the first also those whose id is out of range, as zeros). Quantized tables (q8_0, q4_0, q5_0, q4_K,
/// q5_K, q6_K): Shaders/embed_quant.comp, one invocation per (token, 32-element unit), reading the GGUF blocks
/// directly (blocks.glsl, shared with MatMul), same windows and out-of-range rule.
/// </summary>
internal static class Embed
{
    /// <summary>Bindings table (a row window), ids, output; push: n, cols, vocab, first row and rows of the window.</summary>
    public static readonly KernelSpec Kernel = new("embed", Bindings: 3, PushBytes: 20);

    /// <summary>Bindings table (a row window), ids, output; push: tokens, cols, vocab, first row and rows of the
    /// window, row bytes.</summary>
    public static readonly KernelSpec Blocks = new("embed_quant", Bindings: 3, PushBytes: 24);

    private const uint Workgroup = 256;
    private const uint BlocksWorkgroup = 64;

    private static readonly KernelVariant F32 = new("embed_f32_words", OpKind.Embed, DataType.F32, "one element per invocation");
    private static readonly KernelVariant F16 = new("embed_f16_words", OpKind.Embed, DataType.F16, "halves unpacked from 32-bit words");
    private static readonly KernelVariant BF16 = new("embed_bf16_words", OpKind.Embed, DataType.BF16, "bfloat16 unpacked from 32-bit words");

    private struct Push
    {
        public uint N, Cols, Vocab, FirstRow, WindowRows;
    }

    private struct BlocksPush
    {
        public uint Tokens, Cols, Vocab, FirstRow, WindowRows, RowBytes;
    }

    private static readonly DataType[] Quantized = [DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K];

    /// <summary>The variants for table type <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type) => type switch
    {
        DataType.F32 => [F32],
        DataType.F16 => [F16],
        DataType.BF16 => [BF16],
        _ when Quantized.Contains(type) => [new KernelVariant($"embed_{type.Name()}_blocks", OpKind.Embed, type, "GGUF blocks read directly, one invocation per 32-element unit")],
        _ => [],
    };

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, VulkanWeight table, in TensorView tokenIds, in TensorView output, KernelVariant variant)
    {
        if (Quantized.Contains(table.Type))
        {
            RecordBlocks(s, table, tokenIds, output);
            return;
        }
        uint type = table.Type switch
        {
            DataType.F32 => 0u,
            DataType.F16 => 1u,
            DataType.BF16 => 2u,
            _ => throw new NotSupportedException($"Embed of {table.Type.Name()} tables has no shader in this file"),
        };
        long n = (long)output.Rows * output.Cols;
        Elementwise.CheckCount(s, "Embed", Math.Max(n, (long)table.Rows * table.Cols));
        var (x, y) = VulkanStream.Grid((n + Workgroup - 1) / Workgroup);
        long maxRange = s.Accelerator.MaxBindingBytes;
        foreach (var (first, rows, offset) in table.RowWindows(maxRange))
        {
            var window = new BufferRange(table.Buffer, offset, rows * table.RowBytes, false);
            s.Dispatch(Kernel, [Workgroup, 1, 0, type], [window, BufferRange.Read(tokenIds), BufferRange.Write(output)],
                new Push { N = (uint)n, Cols = (uint)table.Cols, Vocab = (uint)table.Rows, FirstRow = (uint)first, WindowRows = (uint)rows }, x, y);
        }
    }

    private static void RecordBlocks(VulkanStream s, VulkanWeight table, in TensorView tokenIds, in TensorView output)
    {
        long units = (table.Cols + 31) / 32;
        long invocations = (long)tokenIds.Cols * units;
        Elementwise.CheckCount(s, "Embed", Math.Max((long)output.Rows * output.Cols, table.Rows * table.RowBytes / 4));
        var (x, y) = VulkanStream.Grid((invocations + BlocksWorkgroup - 1) / BlocksWorkgroup);
        foreach (var (first, rows, offset) in table.RowWindows(s.Accelerator.MaxBindingBytes))
        {
            var window = new BufferRange(table.Buffer, offset, rows * table.RowBytes, false);
            var push = new BlocksPush
            {
                Tokens = (uint)tokenIds.Cols,
                Cols = (uint)table.Cols,
                Vocab = (uint)table.Rows,
                FirstRow = (uint)first,
                WindowRows = (uint)rows,
                RowBytes = (uint)table.RowBytes,
            };
            s.Dispatch(Blocks, [BlocksWorkgroup, 1, 0, (uint)table.Type], [window, BufferRange.Read(tokenIds), BufferRange.Write(output)], push, x, y);
        }
    }
}
