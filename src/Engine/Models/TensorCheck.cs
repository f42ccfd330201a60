using System.Buffers.Binary;
using System.Numerics;
using Serving.Abstractions;
using Serving.Engine.Gguf;

namespace Serving.Engine.Models;

/// <summary>
/// Scans every tensor of a model file for NaN and ±Inf before it is loaded (<c>--check-tensors</c>, as llama.cpp's
/// option of that name): a poisoned or corrupt file is refused naming the tensor and where, instead of loading and
/// generating garbage. Float tensors (f32, f16, bf16) are checked element by element; in the block formats the quantized
/// values are small integers, so a block's values are all finite exactly when its f16 scales are (q8_0, q4_0, q5_0:
/// <c>d</c>; q4_K, q5_K: <c>d</c> and <c>dmin</c>; q6_K: <c>d</c>), and only those are read. The cost is one pass over
/// the file's pages (the scales are spread through every block), about what loading the file from disk costs.
/// </summary>
public static class TensorCheck
{
    /// <summary>
    /// Checks every tensor of <paramref name="file"/> whose type the engine computes (other types are refused at load
    /// anyway), reporting bytes scanned to <paramref name="progress"/>. Throws <see cref="ModelLoadException"/> naming the
    /// first tensor holding a NaN or an infinity, with the element (float types) or block (block types) and row.
    /// </summary>
    public static unsafe void Scan(GgufFile file, IProgress<(long Done, long Total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        long total = file.Tensors.Sum(t => t.ByteSize), done = 0;
        foreach (GgufTensorInfo t in file.Tensors)
        {
            if (t.IsImplementedType)
            {
                long rowElements = t.Dims.Length > 0 ? t.Dims[0] : 1;
                byte* data = file.BasePointer + t.Offset;
                // In chunks of whole blocks, so progress moves within a large tensor.
                int blockBytes = t.Type.BlockBytes();
                long chunk = Math.Max(blockBytes, (4L << 20) / blockBytes * blockBytes);
                for (long offset = 0; offset < t.ByteSize; offset += chunk)
                {
                    int length = (int)Math.Min(chunk, t.ByteSize - offset);
                    if (FirstBad(t.Type, new ReadOnlySpan<byte>(data + offset, length)) is { } bad)
                        throw Poisoned(t, offset, bad, rowElements);
                    progress?.Report((done + offset + length, total));
                }
            }
            done += t.ByteSize;
            progress?.Report((done, total));
        }
    }

    private static ModelLoadException Poisoned(GgufTensorInfo t, long chunkOffset, (long Index, float Value) bad, long rowElements)
    {
        string what = float.IsNaN(bad.Value) ? "NaN" : bad.Value > 0 ? "+Inf" : "-Inf";
        long blockSize = t.Type.BlockSize();
        if (blockSize == 1)
        {
            long element = chunkOffset / t.Type.BlockBytes() + bad.Index;
            return new ModelLoadException(t.Name, $"holds {what} at element {element} (row {element / rowElements}): the file is corrupt or poisoned");
        }
        long block = chunkOffset / t.Type.BlockBytes() + bad.Index;
        long first = block * blockSize;
        return new ModelLoadException(t.Name,
            $"{t.Type.Name()} block {block} (elements {first}–{first + blockSize - 1}, row {first / rowElements}) has a {what} scale: the file is corrupt or poisoned");
    }

    /// <summary>The index (element, or block for block types) and value of the first non-finite value in <paramref name="bytes"/>.</summary>
    private static (long Index, float Value)? FirstBad(DataType type, ReadOnlySpan<byte> bytes) => type switch
    {
        DataType.F32 => FirstBadF32(bytes),
        DataType.F16 => FirstBadHalfBits(bytes, 0x7C00, static h => (float)BitConverter.UInt16BitsToHalf(h)),
        DataType.BF16 => FirstBadHalfBits(bytes, 0x7F80, static h => BitConverter.Int32BitsToSingle(h << 16)),
        DataType.Q8_0 or DataType.Q4_0 or DataType.Q5_0 => FirstBadScales(bytes, type.BlockBytes(), 0, -1),
        DataType.Q4_K or DataType.Q5_K => FirstBadScales(bytes, type.BlockBytes(), 0, 2),
        DataType.Q6_K => FirstBadScales(bytes, type.BlockBytes(), 208, -1),
        _ => null,
    };

    private static (long, float)? FirstBadF32(ReadOnlySpan<byte> bytes)
    {
        ReadOnlySpan<float> x = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, float>(bytes);
        int i = 0;
        if (Vector.IsHardwareAccelerated)
        {
            // x − x is 0 for every finite x and NaN for NaN and ±Inf.
            for (; i + Vector<float>.Count <= x.Length; i += Vector<float>.Count)
            {
                var v = new Vector<float>(x.Slice(i, Vector<float>.Count));
                if (!Vector.EqualsAll(v - v, Vector<float>.Zero))
                    break;
            }
        }
        for (; i < x.Length; i++)
            if (!float.IsFinite(x[i]))
                return (i, x[i]);
        return null;
    }

    // f16 and bf16: all exponent bits set means NaN or ±Inf.
    private static (long, float)? FirstBadHalfBits(ReadOnlySpan<byte> bytes, ushort exponentMask, Func<ushort, float> widen)
    {
        ReadOnlySpan<ushort> h = System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ushort>(bytes);
        for (int i = 0; i < h.Length; i++)
        {
            ushort bits = BitConverter.IsLittleEndian ? h[i] : BinaryPrimitives.ReverseEndianness(h[i]);
            if ((bits & exponentMask) == exponentMask)
                return (i, widen(bits));
        }
        return null;
    }

    private static (long, float)? FirstBadScales(ReadOnlySpan<byte> bytes, int blockBytes, int scaleAt, int minAt)
    {
        for (int b = 0, o = 0; o + blockBytes <= bytes.Length; b++, o += blockBytes)
        {
            float d = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.Slice(o + scaleAt, 2));
            if (!float.IsFinite(d))
                return (b, d);
            if (minAt >= 0)
            {
                float m = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.Slice(o + minAt, 2));
                if (!float.IsFinite(m))
                    return (b, m);
            }
        }
        return null;
    }
}
