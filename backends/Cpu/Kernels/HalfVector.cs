using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels;

/// <summary>
/// The u32-lane operations the f16 conversions need at one SIMD width, one struct per width (<see cref="U32x16"/>,
/// <see cref="U32x8"/>, <see cref="U32x4"/>), as <see cref="IFloatVector{TV}"/> does for f32 lanes. TU is the runtime's
/// Vector*&lt;uint&gt;, TF its Vector*&lt;float&gt; (same bits). <see cref="HalfVector"/> writes each conversion once
/// against this interface; the JIT compiles it per width down to that width's intrinsics.
/// </summary>
internal unsafe interface IUInt32Vector<TU, TF> where TU : unmanaged where TF : unmanaged
{
    /// <summary>Lanes (16, 8 or 4).</summary>
    static abstract int Count { get; }

    /// <summary>Every lane = <paramref name="value"/>.</summary>
    static abstract TU Create(uint value);

    /// <summary>Count consecutive u16 values, zero-extended to u32 lanes.</summary>
    static abstract TU LoadWiden(ushort* p);

    /// <summary>Writes the low 16 bits of each lane to p[0 .. Count).</summary>
    static abstract void StoreNarrow(TU v, ushort* p);

    /// <summary>Bitwise a &amp; b.</summary>
    static abstract TU And(TU a, TU b);

    /// <summary>Bitwise a | b.</summary>
    static abstract TU Or(TU a, TU b);

    /// <summary>Bitwise a ^ b.</summary>
    static abstract TU Xor(TU a, TU b);

    /// <summary>a + b per lane, wrapping.</summary>
    static abstract TU Add(TU a, TU b);

    /// <summary>a − b per lane, wrapping.</summary>
    static abstract TU Subtract(TU a, TU b);

    /// <summary>a &lt;&lt; count per lane.</summary>
    static abstract TU ShiftLeft(TU a, int count);

    /// <summary>a &gt;&gt; count per lane (logical).</summary>
    static abstract TU ShiftRight(TU a, int count);

    /// <summary>All-ones lanes where a ≥ b (unsigned), else zero.</summary>
    static abstract TU GreaterThanOrEqual(TU a, TU b);

    /// <summary>All-ones lanes where a &gt; b (unsigned), else zero.</summary>
    static abstract TU GreaterThan(TU a, TU b);

    /// <summary>Per lane: a where <paramref name="mask"/> is all ones, else b.</summary>
    static abstract TU Select(TU mask, TU a, TU b);

    /// <summary>The lanes as f32, multiplied, back as bits.</summary>
    static abstract TU MultiplyAsSingle(TU a, TU b);

    /// <summary>The lanes as f32, added, back as bits.</summary>
    static abstract TU AddAsSingle(TU a, TU b);

    /// <summary>The same bits as f32 lanes.</summary>
    static abstract TF AsSingle(TU v);

    /// <summary>The same bits as u32 lanes.</summary>
    static abstract TU AsUInt32(TF v);

    /// <summary>Count floats from p.</summary>
    static abstract TF LoadSingle(float* p);
}

// The three widths, one intrinsic per member, one line each so they read side by side.

