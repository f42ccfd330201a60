using Serving.Backends.Cpu.Threading;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// Copies k[t, :] and v[t, :] (F32 [T, Hkv·Dh]) to row layer·SlotsPerLayer + slots[t] of the paged f32 cache
/// (KvCacheLayout: (layer, block, slotInBlock, Hkv·Dh)). Rows are written in order t = 0..T-1, so when two rows
/// name the same slot the later one wins, as if written one by one.
/// </summary>
internal static unsafe class KvWrite
{
    /// <summary>Runs the op on validated pointers; <paramref name="layerRow0"/> is the cache row of slot 0 of the layer.</summary>
    public static void Run(float* k, float* v, float* cacheK, float* cacheV, long layerRow0, int* slots, int t, int rowElements)
    {
        long bytes = (long)rowElements * sizeof(float);
        for (int r = 0; r < t; r++)
        {
            long dst = (layerRow0 + slots[r]) * rowElements;
            Buffer.MemoryCopy(k + (long)r * rowElements, cacheK + dst, bytes, bytes);
            Buffer.MemoryCopy(v + (long)r * rowElements, cacheV + dst, bytes, bytes);
        }
    }
}
