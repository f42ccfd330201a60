using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// Paged causal GQA attention over many sequences per step, on an f16 (packed halves) or f32
/// <see cref="VulkanKvCache"/>. Shader: Shaders/attention.comp, one workgroup of 64 per (query row, head): scores of a
/// chunk of up to <see cref="Chunk"/> positions in shared memory, softmax rescaled across chunks (longer contexts loop),
/// the weighted sum of V per head dimension in position order. A row's arithmetic depends only on its own position, so
/// the op is batch-invariant. An f16 cache is read two halves at a time (even Dh), from uint words with
/// unpackHalf2x16, or as f16vec2 in the shader's STORAGE16 build (attention.storage16.spv), offered where the device
/// has 16-bit storage (the default there, except on CPU drivers: DeviceFacts.PrefersStorage16); both give the same
/// bits. Binds only the layer's K and V planes; positions, sequence rows and block ids are clamped
/// in the shader, so bad index values never read outside them.
/// </summary>
internal static class Attention
{
    /// <summary>Bindings q, K plane, V plane, positions, sequence, block tables, output; push: T, H, Hkv, Dh, block size,
    /// blocks, table columns, sequences, row stride (elements), scale.</summary>
    public static readonly KernelSpec Kernel = new("attention", Bindings: 7, PushBytes: 40);

    /// <summary>The 16-bit-storage build of the same shader (f16 caches read as f16vec2).</summary>
    public static readonly KernelSpec Storage16 = Kernel with { Shader = "attention.storage16" };

    private const uint Workgroup = 64;  // a power of two (the shader's tree reductions)
    private const uint Chunk = 1024;    // positions whose scores sit in shared memory at once
    private const int MaxHeadDim = 256;

    private static readonly KernelVariant F16 = new("attention_f16_chunk1024", OpKind.Attention, DataType.F16,
        "packed-half cache, one workgroup per (row, head), softmax over chunks of 1024 positions; halves read through 16-bit storage where the device has it, except on CPU drivers");

    private static readonly KernelVariant F16Words = new("attention_f16_words_chunk1024", OpKind.Attention, DataType.F16,
        "as the default, halves read from 32-bit words (unpackHalf2x16)");

    private static readonly KernelVariant F16Storage16 = new("attention_f16_storage16_chunk1024", OpKind.Attention, DataType.F16,
        "as the default, halves read as f16vec2 (16-bit storage)");

    private static readonly KernelVariant F32 = new("attention_f32_chunk1024", OpKind.Attention, DataType.F32,
        "f32 cache, one workgroup per (row, head), softmax over chunks of 1024 positions");

    private struct Push
    {
        public uint T, H, Hkv, Dh, BlockSize, Blocks, TableCols, Sequences, RowStride;
        public float Scale;
    }

    /// <summary>The variants for cache type <paramref name="type"/>.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type)
        => type == DataType.F16 ? device.Facts.Storage16 ? [F16, F16Storage16, F16Words] : [F16, F16Words] : type == DataType.F32 ? [F32] : [];

    /// <summary>Why the device cannot run attention of this shape, or null.</summary>
    public static string? Refuses(VulkanAccelerator device, in OpQuery query)
    {
        if (query.HeadDim > MaxHeadDim) return $"head dim {query.HeadDim} exceeds the shader's {MaxHeadDim}";
        return null;
    }

    /// <summary>Records the op (arguments checked by the front end; index values are clamped by the shader).</summary>
    public static void Record(VulkanStream s, in TensorView q, VulkanKvCache cache, int layer, in AttentionBatch batch, in TensorView output, KernelVariant variant)
    {
        KvCacheLayout layout = cache.Layout;
        if (layout.HeadDim > MaxHeadDim)
            throw new ArgumentException($"Attention: head dim {layout.HeadDim} exceeds the Vulkan shader's {MaxHeadDim}");
        if (cache.PlaneBytes > s.Accelerator.MaxBindingBytes)
            throw new ArgumentException($"Attention: one layer's K plane is {cache.PlaneBytes} bytes, more than one binding may span on {s.Device.Descriptor.Id} ({s.Accelerator.MaxBindingBytes})");
        if (q.Rows > 65535)
            throw new ArgumentException($"Attention: {q.Rows} query rows exceed the 65535 workgroups one dispatch dimension holds");
        Elementwise.CheckCount(s, "Attention", Math.Max((long)q.Rows * q.Cols, 2 * cache.PlaneBytes / 4));
        bool f16 = layout.Type == DataType.F16;
        uint dimsPerInvocation = (uint)((layout.HeadDim + Workgroup - 1) / Workgroup);
        var push = new Push
        {
            T = (uint)q.Rows,
            H = (uint)batch.Heads,
            Hkv = (uint)layout.KvHeads,
            Dh = (uint)layout.HeadDim,
            BlockSize = (uint)layout.BlockSize,
            Blocks = (uint)layout.Blocks,
            TableCols = (uint)batch.BlockTables.Cols,
            Sequences = (uint)batch.BlockTables.Rows,
            RowStride = (uint)(f16 ? 2 * cache.RowWords : cache.RowWords),
            Scale = batch.Scale,
        };
        bool storage16 = f16 && (variant.Name == F16Storage16.Name || (variant.Name == F16.Name && s.Accelerator.Facts.PrefersStorage16));
        s.Dispatch(storage16 ? Storage16 : Kernel, [Workgroup, 1, 0, f16 ? 1u : 0u, Chunk, dimsPerInvocation],
            [BufferRange.Read(q),
             BufferRange.Cache(cache, cache.KOffset(layer), cache.PlaneBytes, writes: false),
             BufferRange.Cache(cache, cache.VOffset(layer), cache.PlaneBytes, writes: false),
             BufferRange.Read(batch.Positions), BufferRange.Read(batch.Sequence), BufferRange.Read(batch.BlockTables),
             BufferRange.Write(output)],
            push, (uint)q.Rows, (uint)batch.Heads);
    }
}