/// <summary>16 lanes: Vector512.</summary>
internal readonly unsafe struct U32x16 : IUInt32Vector<Vector512<uint>, Vector512<float>>
{
    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    public static int Count => 16;
    [MethodImpl(Inline)] public static Vector512<uint> Create(uint value) => Vector512.Create(value);
    [MethodImpl(Inline)] public static Vector512<uint> LoadWiden(ushort* p) => Vector512.WidenLower(Vector256.Load(p).ToVector512Unsafe());
    [MethodImpl(Inline)] public static void StoreNarrow(Vector512<uint> v, ushort* p) => Vector512.Narrow(v, v).GetLower().Store(p);
    [MethodImpl(Inline)] public static Vector512<uint> And(Vector512<uint> a, Vector512<uint> b) => a & b;
    [MethodImpl(Inline)] public static Vector512<uint> Or(Vector512<uint> a, Vector512<uint> b) => a | b;
    [MethodImpl(Inline)] public static Vector512<uint> Xor(Vector512<uint> a, Vector512<uint> b) => a ^ b;
    [MethodImpl(Inline)] public static Vector512<uint> Add(Vector512<uint> a, Vector512<uint> b) => a + b;
    [MethodImpl(Inline)] public static Vector512<uint> Subtract(Vector512<uint> a, Vector512<uint> b) => a - b;
    [MethodImpl(Inline)] public static Vector512<uint> ShiftLeft(Vector512<uint> a, int count) => a << count;
    [MethodImpl(Inline)] public static Vector512<uint> ShiftRight(Vector512<uint> a, int count) => a >>> count;
    [MethodImpl(Inline)] public static Vector512<uint> GreaterThanOrEqual(Vector512<uint> a, Vector512<uint> b) => Vector512.GreaterThanOrEqual(a, b);
    [MethodImpl(Inline)] public static Vector512<uint> GreaterThan(Vector512<uint> a, Vector512<uint> b) => Vector512.GreaterThan(a, b);
    [MethodImpl(Inline)] public static Vector512<uint> Select(Vector512<uint> mask, Vector512<uint> a, Vector512<uint> b) => Vector512.ConditionalSelect(mask, a, b);
    [MethodImpl(Inline)] public static Vector512<uint> MultiplyAsSingle(Vector512<uint> a, Vector512<uint> b) => (a.AsSingle() * b.AsSingle()).AsUInt32();
    [MethodImpl(Inline)] public static Vector512<uint> AddAsSingle(Vector512<uint> a, Vector512<uint> b) => (a.AsSingle() + b.AsSingle()).AsUInt32();
    [MethodImpl(Inline)] public static Vector512<float> AsSingle(Vector512<uint> v) => v.AsSingle();
    [MethodImpl(Inline)] public static Vector512<uint> AsUInt32(Vector512<float> v) => v.AsUInt32();
    [MethodImpl(Inline)] public static Vector512<float> LoadSingle(float* p) => Vector512.Load(p);
}

/// <summary>8 lanes: Vector256.</summary>
internal readonly unsafe struct U32x8 : IUInt32Vector<Vector256<uint>, Vector256<float>>
{
    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    public static int Count => 8;
    [MethodImpl(Inline)] public static Vector256<uint> Create(uint value) => Vector256.Create(value);
    [MethodImpl(Inline)] public static Vector256<uint> LoadWiden(ushort* p) => Vector256.WidenLower(Vector128.Load(p).ToVector256Unsafe());
    [MethodImpl(Inline)] public static void StoreNarrow(Vector256<uint> v, ushort* p) => Vector256.Narrow(v, v).GetLower().Store(p);
    [MethodImpl(Inline)] public static Vector256<uint> And(Vector256<uint> a, Vector256<uint> b) => a & b;
    [MethodImpl(Inline)] public static Vector256<uint> Or(Vector256<uint> a, Vector256<uint> b) => a | b;
    [MethodImpl(Inline)] public static Vector256<uint> Xor(Vector256<uint> a, Vector256<uint> b) => a ^ b;
    [MethodImpl(Inline)] public static Vector256<uint> Add(Vector256<uint> a, Vector256<uint> b) => a + b;
    [MethodImpl(Inline)] public static Vector256<uint> Subtract(Vector256<uint> a, Vector256<uint> b) => a - b;
    [MethodImpl(Inline)] public static Vector256<uint> ShiftLeft(Vector256<uint> a, int count) => a << count;
    [MethodImpl(Inline)] public static Vector256<uint> ShiftRight(Vector256<uint> a, int count) => a >>> count;
    [MethodImpl(Inline)] public static Vector256<uint> GreaterThanOrEqual(Vector256<uint> a, Vector256<uint> b) => Vector256.GreaterThanOrEqual(a, b);
    [MethodImpl(Inline)] public static Vector256<uint> GreaterThan(Vector256<uint> a, Vector256<uint> b) => Vector256.GreaterThan(a, b);
    [MethodImpl(Inline)] public static Vector256<uint> Select(Vector256<uint> mask, Vector256<uint> a, Vector256<uint> b) => Vector256.ConditionalSelect(mask, a, b);
    [MethodImpl(Inline)] public static Vector256<uint> MultiplyAsSingle(Vector256<uint> a, Vector256<uint> b) => (a.AsSingle() * b.AsSingle()).AsUInt32();
    [MethodImpl(Inline)] public static Vector256<uint> AddAsSingle(Vector256<uint> a, Vector256<uint> b) => (a.AsSingle() + b.AsSingle()).AsUInt32();
    [MethodImpl(Inline)] public static Vector256<float> AsSingle(Vector256<uint> v) => v.AsSingle();
    [MethodImpl(Inline)] public static Vector256<uint> AsUInt32(Vector256<float> v) => v.AsUInt32();
    [MethodImpl(Inline)] public static Vector256<float> LoadSingle(float* p) => Vector256.Load(p);
}

