namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// Writes k[t, :] and v[t, :] (F32 [T, Hkv·Dh]) to row layer·SlotsPerLayer + slots[t] of the paged cache (CpuKvCache:
/// (layer, slot, Hkv·Dh) rows): a plain copy into an f32 cache, rounded to nearest even into an f16 one
/// (<see cref="HalfVector.Narrow"/>). Rows are written in order t = 0..T-1, so when two rows name the same slot the
/// later one wins, as if written one by one. Each row's bytes depend only on that row.
/// </summary>
internal static unsafe class KvWrite
{
    /// <summary>Runs the op on validated pointers into an f32 cache; <paramref name="layerRow0"/> is the cache row of slot 0 of the layer.</summary>
    public static void RunF32(float* k, float* v, float* cacheK, float* cacheV, long layerRow0, int* slots, int t, int rowElements)
    {
        long bytes = (long)rowElements * sizeof(float);
        for (int r = 0; r < t; r++)
        {
            long dst = (layerRow0 + slots[r]) * rowElements;
            Buffer.MemoryCopy(k + (long)r * rowElements, cacheK + dst, bytes, bytes);
            Buffer.MemoryCopy(v + (long)r * rowElements, cacheV + dst, bytes, bytes);
        }
    }

    /// <summary>As <see cref="RunF32"/> into an f16 cache (half bits).</summary>
    public static void RunF16(float* k, float* v, ushort* cacheK, ushort* cacheV, long layerRow0, int* slots, int t, int rowElements)
    {
        for (int r = 0; r < t; r++)
        {
            long dst = (layerRow0 + slots[r]) * rowElements;
            HalfVector.Narrow(k + (long)r * rowElements, cacheK + dst, rowElements);
            HalfVector.Narrow(v + (long)r * rowElements, cacheV + dst, rowElements);
        }
    }
}
