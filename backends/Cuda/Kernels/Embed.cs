using ILGPU;
using Serving.Abstractions;
using Serving.Backends.Cuda.Kernels.Formats;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>Embed: output[t, :] = the dequantized row ids[t] of a prepared table; one thread per output element
/// (grid-stride). An id outside [0, V) writes nothing for that row (the contract leaves index values to the engine;
/// a GPU backend skips instead of reading outside the table).</summary>
internal static class Embed
{
    /// <summary>The kernel, per weight format.</summary>
    public static void Kernel<TF>(WeightView table, ArrayView<int> ids, ArrayView<float> output, int vocabulary, long total)
        where TF : struct, IWeightFormat
    {
        long stride = (long)Grid.DimX * Group.DimX;
        int d = table.Cols;
        for (long i = Grid.GlobalIndex.X; i < total; i += stride)
        {
            long t = i / d;
            int id = ids[t];
            if ((uint)id >= (uint)vocabulary) continue;
            output[i] = default(TF).Value(table, id, (int)(i % d));
        }
    }

    /// <summary>Records Embed on <paramref name="s"/>.</summary>
    public static void Record(CudaStream s, CudaWeight table, in TensorView ids, in TensorView output)
    {
        long total = (long)output.Rows * output.Cols;
        s.Kernels.Embed(table.Type, s.Handle, s.Owner.Elements(total), table.View, s.I32(ids), s.F32(output), table.Rows, total);
    }
}