/// <summary>4 lanes: Vector128.</summary>
internal readonly unsafe struct U32x4 : IUInt32Vector<Vector128<uint>, Vector128<float>>
{
    private const MethodImplOptions Inline = MethodImplOptions.AggressiveInlining;
    public static int Count => 4;
    [MethodImpl(Inline)] public static Vector128<uint> Create(uint value) => Vector128.Create(value);
    [MethodImpl(Inline)] public static Vector128<uint> LoadWiden(ushort* p) => Vector128.WidenLower(Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(p)).AsUInt16());
    [MethodImpl(Inline)] public static void StoreNarrow(Vector128<uint> v, ushort* p) => Unsafe.WriteUnaligned(p, Vector128.Narrow(v, v).AsUInt64().ToScalar());
    [MethodImpl(Inline)] public static Vector128<uint> And(Vector128<uint> a, Vector128<uint> b) => a & b;
    [MethodImpl(Inline)] public static Vector128<uint> Or(Vector128<uint> a, Vector128<uint> b) => a | b;
    [MethodImpl(Inline)] public static Vector128<uint> Xor(Vector128<uint> a, Vector128<uint> b) => a ^ b;
    [MethodImpl(Inline)] public static Vector128<uint> Add(Vector128<uint> a, Vector128<uint> b) => a + b;
    [MethodImpl(Inline)] public static Vector128<uint> Subtract(Vector128<uint> a, Vector128<uint> b) => a - b;
    [MethodImpl(Inline)] public static Vector128<uint> ShiftLeft(Vector128<uint> a, int count) => a << count;
    [MethodImpl(Inline)] public static Vector128<uint> ShiftRight(Vector128<uint> a, int count) => a >>> count;
    [MethodImpl(Inline)] public static Vector128<uint> GreaterThanOrEqual(Vector128<uint> a, Vector128<uint> b) => Vector128.GreaterThanOrEqual(a, b);
    [MethodImpl(Inline)] public static Vector128<uint> GreaterThan(Vector128<uint> a, Vector128<uint> b) => Vector128.GreaterThan(a, b);
    [MethodImpl(Inline)] public static Vector128<uint> Select(Vector128<uint> mask, Vector128<uint> a, Vector128<uint> b) => Vector128.ConditionalSelect(mask, a, b);
    [MethodImpl(Inline)] public static Vector128<uint> MultiplyAsSingle(Vector128<uint> a, Vector128<uint> b) => (a.AsSingle() * b.AsSingle()).AsUInt32();
    [MethodImpl(Inline)] public static Vector128<uint> AddAsSingle(Vector128<uint> a, Vector128<uint> b) => (a.AsSingle() + b.AsSingle()).AsUInt32();
    [MethodImpl(Inline)] public static Vector128<float> AsSingle(Vector128<uint> v) => v.AsSingle();
    [MethodImpl(Inline)] public static Vector128<uint> AsUInt32(Vector128<float> v) => v.AsUInt32();
    [MethodImpl(Inline)] public static Vector128<float> LoadSingle(float* p) => Vector128.Load(p);
}

