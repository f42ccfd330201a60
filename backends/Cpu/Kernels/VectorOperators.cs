using System.Runtime.CompilerServices;

namespace Serving.Backends.Cpu.Kernels;

// The operator contracts of VectorDriver (after dotnet/runtime's TensorPrimitives IBinaryOperator /
// IAggregationOperator): a kernel file writes its math once as a struct implementing one of these, generic over the
// width TW and its vector type TV, and the driver runs it at the tier's width and then at F32x1 for the scalar end.
// Operators that read their own inputs (reductions, ForEach) hold raw pointers into the kernel's job and are built
// per row.

/// <summary>Element-wise: o[i] = Invoke(a[i], b[i], p), p one scalar broadcast to every lane.</summary>
internal interface IMapOperator
{
    /// <summary>The element-wise function; must not depend on the lane (each lane is one element).</summary>
    static abstract TV Invoke<TW, TV>(TV a, TV b, TV p) where TW : struct, IFloatVector<TV> where TV : unmanaged;

    /// <summary>
    /// True: the elements after the last full vector go through the same vector function on a zero-padded copy
    /// instead of F32x1, so an element's value never depends on where the array ends (needed when the vector and
    /// scalar functions differ, as Vector*.Exp and MathF.Exp do). Zero lanes must be harmless; only real lanes are kept.
    /// </summary>
    static virtual bool PadTail => false;
}

/// <summary>
/// A reduction of one row into one float: Accumulate(ref acc, i) over vectors from <see cref="Identity"/>; with two
/// accumulators the second takes the odd vectors and <see cref="Combine"/> joins them; <see cref="Fold"/> reduces the
/// lanes; the scalar end continues the folded value element by element, in order. The defaults make it a sum;
/// <see cref="IMaxOperator"/> a maximum.
/// </summary>
internal interface IReduceOperator
{
    /// <summary>The starting value of every lane (0 for sums, −∞ for maxima).</summary>
    static virtual float Identity => 0f;

    /// <summary>
    /// Combines the vector of elements i .. i + TW.Count, read by the operator itself, into acc. By reference, so the
    /// JIT updates the accumulator register in place (an FMA with its load folded in); returned by value it went
    /// through a temporary and a register move per vector.
    /// </summary>
    void Accumulate<TW, TV>(ref TV acc, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged;

    /// <summary>Two partial accumulators joined lane-wise.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual TV Combine<TW, TV>(TV a, TV b) where TW : struct, IFloatVector<TV> where TV : unmanaged
        => TW.Add(a, b);

    /// <summary>The lanes reduced to one value.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static virtual float Fold<TW, TV>(TV acc) where TW : struct, IFloatVector<TV> where TV : unmanaged => TW.Sum(acc);
}

/// <summary>A reduction to the largest value: identity −∞, partial results joined by IEEE maximum.</summary>
internal interface IMaxOperator : IReduceOperator
{
    static float IReduceOperator.Identity => float.NegativeInfinity;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static TV IReduceOperator.Combine<TW, TV>(TV a, TV b) => TW.Max(a, b);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    static float IReduceOperator.Fold<TW, TV>(TV acc) => TW.MaxAcross(acc);
}

/// <summary>
/// Four sums computed side by side so that they share loads (four weight rows against one x row, or a 2 × 2 register
/// tile): each is exactly the sum a one-row <see cref="IReduceOperator"/> with the same accumulators would give.
/// </summary>
internal interface ISum4Operator
{
    /// <summary>Adds the vector of elements i .. i + TW.Count of each of the four sums into s0 .. s3.</summary>
    void Accumulate<TW, TV>(ref TV s0, ref TV s1, ref TV s2, ref TV s3, nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged;
}

/// <summary>A loop body with its own loads and stores, run for the vector of elements i .. i + TW.Count.</summary>
internal interface IForEachOperator
{
    /// <summary>Processes elements i .. i + TW.Count.</summary>
    void Apply<TW, TV>(nint i) where TW : struct, IFloatVector<TV> where TV : unmanaged;
}
