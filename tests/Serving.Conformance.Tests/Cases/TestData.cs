using System.Buffers.Binary;
using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

/// <summary>
/// Seeded inputs. Every case derives its own seed from its parameters, so a failing case reproduces alone and adding a
/// case does not change the data of the others.
/// </summary>
public sealed class TestData(int seed)
{
    private readonly Random _random = new(seed);

    /// <summary>A seed from a case's parameters (stable across runs and processes, unlike string.GetHashCode).</summary>
    public static int Seed(params object[] parts)
    {
        uint hash = 2166136261;
        foreach (char c in string.Join('|', parts))
            hash = (hash ^ c) * 16777619;
        return (int)(hash & 0x7FFFFFFF);
    }

    /// <summary>Standard normal f32 values (Box–Muller), scaled by <paramref name="sigma"/>.</summary>
    public float[] Normal(int count, double sigma = 1)
    {
        var y = new float[count];
        for (int i = 0; i < count; i++)
        {
            double u1 = 1 - _random.NextDouble(), u2 = _random.NextDouble();
            y[i] = (float)(sigma * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
        }
        return y;
    }

    /// <summary>Uniform integers in [min, max).</summary>
    public int[] Ints(int count, int min, int max)
    {
        var y = new int[count];
        for (int i = 0; i < count; i++) y[i] = _random.Next(min, max);
        return y;
    }

    /// <summary>Random bytes.</summary>
    public byte[] Bytes(int count)
    {
        var y = new byte[count];
        _random.NextBytes(y);
        return y;
    }

    /// <summary>A random permutation of 0..n-1.</summary>
    public int[] Permutation(int n)
    {
        var y = Enumerable.Range(0, n).ToArray();
        _random.Shuffle(y);
        return y;
    }

    /// <summary>
    /// A weight matrix [rows, cols] of <paramref name="type"/> in GGUF layout, values of order 0.1. Quantized blocks are
    /// random bit patterns (any scale sign, every nibble), not the output of a quantizer, so every code is exercised;
    /// Q8_0 codes stay in [−127, 127] because quantizers (llama.cpp's included) never emit −128. K-quant super-scales
    /// (d, dmin) are normal f16 values so that values stay of order 0.1; every other byte is random.
    /// </summary>
    public byte[] Weights(DataType type, int rows, int cols)
    {
        long elements = (long)rows * cols;
        var bytes = new byte[type.RowBytes(cols) * rows];
        switch (type)
        {
            case DataType.F32:
                AsBytes(Normal((int)elements, 0.1), bytes);
                break;
            case DataType.F16:
                var f16 = Normal((int)elements, 0.1);
                for (int i = 0; i < f16.Length; i++)
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(2 * i), (Half)f16[i]);
                break;
            case DataType.BF16:
                var bf16 = Normal((int)elements, 0.1);
                for (int i = 0; i < bf16.Length; i++) // truncation is as good as rounding for random test data
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan(2 * i), (ushort)(BitConverter.SingleToUInt32Bits(bf16[i]) >> 16));
                break;
            case DataType.Q8_0:
                for (long b = 0; b < elements / 32; b++)
                {
                    var block = bytes.AsSpan((int)(b * 34), 34);
                    WriteScale(block, 0.1 / 64);
                    for (int j = 0; j < 32; j++) block[2 + j] = (byte)(sbyte)_random.Next(-127, 128);
                }
                break;
            case DataType.Q4_0:
                for (long b = 0; b < elements / 32; b++)
                {
                    var block = bytes.AsSpan((int)(b * 18), 18);
                    WriteScale(block, 0.1 / 4);
                    _random.NextBytes(block[2..]);
                }
                break;
            case DataType.Q5_0:
                for (long b = 0; b < elements / 32; b++)
                {
                    var block = bytes.AsSpan((int)(b * 22), 22);
                    WriteScale(block, 0.1 / 8); // |q − 16| ≈ 8
                    _random.NextBytes(block[2..]); // qh and qs: every fifth bit and nibble
                }
                break;
            case DataType.Q5_K:
                for (long b = 0; b < elements / 256; b++)
                {
                    var block = bytes.AsSpan((int)(b * 176), 176);
                    _random.NextBytes(block[4..]);
                    // E[sc·q] = 31.5·15.5 and E[m] = 31.5: dmin ≈ 15.5·|d| centres the values when d > 0.
                    double d = 0.1 / (31.5 * 15.5);
                    WriteScale(block, d);
                    BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)(15.5 * d * (0.5 + _random.NextDouble())));
                }
                break;
            case DataType.Q4_K:
                for (long b = 0; b < elements / 256; b++)
                {
                    var block = bytes.AsSpan((int)(b * 144), 144);
                    _random.NextBytes(block[4..]);
                    // E[sc·q] = 31.5·7.5 and E[m] = 31.5: dmin ≈ 7.5·|d| centres the values when d > 0.
                    double d = 0.1 / (31.5 * 7.5);
                    WriteScale(block, d);
                    BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)(7.5 * d * (0.5 + _random.NextDouble())));
                }
                break;
            case DataType.Q6_K:
                for (long b = 0; b < elements / 256; b++)
                {
                    var block = bytes.AsSpan((int)(b * 210), 210);
                    _random.NextBytes(block[..208]);
                    WriteScale(block[208..], 0.1 / (64 * 8)); // |scale| ≈ 64, |q − 32| ≈ 16: values ≈ 0.2, d a normal f16
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "not a weight type");
        }
        return bytes;
    }

    // A scale of magnitude ~typical with a random sign (negative scales are legal in the format).
    private void WriteScale(Span<byte> block, double typical)
    {
        double d = typical * (0.5 + _random.NextDouble()) * (_random.Next(2) == 0 ? 1 : -1);
        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)d);
    }

    /// <summary>Little-endian bytes of f32 values.</summary>
    public static byte[] AsBytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 4];
        AsBytes(values, bytes);
        return bytes;
    }

    /// <summary>Little-endian bytes of i32 values.</summary>
    public static byte[] AsBytes(ReadOnlySpan<int> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    private static void AsBytes(ReadOnlySpan<float> values, Span<byte> bytes)
    {
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes[(4 * i)..], values[i]);
    }

    /// <summary>f32 values widened to double (the reference's inputs are exactly what the device got).</summary>
    public static double[] Widen(ReadOnlySpan<float> values)
    {
        var y = new double[values.Length];
        for (int i = 0; i < y.Length; i++) y[i] = values[i];
        return y;
    }
}
