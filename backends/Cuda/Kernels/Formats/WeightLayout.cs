using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>
/// How PrepareWeight lays a GGUF tensor out on the device, chosen at load: the same bytes, never dequantized, with every
/// block's body word-aligned so a lane reads its quants with one 32-bit load. f32, f16, bf16, q4_K and q5_K are copied
/// as they are (their blocks already are whole words). q8_0, q4_0, q5_0 and q6_K move each block's f16 d out into a
/// scale plane after all the bodies (q8_0: 32 quant bytes; q4_0: 16 nibble bytes; q5_0: qh then the nibbles, 20 bytes;
/// q6_K: ql, qh and scales, 208 bytes), so the device holds exactly the source's bytes, rearranged.
/// </summary>
internal static class WeightLayout
{
    /// <summary>Where a block's f16 d sits in the GGUF block, or −1 when the type has no separate scale.</summary>
    public static int ScaleOffsetInBlock(DataType type) => type switch
    {
        DataType.Q8_0 or DataType.Q4_0 or DataType.Q5_0 => 0,
        DataType.Q6_K => 208,
        _ => -1,
    };

    /// <summary>Bytes the device buffer needs (the source's, rounded up to whole words).</summary>
    public static long DeviceBytes(in WeightSource source) => (source.Bytes + 3) & ~3L;

    /// <summary>Where the scale plane starts, in halves (0 when the type has none).</summary>
    public static long ScaleOffsetHalves(in WeightSource source)
    {
        if (ScaleOffsetInBlock(source.Type) < 0) return 0;
        long blocks = source.Bytes / source.Type.BlockBytes();
        long bodyBytes = blocks * (source.Type.BlockBytes() - 2);
        return bodyBytes / 2;
    }

    /// <summary>Writes the device layout of <paramref name="source"/> into <paramref name="destination"/> (DeviceBytes long).</summary>
    public static unsafe void Repack(in WeightSource source, Span<byte> destination)
    {
        var src = new ReadOnlySpan<byte>((void*)source.Pointer, checked((int)Math.Min(source.Bytes, int.MaxValue)));
        if (source.Bytes > int.MaxValue)
            throw new ArgumentException($"PrepareWeight: {source} is larger than 2 GiB; the Cuda backend prepares one weight of at most 2 GiB", nameof(source));
        destination.Clear();
        int scaleAt = ScaleOffsetInBlock(source.Type);
        if (scaleAt < 0)
        {
            src.CopyTo(destination);
            return;
        }
        int blockBytes = source.Type.BlockBytes(), bodyBytes = blockBytes - 2;
        long blocks = source.Bytes / blockBytes;
        Span<ushort> scales = MemoryMarshal.Cast<byte, ushort>(destination[(int)(blocks * bodyBytes)..]);
        for (int b = 0; b < blocks; b++)
        {
            ReadOnlySpan<byte> block = src.Slice(b * blockBytes, blockBytes);
            Span<byte> body = destination.Slice(b * bodyBytes, bodyBytes);
            block[..scaleAt].CopyTo(body);
            block[(scaleAt + 2)..].CopyTo(body[scaleAt..]);
            scales[b] = (ushort)(block[scaleAt] | (block[scaleAt + 1] << 8));
        }
    }
}
