using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using Serving.Backends.Cpu.Kernels.MatMul;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// The operations on a vector TV of <see cref="Count"/> f32 lanes at one SIMD width, implemented by one struct per
/// width: <see cref="F32x16"/> (TV = Vector512&lt;float&gt;), <see cref="F32x8"/> (Vector256), <see cref="F32x4"/>
/// (Vector128), <see cref="F32x1"/> (TV = float). <see cref="VectorDriver"/>'s loops and the kernels' operators are
/// written once against this interface as generic methods &lt;TW, TV&gt;; the JIT compiles them once per width
/// (struct type arguments are never shared), down to the plain intrinsics of that width. TV is the runtime's own
/// vector type rather than a wrapper struct: with a wrapper the JIT neither folds loads into FMAs nor accumulates in
/// place (measured: a K = 288 dot 20–50 % slower).
/// <see cref="F32x1"/> is the scalar end: the elements after the last full vector, and everything at the scalar tier.
/// Its <see cref="MultiplyAdd"/> is a multiply then an add (two roundings, as the scalar loops always were); the
/// vector widths use MultiplyAddEstimate, one fused FMA where the hardware has it. A kernel's result therefore depends
/// on the tier, as before, but never on where a row ends or which rows share a call.
/// </summary>
internal unsafe interface IFloatVector<TV> where TV : unmanaged
{
    /// <summary>Lanes (16, 8, 4 or 1).</summary>
    static abstract int Count { get; }

    /// <summary>Every lane = <paramref name="value"/>.</summary>
    static abstract TV Create(float value);

    /// <summary>Lanes p[0 .. Count).</summary>
    static abstract TV Load(float* p);

    /// <summary>Elements k .. k + Count of a weight row of the type <typeparamref name="TL"/> reads, as floats.</summary>
    static abstract TV LoadRow<TL>(byte* row, nint k) where TL : struct, IFloatRow;

    /// <summary>Writes the lanes to p[0 .. Count).</summary>
    static abstract void Store(TV v, float* p);

    /// <summary>a + b per lane.</summary>
    static abstract TV Add(TV a, TV b);

    /// <summary>a − b per lane.</summary>
    static abstract TV Subtract(TV a, TV b);

    /// <summary>a · b per lane.</summary>
    static abstract TV Multiply(TV a, TV b);

    /// <summary>a / b per lane.</summary>
    static abstract TV Divide(TV a, TV b);

    /// <summary>−a per lane.</summary>
    static abstract TV Negate(TV a);

    /// <summary>a·b + c per lane: fused where the hardware has FMA (vector widths), a multiply then an add (F32x1).</summary>
    static abstract TV MultiplyAdd(TV a, TV b, TV c);

    /// <summary>e^x per lane (Vector*.Exp; MathF.Exp for F32x1).</summary>
    static abstract TV Exp(TV x);

    /// <summary>IEEE maximum per lane: NaN in either gives NaN, +0 &gt; −0 (Vector*.Max, MathF.Max).</summary>
    static abstract TV Max(TV a, TV b);

    /// <summary>Per lane a where a &gt; b, else b: a NaN in <paramref name="a"/> never wins.</summary>
    static abstract TV GreaterOf(TV a, TV b);

    /// <summary>The sum of the lanes (Vector*.Sum's order).</summary>
    static abstract float Sum(TV v);

    /// <summary>The largest lane by <see cref="Max"/>, halving the vector down to 128 bits, then lanes (0,1) and (2,3).</summary>
    static abstract float MaxAcross(TV v);
}

// The four widths. Each member is the one intrinsic of its width (documented on IFloatVector), one line each so the
// four read side by side.

/// <summary>16 lanes: Vector512.</summary>
internal readonly unsafe struct F32x16 : IFloatVector<Vector512<float>>
{
    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    public static int Count => 16;
    [MethodImpl(Inline)] public static Vector512<float> Create(float value) => Vector512.Create(value);
    [MethodImpl(Inline)] public static Vector512<float> Load(float* p) => Vector512.Load(p);
    [MethodImpl(Inline)] public static Vector512<float> LoadRow<TL>(byte* row, nint k) where TL : struct, IFloatRow => TL.Load512(row + k * TL.ElementBytes, 0);
    [MethodImpl(Inline)] public static void Store(Vector512<float> v, float* p) => v.Store(p);
    [MethodImpl(Inline)] public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    [MethodImpl(Inline)] public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    [MethodImpl(Inline)] public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    [MethodImpl(Inline)] public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    [MethodImpl(Inline)] public static Vector512<float> Negate(Vector512<float> a) => -a;
    [MethodImpl(Inline)] public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) => Vector512.MultiplyAddEstimate(a, b, c);
    [MethodImpl(Inline)] public static Vector512<float> Exp(Vector512<float> x) => Vector512.Exp(x);
    [MethodImpl(Inline)] public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    [MethodImpl(Inline)] public static Vector512<float> GreaterOf(Vector512<float> a, Vector512<float> b) => Vector512.ConditionalSelect(Vector512.GreaterThan(a, b), a, b);
    [MethodImpl(Inline)] public static float Sum(Vector512<float> v) => Vector512.Sum(v);
    [MethodImpl(Inline)] public static float MaxAcross(Vector512<float> v) => F32x8.MaxAcross(Vector256.Max(v.GetLower(), v.GetUpper()));
}

