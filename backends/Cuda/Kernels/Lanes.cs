using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Algorithms.ScanReduceOperations;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>One lane's share of a sum over a unit (an output row's dot product, a row's sum of squares).</summary>
internal interface ILaneSum
{
    /// <summary>Lane <paramref name="lane"/>'s partial sum for <paramref name="unit"/>.</summary>
    float Partial(int unit, int lane);
}

/// <summary>Four lanes' shares at once (a MatMul tile of up to four activation rows sharing each weight load).</summary>
internal interface ILaneSum4
{
    /// <summary>Lane <paramref name="lane"/>'s partial sums for the rows of <paramref name="unit"/>.</summary>
    Float4 Partial(int unit, int lane);
}

/// <summary>Four floats (a tile's four partial sums).</summary>
internal struct Float4
{
    /// <summary>Row 0.</summary>
    public float A;

    /// <summary>Row 1.</summary>
    public float B;

    /// <summary>Row 2.</summary>
    public float C;

    /// <summary>Row 3.</summary>
    public float D;
}

/// <summary>
/// Units, lanes and reductions for the two kernel forms (<see cref="IKernelMode"/>). The warp form reduces with
/// ILGPU.Algorithms' <see cref="WarpExtensions"/> (shuffle-down tree: offsets 16, 8, 4, 2, 1; lane 0 holds the sum, and
/// the all-reduce's butterfly gives every lane those same bits, since each step adds a pair in either order); the serial
/// form adds the 32 partials in that same tree, so both give identical bits.
/// </summary>
internal static class Lanes
{
    /// <summary>Lanes per warp (NVIDIA's warp size on every architecture).</summary>
    public const int Count = 32;

    /// <summary>The unit this thread (serial) or warp works on.</summary>
    public static int Unit<TM>() where TM : struct, IKernelMode
        => default(TM).Serial ? Grid.GlobalIndex.X : Grid.IdxX * (Group.DimX / Count) + Group.IdxX / Count;

    /// <summary>This thread's lane (0 in the serial form, where the thread loops over the lanes).</summary>
    public static int Lane<TM>() where TM : struct, IKernelMode
        => default(TM).Serial ? 0 : Group.IdxX % Count;

    /// <summary>True on the thread that writes a unit's result (lane 0).</summary>
    public static bool Leader<TM>() where TM : struct, IKernelMode => default(TM).Serial || Group.IdxX % Count == 0;

    /// <summary>The sum of the 32 lanes' partials; valid on lane 0 (every thread in the serial form).</summary>
    public static float Sum<TM, TP>(TP partials, int unit, int lane)
        where TM : struct, IKernelMode
        where TP : struct, ILaneSum
        => default(TM).Serial ? Tree(partials, unit) : WarpExtensions.Reduce<float, AddFloat>(partials.Partial(unit, lane));

    /// <summary>The sum of the 32 lanes' partials on every lane (the same bits as <see cref="Sum{TM, TP}"/>).</summary>
    public static float SumAll<TM, TP>(TP partials, int unit, int lane)
        where TM : struct, IKernelMode
        where TP : struct, ILaneSum
        => default(TM).Serial ? Tree(partials, unit) : WarpExtensions.AllReduce<float, AddFloat>(partials.Partial(unit, lane));

    /// <summary>Four sums at once (each as <see cref="Sum{TM, TP}"/>); valid on lane 0.</summary>
    public static Float4 Sum4<TM, TP>(TP partials, int unit, int lane)
        where TM : struct, IKernelMode
        where TP : struct, ILaneSum4
    {
        if (default(TM).Serial)
            return Tree4(partials, unit);
        Float4 p = partials.Partial(unit, lane);
        return new Float4
        {
            A = WarpExtensions.Reduce<float, AddFloat>(p.A),
            B = WarpExtensions.Reduce<float, AddFloat>(p.B),
            C = WarpExtensions.Reduce<float, AddFloat>(p.C),
            D = WarpExtensions.Reduce<float, AddFloat>(p.D),
        };
    }

    /// <summary>The largest of the 32 lanes' keys on lane 0 (max is exact, so any order gives the same key).</summary>
    public static ulong Max<TM>(ulong key) where TM : struct, IKernelMode
        => default(TM).Serial ? key : WarpExtensions.Reduce<ulong, MaxUInt64>(key);

    /// <summary>The largest of the lanes' values on every lane (exact in any order).</summary>
    public static float MaxAll<TM>(float value) where TM : struct, IKernelMode
        => default(TM).Serial ? value : WarpExtensions.AllReduce<float, MaxFloat>(value);

    /// <summary>
    /// ILGPU.Algorithms' shuffle-down tree for lane 0, in registers. Step o (16, 8, 4, 2, 1) adds lane i + o into lane i,
    /// so lane 0 ends with a balanced binary tree whose leaves pair lanes i and i + 16 and whose root splits the even
    /// lanes from the odd ones. Visiting lanes in 5-bit-reversed order turns that into the plain left-to-right pairwise
    /// tree, summed here with a binary counter of five pending subtree sums (no arrays: local memory on the CPU
    /// accelerator is a heap buffer per call).
    /// </summary>
    private static float Tree<TP>(TP partials, int unit) where TP : struct, ILaneSum
    {
        float s0 = 0f, s1 = 0f, s2 = 0f, s3 = 0f, s4 = 0f;
        for (int j = 0; j < Count; j++)
        {
            float v = partials.Partial(unit, Reverse(j));
            if ((j & 1) == 0) { s0 = v; continue; }
            v = s0 + v;
            if ((j & 2) == 0) { s1 = v; continue; }
            v = s1 + v;
            if ((j & 4) == 0) { s2 = v; continue; }
            v = s2 + v;
            if ((j & 8) == 0) { s3 = v; continue; }
            v = s3 + v;
            if ((j & 16) == 0) { s4 = v; continue; }
            return s4 + v;
        }
        return 0f;
    }

    /// <summary><see cref="Tree{TP}"/> for four sums at once.</summary>
    private static Float4 Tree4<TP>(TP partials, int unit) where TP : struct, ILaneSum4
    {
        Float4 s0 = default, s1 = default, s2 = default, s3 = default, s4 = default;
        for (int j = 0; j < Count; j++)
        {
            Float4 v = partials.Partial(unit, Reverse(j));
            if ((j & 1) == 0) { s0 = v; continue; }
            v = Plus(s0, v);
            if ((j & 2) == 0) { s1 = v; continue; }
            v = Plus(s1, v);
            if ((j & 4) == 0) { s2 = v; continue; }
            v = Plus(s2, v);
            if ((j & 8) == 0) { s3 = v; continue; }
            v = Plus(s3, v);
            if ((j & 16) == 0) { s4 = v; continue; }
            return Plus(s4, v);
        }
        return default;
    }

    private static Float4 Plus(Float4 a, Float4 b) => new() { A = a.A + b.A, B = a.B + b.B, C = a.C + b.C, D = a.D + b.D };

    /// <summary>The lane whose 5-bit index is <paramref name="j"/>'s reversed.</summary>
    private static int Reverse(int j) => ((j & 1) << 4) | ((j & 2) << 2) | (j & 4) | ((j & 8) >> 2) | ((j & 16) >> 4);
}