/// <summary>
/// IEEE half ↔ float conversions, each written once for every width (and once in scalar form with the same rules):
/// half → float is exact for every value (subnormals, infinities, NaN payloads); float → half rounds to nearest, ties to
/// even, overflows to ±∞, keeps NaN a quiet NaN with the top payload bits. Vector and scalar forms give identical bits.
/// </summary>
internal static unsafe class HalfVector
{
    /// <summary>2^112: rebiases an f16 exponent (bias 15) placed in an f32 (bias 127).</summary>
    private const float TwoPow112 = 5.192296858534828E+33f;

    /// <summary>Bits of an f32 ≥ which a value rounds to f16 infinity or is NaN/∞: 2^16.</summary>
    private const uint HalfOverflow = (127 + 16) << 23;

    /// <summary>Bits of the smallest f32 that is a normal f16: 2^-14.</summary>
    private const uint HalfNormalMin = (127 - 14) << 23;

    /// <summary>0.5f: adding it to a value below 2^-14 leaves the f16 subnormal, correctly rounded, in the low mantissa bits.</summary>
    private const uint SubnormalMagic = 126u << 23;

    /// <summary>Rebias of the exponent (f32 bias 127 → f16 bias 15) plus the round-half-down constant 0xFFF.</summary>
    private const uint NormalRebias = unchecked((uint)((15 - 127) << 23)) + 0xFFF;

    /// <summary>Half bits (zero-extended to u32 lanes) to floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TF ToFloat<TW, TU, TF>(TU h) where TW : struct, IUInt32Vector<TU, TF> where TU : unmanaged where TF : unmanaged
    {
        TU sign = TW.ShiftLeft(TW.And(h, TW.Create(0x8000u)), 16);
        TU em = TW.And(h, TW.Create(0x7FFFu));
        TU o = TW.ShiftLeft(em, 13);
        TU normal = TW.MultiplyAsSingle(o, TW.Create(BitConverter.SingleToUInt32Bits(TwoPow112)));
        TU special = TW.Or(o, TW.Create(0x7F800000u));
        TU isSpecial = TW.GreaterThanOrEqual(em, TW.Create(0x7C00u));
        return TW.AsSingle(TW.Or(TW.Select(isSpecial, special, normal), sign));
    }

    /// <summary>Floats to half bits in the low 16 bits of each u32 lane (round to nearest even).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TU FromFloat<TW, TU, TF>(TF value) where TW : struct, IUInt32Vector<TU, TF> where TU : unmanaged where TF : unmanaged
    {
        TU x = TW.AsUInt32(value);
        TU sign = TW.And(x, TW.Create(0x80000000u));
        TU a = TW.Xor(x, sign);
        // NaN → quiet NaN with the top payload bits; ∞ and |x| ≥ 65520 (which rounds up) → ∞.
        TU nan = TW.Or(TW.Create(0x7E00u), TW.And(TW.ShiftRight(a, 13), TW.Create(0x3FFu)));
        TU special = TW.Select(TW.GreaterThan(a, TW.Create(0x7F800000u)), nan, TW.Create(0x7C00u));
        // Below 2^-14: the float adder rounds (to nearest even) when the value meets 0.5's exponent.
        TU subnormal = TW.Subtract(TW.AddAsSingle(a, TW.Create(SubnormalMagic)), TW.Create(SubnormalMagic));
        // Normal: rebias, add 0xFFF plus the lowest kept bit (ties to even), drop 13 bits; a carry rounds up the exponent.
        TU odd = TW.And(TW.ShiftRight(a, 13), TW.Create(1u));
        TU normal = TW.ShiftRight(TW.Add(TW.Add(a, TW.Create(NormalRebias)), odd), 13);
        TU o = TW.Select(TW.GreaterThanOrEqual(a, TW.Create(HalfOverflow)), special,
            TW.Select(TW.GreaterThanOrEqual(a, TW.Create(HalfNormalMin)), normal, subnormal));
        return TW.Or(o, TW.ShiftRight(sign, 16));
    }

