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
    {
        if (!default(TM).Serial)
            return WarpExtensions.Reduce<float, AddFloat>(partials.Partial(unit, lane));
        var v = LocalMemory.Allocate<float>(Count);
        for (int l = 0; l < Count; l++)
            v[l] = partials.Partial(unit, l);
        return Tree(v);
    }

    /// <summary>The sum of the 32 lanes' partials on every lane (the same bits as <see cref="Sum{TM, TP}"/>).</summary>
    public static float SumAll<TM, TP>(TP partials, int unit, int lane)
        where TM : struct, IKernelMode
        where TP : struct, ILaneSum
    {
        if (!default(TM).Serial)
            return WarpExtensions.AllReduce<float, AddFloat>(partials.Partial(unit, lane));
        var v = LocalMemory.Allocate<float>(Count);
        for (int l = 0; l < Count; l++)
            v[l] = partials.Partial(unit, l);
        return Tree(v);
    }

    /// <summary>Four sums at once (each as <see cref="Sum{TM, TP}"/>); valid on lane 0.</summary>
    public static Float4 Sum4<TM, TP>(TP partials, int unit, int lane)
        where TM : struct, IKernelMode
        where TP : struct, ILaneSum4
    {
        if (!default(TM).Serial)
        {
            Float4 p = partials.Partial(unit, lane);
            return new Float4
            {
                A = WarpExtensions.Reduce<float, AddFloat>(p.A),
                B = WarpExtensions.Reduce<float, AddFloat>(p.B),
                C = WarpExtensions.Reduce<float, AddFloat>(p.C),
                D = WarpExtensions.Reduce<float, AddFloat>(p.D),
            };
        }
        var a = LocalMemory.Allocate<float>(Count);
        var b = LocalMemory.Allocate<float>(Count);
        var c = LocalMemory.Allocate<float>(Count);
        var d = LocalMemory.Allocate<float>(Count);
        for (int l = 0; l < Count; l++)
        {
            Float4 p = partials.Partial(unit, l);
            a[l] = p.A;
            b[l] = p.B;
            c[l] = p.C;
            d[l] = p.D;
        }
        return new Float4 { A = Tree(a), B = Tree(b), C = Tree(c), D = Tree(d) };
    }

    /// <summary>The largest of the 32 lanes' keys on lane 0 (max is exact, so any order gives the same key).</summary>
    public static ulong Max<TM>(ulong key) where TM : struct, IKernelMode
        => default(TM).Serial ? key : WarpExtensions.Reduce<ulong, MaxUInt64>(key);

    /// <summary>The largest of the lanes' values on every lane (exact in any order).</summary>
    public static float MaxAll<TM>(float value) where TM : struct, IKernelMode
        => default(TM).Serial ? value : WarpExtensions.AllReduce<float, MaxFloat>(value);

    /// <summary>ILGPU.Algorithms' shuffle-down tree over 32 values, in place: step o adds lane i + o into lane i.</summary>
    private static float Tree(ArrayView<float> v)
    {
        for (int offset = Count / 2; offset > 0; offset >>= 1)
        {
            for (int i = 0; i < offset; i++)
                v[i] = v[i] + v[i + offset];
        }
        return v[0];
    }
}
