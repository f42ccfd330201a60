using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// Integer dot products of int8 vectors, the core of the Q8_0 and Q4_0 kernels. Each returns int32 lanes whose
/// total is Σ w[i]·x[i]; the lane split differs per ISA, the total never does (integer sums are exact).
/// Precondition: x in [-127, 127] (activation quantization guarantees it), w any int8. Then the SSSE3/AVX2
/// trick |w|·sign(x, w) never saturates its int16 pair sums (2·128·127 &lt; 32767).
/// Raw ISA intrinsics live only here, each with a portable fallback.
/// </summary>
internal static class Int8Dot
{
    /// <summary>64 int8 products summed into 16 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<int> Dot(Vector512<sbyte> w, Vector512<sbyte> x)
    {
        if (Avx512BW.IsSupported)
        {
            Vector512<byte> absW = Avx512BW.Abs(w);
            // sign(x, w): no vpsignb at 512 bits, so negate x where w is negative (where w is 0, |w| zeroes it).
            Vector512<sbyte> signedX = Vector512.ConditionalSelect(Vector512.LessThan(w, Vector512<sbyte>.Zero), -x, x);
            Vector512<short> pairs = Avx512BW.MultiplyAddAdjacent(absW, signedX);
            return Avx512BW.MultiplyAddAdjacent(pairs, Vector512.Create((short)1));
        }
        return Vector512.Create(Dot(w.GetLower(), x.GetLower()), Dot(w.GetUpper(), x.GetUpper()));
    }

    /// <summary>32 int8 products summed into 8 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<sbyte> w, Vector256<sbyte> x)
    {
        if (AvxVnni.IsSupported)
            return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, Avx2.Abs(w), Avx2.Sign(x, w));
        if (Avx2.IsSupported)
        {
            Vector256<short> pairs = Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w));
            return Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
        }
        (Vector256<short> wLo, Vector256<short> wHi) = Vector256.Widen(w);
        (Vector256<short> xLo, Vector256<short> xHi) = Vector256.Widen(x);
        (Vector256<int> a, Vector256<int> b) = Vector256.Widen(wLo * xLo);
        (Vector256<int> c, Vector256<int> d) = Vector256.Widen(wHi * xHi);
        return (a + b) + (c + d);
    }

    /// <summary>
    /// The weight-side half of <see cref="Dot(Vector256{sbyte}, Vector256{sbyte})"/>: |w| where the ISA uses the
    /// abs/sign trick, so a weight vector shared by several x rows is prepared once. Any other ISA ignores it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<sbyte> Prepare(Vector256<sbyte> w) => Avx2.IsSupported ? Avx2.Abs(w).AsSByte() : w;

    /// <summary>
    /// Dot(w, x) given <paramref name="prepared"/> = Prepare(w): the same int32 lanes, bit for bit, on every ISA.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> Dot(Vector256<sbyte> prepared, Vector256<sbyte> w, Vector256<sbyte> x)
    {
        if (AvxVnni.IsSupported)
            return AvxVnni.MultiplyWideningAndAdd(Vector256<int>.Zero, prepared.AsByte(), Avx2.Sign(x, w));
        if (Avx2.IsSupported)
        {
            Vector256<short> pairs = Avx2.MultiplyAddAdjacent(prepared.AsByte(), Avx2.Sign(x, w));
            return Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
        }
        return Dot(w, x);
    }

    /// <summary>16 int8 products summed into 4 int32 lanes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<int> Dot(Vector128<sbyte> w, Vector128<sbyte> x)
    {
        if (Ssse3.IsSupported)
        {
            Vector128<short> pairs = Ssse3.MultiplyAddAdjacent(Ssse3.Abs(w), Ssse3.Sign(x, w));
            return Sse2.MultiplyAddAdjacent(pairs, Vector128.Create((short)1));
        }
        (Vector128<short> wLo, Vector128<short> wHi) = Vector128.Widen(w);
        (Vector128<short> xLo, Vector128<short> xHi) = Vector128.Widen(x);
        (Vector128<int> a, Vector128<int> b) = Vector128.Widen(wLo * xLo);
        (Vector128<int> c, Vector128<int> d) = Vector128.Widen(wHi * xHi);
        return (a + b) + (c + d);
    }
}