    /// <summary>The scalar form of <see cref="FromFloat{TW, TU, TF}"/>, same rules and bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float value)
    {
        uint x = BitConverter.SingleToUInt32Bits(value);
        uint sign = x & 0x80000000u;
        uint a = x ^ sign;
        uint o;
        if (a >= HalfOverflow)
            o = a > 0x7F800000u ? 0x7E00u | ((a >> 13) & 0x3FFu) : 0x7C00u;
        else if (a >= HalfNormalMin)
            o = (a + NormalRebias + ((a >> 13) & 1u)) >> 13;
        else
            o = BitConverter.SingleToUInt32Bits(BitConverter.UInt32BitsToSingle(a) + 0.5f) - SubnormalMagic;
        return (ushort)(o | (sign >> 16));
    }

    /// <summary>
    /// 2^112 as the factor that undoes <see cref="WidenScaled"/>: for a half h that is not ∞ or NaN, the f32 whose bits
    /// are sign(h) | (h &amp; 0x7FFF) &lt;&lt; 13 is exactly 2^-112 · h (normals land on normals, subnormals on subnormals).
    /// </summary>
    public const float Unscale = TwoPow112;

    /// <summary>
    /// The n rows' slices of dh halves (rows + j·rowStride bytes) to f32 rows of dh floats at <paramref name="dst"/>,
    /// each value exactly 2^-112 times the half's (<see cref="Unscale"/>), at a few integer operations per vector: the
    /// multiply by 2^112 and the ∞/NaN fix-up of <see cref="ToFloat{TW, TU, TF}"/> are left out. The caller moves the
    /// 2^112 onto the other factor of each product ((2^112·a)·(2^-112·h), exact while 2^112·a is finite), whose real
    /// value is then a·h's, so every rounding, subnormal or not, is the one the exact widening gives. Returns false
    /// when some half is ∞ or NaN (its scaled form would be a finite number): the caller then widens the block exactly.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool WidenScaled(byte* rows, int rowStride, int n, int dh, float* dst)
    {
        const uint Keep = 0x8FFFE000u;   // sign (the widened sign's lowest copy) and the 15 bits of exponent and mantissa
        uint seen = 0;                   // bit 15 set once an exponent field of all ones went by (scalar tail)
        bool special = false;
        for (int j = 0; j < n; j++)
        {
            short* h = (short*)(rows + (long)j * rowStride);
            float* d = dst + (long)j * dh;
            int i = 0;
            if (Simd.Tier == SimdTier.V512)
            {
                var top = Vector512<ushort>.Zero;
                for (; i <= dh - 32; i += 32)
                {
                    var raw = Vector512.Load(h + i);
                    top = Vector512.Max(top, raw.AsUInt16() << 1);
                    (Vector512.WidenLower(raw) << 13 & Vector512.Create(Keep).AsInt32()).AsSingle().Store(d + i);
                    (Vector512.WidenUpper(raw) << 13 & Vector512.Create(Keep).AsInt32()).AsSingle().Store(d + i + 16);
                }
                special |= Vector512.GreaterThanOrEqualAny(top, Vector512.Create((ushort)0xF800));
            }
            else if (Simd.Tier == SimdTier.V256)
            {
                var top = Vector256<ushort>.Zero;
                for (; i <= dh - 16; i += 16)
                {
                    var raw = Vector256.Load(h + i);
                    top = Vector256.Max(top, raw.AsUInt16() << 1);
                    (Vector256.WidenLower(raw) << 13 & Vector256.Create(Keep).AsInt32()).AsSingle().Store(d + i);
                    (Vector256.WidenUpper(raw) << 13 & Vector256.Create(Keep).AsInt32()).AsSingle().Store(d + i + 8);
                }
                special |= Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xF800));
            }
            else if (Simd.Tier == SimdTier.V128)
            {
                var top = Vector128<ushort>.Zero;
                for (; i <= dh - 8; i += 8)
                {
                    var raw = Vector128.Load(h + i);
                    top = Vector128.Max(top, raw.AsUInt16() << 1);
                    (Vector128.WidenLower(raw) << 13 & Vector128.Create(Keep).AsInt32()).AsSingle().Store(d + i);
                    (Vector128.WidenUpper(raw) << 13 & Vector128.Create(Keep).AsInt32()).AsSingle().Store(d + i + 4);
                }
                special |= Vector128.GreaterThanOrEqualAny(top, Vector128.Create((ushort)0xF800));
            }
            for (; i < dh; i++)
            {
                int w = h[i];
                seen |= (uint)(w & 0x7C00) + 0x400;
                d[i] = BitConverter.UInt32BitsToSingle((uint)(w << 13) & Keep);
            }
        }
        return !special && (seen & 0x8000) == 0;
    }

    /// <summary>True when one of the n rows' slices of dh halves (rows + j·rowStride bytes) is ∞ or NaN.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static bool HasSpecial(byte* rows, int rowStride, int n, int dh)
    {
        uint seen = 0;   // as in WidenScaled
        bool special = false;
        for (int j = 0; j < n; j++)
        {
            ushort* h = (ushort*)(rows + (long)j * rowStride);
            int i = 0;
            if (Simd.Tier == SimdTier.V512)
            {
                var top = Vector512<ushort>.Zero;
                for (; i <= dh - 32; i += 32)
                    top = Vector512.Max(top, Vector512.Load(h + i) << 1);
                special |= Vector512.GreaterThanOrEqualAny(top, Vector512.Create((ushort)0xF800));
            }
            else if (Simd.Tier == SimdTier.V256)
            {
                var top = Vector256<ushort>.Zero;
                for (; i <= dh - 16; i += 16)
                    top = Vector256.Max(top, Vector256.Load(h + i) << 1);
                special |= Vector256.GreaterThanOrEqualAny(top, Vector256.Create((ushort)0xF800));
            }
            else if (Simd.Tier == SimdTier.V128)
            {
                var top = Vector128<ushort>.Zero;
                for (; i <= dh - 8; i += 8)
                    top = Vector128.Max(top, Vector128.Load(h + i) << 1);
                special |= Vector128.GreaterThanOrEqualAny(top, Vector128.Create((ushort)0xF800));
            }
            for (; i < dh; i++)
                seen |= (uint)(h[i] & 0x7C00) + 0x400;
        }
        return special || (seen & 0x8000) != 0;
    }

    /// <summary>dst[i] = half(src[i]) for i in [0, n), at the tier's width then scalar.</summary>
    public static void Narrow(float* src, ushort* dst, int n)
    {
        int i = 0;
        if (Simd.Tier == SimdTier.V512) i = NarrowAt<U32x16, Vector512<uint>, Vector512<float>>(src, dst, n);
        else if (Simd.Tier == SimdTier.V256) i = NarrowAt<U32x8, Vector256<uint>, Vector256<float>>(src, dst, n);
        else if (Simd.Tier == SimdTier.V128) i = NarrowAt<U32x4, Vector128<uint>, Vector128<float>>(src, dst, n);
        for (; i < n; i++)
            dst[i] = FromFloat(src[i]);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int NarrowAt<TW, TU, TF>(float* src, ushort* dst, int n) where TW : struct, IUInt32Vector<TU, TF> where TU : unmanaged where TF : unmanaged
    {
        int i = 0;
        for (; i <= n - TW.Count; i += TW.Count)
            TW.StoreNarrow(FromFloat<TW, TU, TF>(TW.LoadSingle(src + i)), dst + i);
        return i;
    }
}
