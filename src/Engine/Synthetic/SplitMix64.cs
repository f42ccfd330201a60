using System.Runtime.CompilerServices;
using System.Text;

namespace Serving.Engine.Synthetic;

/// <summary>
/// SplitMix64 (Steele, Lea, Flood 2014): a tiny, fast, well-mixed generator. Each tensor row gets its own
/// stream seeded from (model seed, tensor name, row), so rows can be generated in any order or in parallel and
/// the bytes only depend on the seed.
/// </summary>
internal struct SplitMix64
{
    private ulong _state;

    public SplitMix64(ulong seed) => _state = seed;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ulong Next()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>A stable 64-bit seed for a tensor: FNV-1a of its UTF-8 name, mixed with the model seed.</summary>
    public static ulong TensorSeed(int seed, string name)
    {
        ulong h = 14695981039346656037UL;
        foreach (byte b in Encoding.UTF8.GetBytes(name))
        {
            h ^= b;
            h *= 1099511628211UL;
        }
        return Mix(h ^ Mix((ulong)(uint)seed + 0x9E3779B97F4A7C15UL));
    }

    /// <summary>The stream for one row of a tensor.</summary>
    public static SplitMix64 ForRow(ulong tensorSeed, long row) =>
        new(Mix(tensorSeed + (ulong)row * 0xD1B54A32D192ED03UL));

    /// <summary>
    /// Fills <paramref name="values"/> with uniform values in (−<paramref name="limit"/>, <paramref name="limit"/>):
    /// two 24-bit draws per 64-bit output, centred so the mean is exactly 0.
    /// </summary>
    public void FillUniform(Span<float> values, float limit)
    {
        const float half = 8388608f; // 2^23: a 24-bit draw minus this lies in [-2^23, 2^23)
        float scale = limit / half;
        int i = 0;
        for (; i + 1 < values.Length; i += 2)
        {
            ulong r = Next();
            values[i] = ((int)(r >> 40) - half + 0.5f) * scale;
            values[i + 1] = ((int)((r >> 8) & 0xFFFFFF) - half + 0.5f) * scale;
        }
        if (i < values.Length)
            values[i] = ((int)(Next() >> 40) - half + 0.5f) * scale;
    }
}
