using ILGPU;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>KvWrite: k[t, :] and v[t, :] into slot slots[t] of a layer, rounded to the cache's type (f16: to nearest,
/// ties to even, overflow to ±∞, by <see cref="Scalars.FloatToHalf"/>); one thread per element. A slot outside the
/// layer writes nothing.</summary>
internal static class KvWrite
{
    /// <summary>The kernel: total = T · Hkv·Dh elements.</summary>
    public static void Kernel(ArrayView<float> k, ArrayView<float> v, ArrayView<int> slots, ArrayView<float> cacheF32, ArrayView<ushort> cacheF16, KvPlaneShape plane, long total)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            long t = i / plane.RowElements;
            int c = (int)(i % plane.RowElements);
            int slot = slots[t];
            if ((uint)slot >= (uint)plane.Slots) continue;
            long kAt = plane.KOffset + (long)slot * plane.RowElements + c;
            long vAt = plane.VOffset + (long)slot * plane.RowElements + c;
            if (plane.F16 != 0)
            {
                cacheF16[kAt] = (ushort)Scalars.FloatToHalf(k[i]);
                cacheF16[vAt] = (ushort)Scalars.FloatToHalf(v[i]);
            }
            else
            {
                cacheF32[kAt] = k[i];
                cacheF32[vAt] = v[i];
            }
        }
    }

    /// <summary>Records KvWrite.</summary>
    public static void Record(CudaStream s, in TensorView k, in TensorView v, CudaKvCache cache, int layer, in TensorView slots)
    {
        long total = (long)k.Rows * k.Cols;
        s.Kernels.KvWrite(s.Handle, s.Owner.Elements(total), s.F32(k), s.F32(v), s.I32(slots), cache.F32, cache.F16, cache.Plane(layer), total);
    }
}

/// <summary>Where one layer's K and V rows live in a cache buffer, in elements of the cache's type.</summary>
internal struct KvPlaneShape
{
    /// <summary>First element of the layer's K rows.</summary>
    public long KOffset;

    /// <summary>First element of the layer's V rows.</summary>
    public long VOffset;

    /// <summary>Slots per layer (Blocks · BlockSize).</summary>
    public long Slots;

    /// <summary>Elements per row (Hkv·Dh).</summary>
    public int RowElements;

    /// <summary>1 when the cache stores f16.</summary>
    public int F16;
}