/// <summary>8 lanes: Vector256.</summary>
internal readonly unsafe struct F32x8 : IFloatVector<Vector256<float>>
{
    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    public static int Count => 8;
    [MethodImpl(Inline)] public static Vector256<float> Create(float value) => Vector256.Create(value);
    [MethodImpl(Inline)] public static Vector256<float> Load(float* p) => Vector256.Load(p);
    [MethodImpl(Inline)] public static Vector256<float> LoadRow<TL>(byte* row, nint k) where TL : struct, IFloatRow => TL.Load256(row + k * TL.ElementBytes, 0);
    [MethodImpl(Inline)] public static void Store(Vector256<float> v, float* p) => v.Store(p);
    [MethodImpl(Inline)] public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    [MethodImpl(Inline)] public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    [MethodImpl(Inline)] public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    [MethodImpl(Inline)] public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    [MethodImpl(Inline)] public static Vector256<float> Negate(Vector256<float> a) => -a;
    [MethodImpl(Inline)] public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) => Vector256.MultiplyAddEstimate(a, b, c);
    [MethodImpl(Inline)] public static Vector256<float> Exp(Vector256<float> x) => Vector256.Exp(x);
    [MethodImpl(Inline)] public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    [MethodImpl(Inline)] public static Vector256<float> GreaterOf(Vector256<float> a, Vector256<float> b) => Vector256.ConditionalSelect(Vector256.GreaterThan(a, b), a, b);
    [MethodImpl(Inline)] public static float Sum(Vector256<float> v) => Vector256.Sum(v);
    [MethodImpl(Inline)] public static float MaxAcross(Vector256<float> v) => F32x4.MaxAcross(Vector128.Max(v.GetLower(), v.GetUpper()));
}

/// <summary>4 lanes: Vector128.</summary>
internal readonly unsafe struct F32x4 : IFloatVector<Vector128<float>>
{
    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    public static int Count => 4;
    [MethodImpl(Inline)] public static Vector128<float> Create(float value) => Vector128.Create(value);
    [MethodImpl(Inline)] public static Vector128<float> Load(float* p) => Vector128.Load(p);
    [MethodImpl(Inline)] public static Vector128<float> LoadRow<TL>(byte* row, nint k) where TL : struct, IFloatRow => TL.Load128(row + k * TL.ElementBytes, 0);
    [MethodImpl(Inline)] public static void Store(Vector128<float> v, float* p) => v.Store(p);
    [MethodImpl(Inline)] public static Vector128<float> Add(Vector128<float> a, Vector128<float> b) => a + b;
    [MethodImpl(Inline)] public static Vector128<float> Subtract(Vector128<float> a, Vector128<float> b) => a - b;
    [MethodImpl(Inline)] public static Vector128<float> Multiply(Vector128<float> a, Vector128<float> b) => a * b;
    [MethodImpl(Inline)] public static Vector128<float> Divide(Vector128<float> a, Vector128<float> b) => a / b;
    [MethodImpl(Inline)] public static Vector128<float> Negate(Vector128<float> a) => -a;
    [MethodImpl(Inline)] public static Vector128<float> MultiplyAdd(Vector128<float> a, Vector128<float> b, Vector128<float> c) => Vector128.MultiplyAddEstimate(a, b, c);
    [MethodImpl(Inline)] public static Vector128<float> Exp(Vector128<float> x) => Vector128.Exp(x);
    [MethodImpl(Inline)] public static Vector128<float> Max(Vector128<float> a, Vector128<float> b) => Vector128.Max(a, b);
    [MethodImpl(Inline)] public static Vector128<float> GreaterOf(Vector128<float> a, Vector128<float> b) => Vector128.ConditionalSelect(Vector128.GreaterThan(a, b), a, b);
    [MethodImpl(Inline)] public static float Sum(Vector128<float> v) => Vector128.Sum(v);
    [MethodImpl(Inline)] public static float MaxAcross(Vector128<float> v) => MathF.Max(MathF.Max(v.GetElement(0), v.GetElement(1)), MathF.Max(v.GetElement(2), v.GetElement(3)));
}

/// <summary>1 lane: a plain float, the scalar end of every loop.</summary>
internal readonly unsafe struct F32x1 : IFloatVector<float>
{
    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    public static int Count => 1;
    [MethodImpl(Inline)] public static float Create(float value) => value;
    [MethodImpl(Inline)] public static float Load(float* p) => *p;
    [MethodImpl(Inline)] public static float LoadRow<TL>(byte* row, nint k) where TL : struct, IFloatRow => TL.Load(row + k * TL.ElementBytes, 0);
    [MethodImpl(Inline)] public static void Store(float v, float* p) => *p = v;
    [MethodImpl(Inline)] public static float Add(float a, float b) => a + b;
    [MethodImpl(Inline)] public static float Subtract(float a, float b) => a - b;
    [MethodImpl(Inline)] public static float Multiply(float a, float b) => a * b;
    [MethodImpl(Inline)] public static float Divide(float a, float b) => a / b;
    [MethodImpl(Inline)] public static float Negate(float a) => -a;
    [MethodImpl(Inline)] public static float MultiplyAdd(float a, float b, float c) => a * b + c;
    [MethodImpl(Inline)] public static float Exp(float x) => MathF.Exp(x);
    [MethodImpl(Inline)] public static float Max(float a, float b) => MathF.Max(a, b);
    [MethodImpl(Inline)] public static float GreaterOf(float a, float b) => a > b ? a : b;
    [MethodImpl(Inline)] public static float Sum(float v) => v;
    [MethodImpl(Inline)] public static float MaxAcross(float v) => v;
}
