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
            y[i] = NormalOne(sigma);
        return y;
    }

    /// <summary>One standard normal f32 value scaled by <paramref name="sigma"/> (the next value <see cref="Normal"/> would give).</summary>
    public float NormalOne(double sigma = 1)
    {
        double u1 = 1 - _random.NextDouble(), u2 = _random.NextDouble();
        return (float)(sigma * Math.Sqrt(-2 * Math.Log(u1)) * Math.Cos(2 * Math.PI * u2));
    }

    /// <summary>A uniform integer in [min, max).</summary>
    public int Next(int min, int max) => _random.Next(min, max);

    /// <summary>A uniform double in [0, 1).</summary>
    public double NextDouble() => _random.NextDouble();

    /// <summary>Fills <paramref name="bytes"/> with random bytes.</summary>
    public void Fill(Span<byte> bytes) => _random.NextBytes(bytes);

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
    /// A weight matrix [rows, cols] of <paramref name="type"/> in GGUF layout, block by block as
    /// <see cref="WeightFormatCases"/> fills them: values of order 0.1, quantized blocks random bit patterns (any scale
    /// sign, every code), not the output of a quantizer.
    /// </summary>
    public byte[] Weights(DataType type, int rows, int cols)
    {
        BlockFiller fill = WeightFormatCases.Get(type).Fill;
        int blockBytes = type.BlockBytes();
        var bytes = new byte[type.RowBytes(cols) * rows];
        for (int at = 0; at < bytes.Length; at += blockBytes)
            fill(this, bytes.AsSpan(at, blockBytes));
        return bytes;
    }

    /// <summary>
    /// Writes an f16 scale of magnitude ~<paramref name="typical"/> with a random sign (negative scales are legal in
    /// the formats) at the start of <paramref name="block"/>.
    /// </summary>
    public void WriteScale(Span<byte> block, double typical)
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
