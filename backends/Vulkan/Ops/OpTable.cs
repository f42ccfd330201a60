using System.Collections.Concurrent;
using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// Which ops the device runs, for which types, with which variants: one line per op, each answered by the op's own
/// file (<c>Variants(device, type)</c>; empty = unsupported). An op without a shader yet lists nothing, so the
/// front end refuses it and the conformance suite skips it with the reason given here.
/// </summary>
internal static class OpTable
{
    private static readonly ConcurrentDictionary<(VulkanAccelerator, OpKind, DataType), IReadOnlyList<KernelVariant>> Cache = new();

    /// <summary>Types a weight (MatMul, Embed table) may have.</summary>
    public static bool IsWeightType(DataType type) => type is DataType.F32 or DataType.F16 or DataType.BF16 or DataType.Q8_0 or DataType.Q4_0
        or DataType.Q5_0 or DataType.Q4_K or DataType.Q5_K or DataType.Q6_K;

    /// <summary>The variants of <paramref name="op"/> for <paramref name="type"/> on <paramref name="device"/> (default first).</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, OpKind op, DataType type)
        => Cache.GetOrAdd((device, op, type), static key => Build(key.Item1, key.Item2, key.Item3));

    private static IReadOnlyList<KernelVariant> Build(VulkanAccelerator device, OpKind op, DataType type) => op switch
    {
        OpKind.Add => Add.Variants(device, type),
        OpKind.SwiGlu => SwiGlu.Variants(device, type),
        OpKind.RmsNorm => RmsNorm.Variants(device, type),
        OpKind.Rope => Rope.Variants(device, type),
        OpKind.Copy => Copy.Variants(device, type),
        OpKind.Argmax => Argmax.Variants(device, type),
        OpKind.Gather => Gather.Variants(device, type),
        OpKind.KvWrite => KvWrite.Variants(device, type),
        OpKind.Embed => Embed.Variants(device, type),
        OpKind.MatMul => MatMul.Variants(device, type),
        OpKind.Attention => Attention.Variants(device, type),
        _ => [],
    };

    /// <summary>Whether <paramref name="query"/> runs, and if not, why.</summary>
    public static OpSupport Supports(VulkanAccelerator device, in OpQuery query)
    {
        if (Variants(device, query.Op, query.Type).Count > 0)
        {
            if (query.Op is OpKind.Embed && !IsWeightType(query.Type))
                return OpSupport.No($"{query.Type.Name()} is not a weight type");
            if (query.Op is OpKind.MatMul or OpKind.Embed && query.Type.IsQuantized() && query.Cols % query.Type.BlockSize() != 0)
                return OpSupport.No($"{query.Type.Name()} rows are whole blocks of {query.Type.BlockSize()}, not {query.Cols} elements");
            if (query.Op is OpKind.Attention && Attention.Refuses(device, query) is { } why)
                return OpSupport.No(why);
            if (query.Op is OpKind.Attention or OpKind.KvWrite && PlaneRefuses(device, query) is { } tooLarge)
                return OpSupport.No(tooLarge);
            return OpSupport.Yes;
        }
        return query.Op switch
        {
            OpKind.MatMul => OpSupport.No($"{query.Type.Name()} is not a weight type"),
            OpKind.Attention => OpSupport.No($"the KV cache stores f16 or f32, not {query.Type.Name()}"),
            OpKind.Embed => OpSupport.No($"{query.Type.Name()} is not a weight type"),
            OpKind.KvWrite => OpSupport.No($"the KV cache stores f16 or f32, not {query.Type.Name()}"),
            OpKind.Copy => OpSupport.No($"unknown type {query.Type.Name()}"),
            _ => OpSupport.No($"{query.Op} works on f32, not {query.Type.Name()}"),
        };
    }

    /// <summary>
    /// KvWrite and Attention bind one layer's K (and V) plane whole: a cache holding one sequence's whole context
    /// (<see cref="OpQuery.Rows"/> positions) must fit one storage-buffer binding (maxStorageBufferRange), or the model
    /// is refused when it loads.
    /// </summary>
    private static string? PlaneRefuses(VulkanAccelerator device, in OpQuery query)
    {
        if (query.Rows <= 0 || query.KvHeads <= 0 || query.HeadDim <= 0) return null;
        long rowElements = (long)query.KvHeads * query.HeadDim;
        long rowBytes = 4 * (query.Type == DataType.F16 ? (rowElements + 1) / 2 : rowElements);
        long plane = query.Rows * rowBytes;
        return plane > device.MaxBindingBytes
            ? $"a context of {query.Rows} positions needs {plane} bytes per layer's K plane, more than one binding spans on {device.Descriptor.Id} " +
              $"({device.MaxBindingBytes} bytes, maxStorageBufferRange): at most {device.MaxBindingBytes / rowBytes} positions"
            : null;
    }

    /// <summary>A one-variant list when <paramref name="type"/> is F32, else empty: the element-wise ops' shape.</summary>
    public static IReadOnlyList<KernelVariant> F32Only(DataType type, params KernelVariant[] variants) => type == DataType.F32 ? variants : [];
}
