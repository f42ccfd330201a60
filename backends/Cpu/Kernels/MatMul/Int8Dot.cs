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

    /// <summary>
    /// Whether <see cref="DotOffset"/> runs on unsigned-by-signed byte multiplies here (AVX2). Where it does, a
    /// format with unsigned quants u and value u − 8 (Q4_0) skips the abs/sign trick and the −8 per byte.
    /// </summary>
    public static bool HasUnsignedDot => Avx2.IsSupported;

    /// <summary>
    /// The 32 nibbles of 16 packed bytes as bytes in [0, 15]: low nibbles of p[0..15] in the low half, high nibbles
    /// in the high half (GGUF Q4_0 element order). On AVX2 one 128-bit broadcast load, one variable 32-bit shift
    /// (0 in the low half, 4 in the high half; bits a shift pulls in from the next byte land in 4..7) and one mask.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static unsafe Vector256<byte> Nibbles(byte* p)
    {
        if (Avx2.IsSupported)
        {
            Vector256<uint> both = Avx2.BroadcastVector128ToVector256(p).AsUInt32();
            Vector256<uint> shifts = Vector256.Create(0u, 0, 0, 0, 4, 4, 4, 4);
            return Avx2.ShiftRightLogicalVariable(both, shifts).AsByte() & Vector256.Create((byte)0x0F);
        }
        Vector128<byte> packed = Vector128.Load(p);
        return Vector256.Create(packed, Vector128.ShiftRightLogical(packed.AsUInt16(), 4).AsByte()) & Vector256.Create((byte)0x0F);
    }

    /// <summary>
    /// The x-side term of <see cref="DotOffset"/>: offset·(x[2i] + x[2i+1]) per int16 lane (|·| ≤ 2·16·127 = 4064
    /// for the offsets used, 8 for Q4_0 and 16 for Q5_0: exact). One per x block, shared by every weight row dotted
    /// against it. Zero where <see cref="HasUnsignedDot"/> is false.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<short> OffsetBias(Vector256<sbyte> x, byte offset = 8)
        => Avx2.IsSupported ? Avx2.MultiplyAddAdjacent(Vector256.Create(offset), x) : Vector256<short>.Zero;

    /// <summary>
    /// Dot(u − offset, x) for unsigned quants u in [0, 2·offset − 1] (offset 8 or 16), given <paramref name="bias"/> =
    /// OffsetBias(x, offset): the same int32 lanes, bit for bit, as <see cref="Dot(Vector256{sbyte}, Vector256{sbyte})"/>
    /// on the signed values, because each int16 pair Σ u·x − offset·Σ x = Σ (u − offset)·x is exact (|Σ u·x| ≤
    /// 2·31·127 = 7874, no saturation) and the pair layout is the same. Without AVX2 it subtracts the offset and takes
    /// the plain dot.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<int> DotOffset(Vector256<byte> u, Vector256<sbyte> x, Vector256<short> bias, byte offset = 8)
    {
        if (Avx2.IsSupported)
        {
            Vector256<short> pairs = Avx2.MultiplyAddAdjacent(u, x) - bias;
            return Avx2.MultiplyAddAdjacent(pairs, Vector256.Create((short)1));
        }
        return Dot(u.AsSByte() - Vector256.Create((sbyte)offset), x);
    }

    /// <summary>
    /// Q5_0's fifth bits as bytes: byte i of the result is 0x10 when bit i of <paramref name="qh"/> is set, else 0.
    /// On AVX2 one in-lane byte shuffle spreads qh byte i/8 over bytes i, then an AND with the bit of each byte and a
    /// compare turn it into a mask.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<byte> HighBits(uint qh)
    {
        if (Avx2.IsSupported)
        {
            // Every 128-bit lane holds qh's 4 bytes; bytes 0–15 pick qh bytes 0 and 1, bytes 16–31 bytes 2 and 3.
            Vector256<byte> spread = Avx2.Shuffle(Vector256.Create(qh).AsByte(),
                Vector256.Create(0x0000000000000000UL, 0x0101010101010101UL, 0x0202020202020202UL, 0x0303030303030303UL).AsByte());
            Vector256<byte> bit = Vector256.Create(0x8040201008040201UL).AsByte(); // byte j of each 8: 1 << j
            return Vector256.Equals(spread & bit, bit) & Vector256.Create((byte)0x10);
        }
        return Vector256.Create(Spread8(qh), Spread8(qh >> 8), Spread8(qh >> 16), Spread8(qh >> 24)).AsByte();

        // The low 8 bits of b as 8 bytes of 0x10 or 0.
        static ulong Spread8(uint b)
        {
            ulong r = 0;
            for (int j = 0; j < 8; j++)
                r |= (ulong)((b >> j) & 1) << (8 * j + 4);
            return r;
        }
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
