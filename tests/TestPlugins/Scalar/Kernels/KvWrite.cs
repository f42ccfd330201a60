using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>KvWrite: k[t, :] and v[t, :] into slot slots[t] of the layer, rounded to the cache type.</summary>
internal static class KvWrite
{
    public static void Run(in TensorView k, in TensorView v, ScalarKvCache cache, int layer, in TensorView slots)
    {
        int[] slot = Views.ReadInts(slots);
        foreach (int s in slot) Views.CheckIndex(nameof(KvWrite), "slot", s, cache.Layout.SlotsPerLayer); // before writing
        for (int t = 0; t < slot.Length; t++)
        {
            cache.Write(layer, slot[t], value: false, Views.ReadRow(k, t));
            cache.Write(layer, slot[t], value: true, Views.ReadRow(v, t));
        }
    }
}
