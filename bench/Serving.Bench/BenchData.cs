using System.Buffers.Binary;
using Serving.Abstractions;

namespace Serving.Bench;

/// <summary>
/// Fast deterministic benchmark inputs. Values are ordinary normal-range numbers: random bit patterns would include
/// NaNs and subnormals, which run at a different speed than real weights.
/// </summary>
public static class BenchData
{
    /// <summary>f32 values in [−1, 1) from a fixed-seed xorshift.</summary>
    public static float[] Floats(int count, uint seed = 1)
    {
        var y = new float[count];
        uint s = seed | 1;
        for (int i = 0; i < count; i++)
        {
            s ^= s << 13; s ^= s >> 17; s ^= s << 5;
            y[i] = (s >> 8) * (2f / (1 << 24)) - 1;
        }
        return y;
    }

    /// <summary>A weight matrix [rows, cols] of <paramref name="type"/> in GGUF layout.</summary>
    public static byte[] Weights(DataType type, int rows, int cols)
    {
        long elements = (long)rows * cols;
        var bytes = new byte[type.RowBytes(cols) * rows];
        float[] values = Floats((int)Math.Min(elements, 1 << 20), 7); // reused cyclically: speed does not depend on values
        switch (type)
        {
            case DataType.F32:
                for (long i = 0; i < elements; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan((int)(4 * i)), values[i % values.Length] * 0.1f);
                break;
            case DataType.F16:
                for (long i = 0; i < elements; i++) BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan((int)(2 * i)), (Half)(values[i % values.Length] * 0.1f));
                break;
            case DataType.BF16:
                for (long i = 0; i < elements; i++)
                    BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)(2 * i)), (ushort)(BitConverter.SingleToUInt32Bits(values[i % values.Length] * 0.1f) >> 16));
                break;
            case DataType.Q8_0 or DataType.Q4_0 or DataType.Q5_0:
                int blockBytes = type.BlockBytes();
                new Random(3).NextBytes(bytes);
                for (long b = 0; b < elements / 32; b++)
                    BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan((int)(b * blockBytes)), (Half)(0.001f + 0.002f * (b % 7)));
                if (type == DataType.Q8_0) // quantizers never emit −128
                    for (long b = 0; b < elements / 32; b++)
                        for (int j = 2; j < 34; j++)
                            if (bytes[b * 34 + j] == 0x80) bytes[b * 34 + j] = 0x81;
                break;
            case DataType.Q4_K or DataType.Q5_K or DataType.Q6_K:
                // Random quants and sub-block scales; normal f16 super-scales (Q4_K, Q5_K: d, dmin first; Q6_K: d last).
                int superBytes = type.BlockBytes();
                new Random(3).NextBytes(bytes);
                for (long b = 0; b < elements / 256; b++)
                {
                    var block = bytes.AsSpan((int)(b * superBytes), superBytes);
                    if (type != DataType.Q6_K)
                    {
                        BinaryPrimitives.WriteHalfLittleEndian(block, (Half)(0.0002f + 0.0001f * (b % 7)));
                        BinaryPrimitives.WriteHalfLittleEndian(block[2..], (Half)(0.001f + 0.0005f * (b % 5)));
                    }
                    else
                    {
                        BinaryPrimitives.WriteHalfLittleEndian(block[208..], (Half)(0.0002f + 0.0001f * (b % 7)));
                    }
                }
                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(type), type, "not a weight type");
        }
        return bytes;
    }

    /// <summary>Little-endian bytes of f32 values.</summary>
    public static byte[] Bytes(ReadOnlySpan<float> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    /// <summary>Little-endian bytes of i32 values.</summary>
    public static byte[] Bytes(ReadOnlySpan<int> values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++) BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4 * i), values[i]);
        return bytes;
    }

    /// <summary>Allocates a buffer on <paramref name="device"/> holding <paramref name="bytes"/>, viewed as [rows, cols] of <paramref name="type"/>.</summary>
    public static TensorView Upload(IAccelerator device, DataType type, int rows, int cols, ReadOnlySpan<byte> bytes)
    {
        var buffer = device.Allocate(bytes.Length);
        device.Upload(buffer, 0, bytes);
        return new TensorView(buffer, 0, type, rows, cols);
    }

    /// <summary>A weight [rows, cols] of <paramref name="type"/> holding <paramref name="bytes"/> (GGUF layout), prepared by
    /// <paramref name="device"/> from a transient host copy (the device keeps its own).</summary>
    public static unsafe IDeviceWeight Weight(IAccelerator device, DataType type, int rows, int cols, byte[] bytes)
    {
        fixed (byte* p = bytes)
            return device.PrepareWeight(new WeightSource("bench", (nint)p, bytes.Length, type, rows, cols, Persistent: false));
    }

    /// <summary>A zero-filled [rows, cols] view of <paramref name="type"/>.</summary>
    public static TensorView Allocate(IAccelerator device, DataType type, int rows, int cols)
        => new(device.Allocate(type.RowBytes(cols) * rows), 0, type, rows, cols);
}
