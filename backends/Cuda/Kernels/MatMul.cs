using ILGPU;
using ILGPU.Runtime;
using Serving.Abstractions;
using Serving.Backends.Cuda.Kernels.Formats;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>What one MatMul launch computes: y [T, N] (or, split over K, Splits partial planes [Splits, T, N]).</summary>
internal struct MatMulShape
{
    /// <summary>Activation rows.</summary>
    public int T;

    /// <summary>Output columns (weight rows).</summary>
    public int N;

    /// <summary>Activation rows per warp (1..4): they share every weight load.</summary>
    public int Tile;

    /// <summary>Parts K is cut into (1: the batch-invariant kernels; more: split-K partial planes).</summary>
    public int Splits;
}

/// <summary>
/// MatMul y[t, n] = Σₖ x[t, k] · W[n, k]: one warp (serial: one thread) per (tile of activation rows, output column n);
/// lane l takes the row's slots l, l + 32, … (<see cref="IWeightFormat"/>: a word of quants or one float element),
/// so a warp reads 128 consecutive bytes of the weight row per step, then the lanes' sums are reduced. Quantized
/// weights multiply int8 by int8 against x rounded to q8 blocks (<see cref="QuantizeActivations"/>), through dp4a on
/// sm_61+. Every batch-invariant variant sums each (t, n) in the same order — same slots per lane, same tree — so
/// they agree bit for bit; split-K sums K in parts and adds the parts, a different order, so it is not one of them.
/// </summary>
internal static class MatMul
{
    private struct Dots<TM, TF> : ILaneSum
        where TM : struct, IKernelMode
        where TF : struct, IWeightFormat
    {
        public WeightView W;
        public MatMulInputs X;
        public long Row, T, Begin, End;

        public readonly float Partial(int unit, int lane)
        {
            float acc = 0f;
            for (long s = Begin + lane; s < End; s += Lanes.Count)
                acc += default(TF).Dot<TM>(W, Row, s, X, T);
            return acc;
        }
    }

    private struct Dots4<TM, TF> : ILaneSum4
        where TM : struct, IKernelMode
        where TF : struct, IWeightFormat
    {
        public WeightView W;
        public MatMulInputs X;
        public long Row, T, Begin, End;
        public int Rows;

        public readonly Float4 Partial(int unit, int lane)
        {
            Float4 acc = default;
            for (long s = Begin + lane; s < End; s += Lanes.Count)
            {
                acc.A += default(TF).Dot<TM>(W, Row, s, X, T);
                if (Rows > 1) acc.B += default(TF).Dot<TM>(W, Row, s, X, T + 1);
                if (Rows > 2) acc.C += default(TF).Dot<TM>(W, Row, s, X, T + 2);
                if (Rows > 3) acc.D += default(TF).Dot<TM>(W, Row, s, X, T + 3);
            }
            return acc;
        }
    }

    /// <summary>The kernel, per mode and weight format; units = Splits · tiles · N.</summary>
    public static void Kernel<TM, TF>(WeightView w, MatMulInputs x, ArrayView<float> y, MatMulShape shape)
        where TM : struct, IKernelMode
        where TF : struct, IWeightFormat
    {
        int unit = Lanes.Unit<TM>();
        int tiles = (shape.T + shape.Tile - 1) / shape.Tile;
        if ((long)unit >= (long)tiles * shape.N * shape.Splits) return;
        int lane = Lanes.Lane<TM>();
        int n = unit % shape.N, rest = unit / shape.N, tile = rest % tiles, split = rest / tiles;
        int t0 = tile * shape.Tile;
        int rows = Math.Min(shape.Tile, shape.T - t0);
        long slots = default(TF).Slots(w.Cols);
        long per = (slots + shape.Splits - 1) / shape.Splits;
        long begin = split * per, end = Math.Min(slots, begin + per);
        long plane = (long)split * shape.T * shape.N;
        if (shape.Tile == 1)
        {
            float sum = Lanes.Sum<TM, Dots<TM, TF>>(new Dots<TM, TF> { W = w, X = x, Row = n, T = t0, Begin = begin, End = end }, unit, lane);
            if (Lanes.Leader<TM>()) y[plane + (long)t0 * shape.N + n] = sum;
            return;
        }
        Float4 sums = Lanes.Sum4<TM, Dots4<TM, TF>>(
            new Dots4<TM, TF> { W = w, X = x, Row = n, T = t0, Begin = begin, End = end, Rows = rows }, unit, lane);
        if (!Lanes.Leader<TM>()) return;
        long at = plane + (long)t0 * shape.N + n;
        y[at] = sums.A;
        if (rows > 1) y[at + shape.N] = sums.B;
        if (rows > 2) y[at + 2L * shape.N] = sums.C;
        if (rows > 3) y[at + 3L * shape.N] = sums.D;
    }

    /// <summary>Adds the split-K partial planes [splits, count] in order into y [count].</summary>
    public static void SumSplits(ArrayView<float> partials, ArrayView<float> y, long count, int splits)
    {
        long stride = (long)Grid.DimX * Group.DimX;
        for (long i = Grid.GlobalIndex.X; i < count; i += stride)
        {
            float s = partials[i];
            for (int p = 1; p < splits; p++)
                s += partials[p * count + i];
            y[i] = s;
        }
    }

    /// <summary>Records MatMul with <paramref name="variant"/>'s launch shape.</summary>
    public static void Record(CudaStream s, in TensorView x, CudaWeight weight, in TensorView y, MatMulVariant variant)
    {
        ArrayView<float> output = s.F32(y);
        if (x.Cols == 0)
        {
            output.MemSetToZero(s.Handle);
            return;
        }
        var inputs = new MatMulInputs { X = s.F32(x), K = x.Cols };
        if (weight.Type.IsQuantized())
            (inputs.Xq, inputs.Xd) = QuantizeActivations.Record(s, x);
        else
            (inputs.Xq, inputs.Xd) = (s.Owner.DummyInts, s.Owner.DummyFloats);
        var shape = new MatMulShape { T = x.Rows, N = y.Cols, Tile = variant.Tile, Splits = variant.Splits };
        long units = (long)((x.Rows + variant.Tile - 1) / variant.Tile) * y.Cols * variant.Splits;
        if (variant.Splits == 1)
        {
            s.Kernels.MatMul(weight.Type, s.Handle, s.Owner.Units(units, variant.WarpsPerGroup), weight.View, inputs, output, shape);
            return;
        }
        long count = (long)x.Rows * y.Cols;
        ArrayView<float> partials = s.SplitScratch(count * variant.Splits);
        s.Kernels.MatMul(weight.Type, s.Handle, s.Owner.Units(units, variant.WarpsPerGroup), weight.View, inputs, partials, shape);
        s.Kernels.SumSplits(s.Handle, s.Owner.Elements(count), partials, output, count, variant.Splits);
    }
}

/// <summary>A MatMul variant's launch shape.</summary>
/// <param name="Tile">Activation rows per warp.</param>
/// <param name="WarpsPerGroup">Warps per thread block.</param>
/// <param name="Splits">Parts of K (1 = batch-invariant).</param>
internal sealed record MatMulVariant(int Tile, int WarpsPerGroup, int Splits);
