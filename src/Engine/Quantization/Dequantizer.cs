using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>
/// Scalar reference conversion of stored rows back to f32 (ggml's dequantize_row_* semantics). Meant for
/// host-side checks and tests, not for the hot path.
/// </summary>
public static class Dequantizer
{
    /// <summary>
    /// Expands <paramref name="source"/> (exactly <c>type.RowBytes(destination.Length)</c> bytes of
    /// <paramref name="type"/>) into <paramref name="destination"/>. I32 is converted value by value.
    /// </summary>
    public static void DequantizeRow(DataType type, ReadOnlySpan<byte> source, Span<float> destination)
    {
        long bytes = type.RowBytes(destination.Length);
        if (source.Length != bytes)
            throw new ArgumentException($"{destination.Length} {type.Name()} elements need {bytes} bytes, source has {source.Length}", nameof(source));
        switch (type)
        {
            case DataType.F32:
                MemoryMarshal.Cast<byte, float>(source).CopyTo(destination);
                break;
            case DataType.I32:
                var ints = MemoryMarshal.Cast<byte, int>(source);
                for (int i = 0; i < ints.Length; i++)
                    destination[i] = ints[i];
                break;
            case DataType.F16:
                var halves = MemoryMarshal.Cast<byte, Half>(source);
                for (int i = 0; i < halves.Length; i++)
                    destination[i] = (float)halves[i];
                break;
            case DataType.BF16:
                var bf = MemoryMarshal.Cast<byte, ushort>(source);
                for (int i = 0; i < bf.Length; i++)
                    destination[i] = FromBFloat16(bf[i]);
                break;
            case DataType.Q8_0:
                for (int b = 0; b < destination.Length / 32; b++)
                {
                    var blk = source.Slice(b * 34, 34);
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
                    for (int j = 0; j < 32; j++)
                        destination[b * 32 + j] = (sbyte)blk[2 + j] * d;
                }
                break;
            case DataType.Q4_0:
                for (int b = 0; b < destination.Length / 32; b++)
                {
                    var blk = source.Slice(b * 18, 18);
                    float d = (float)BinaryPrimitives.ReadHalfLittleEndian(blk);
                    for (int j = 0; j < 16; j++)
                    {
                        destination[b * 32 + j] = ((blk[2 + j] & 0x0F) - 8) * d;
                        destination[b * 32 + j + 16] = ((blk[2 + j] >> 4) - 8) * d;
                    }
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "unknown data type");
        }
    }

    /// <summary>bf16 bits → f32 (exact: the bits become the top half of an f32).</summary>
    public static float FromBFloat16(ushort bits) => BitConverter.UInt32BitsToSingle((uint)bits << 16);
}
