using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Tests;

/// <summary>The two CPU test devices, opened once: serial lanes (cuda:0) and 32-lane warps (cuda:1).</summary>
public sealed class CpuDevices : IDisposable
{
    public CpuDevices()
    {
        Serial = CudaAccelerator.OpenCpu(0, DeviceOptions.Default);
        Warp = CudaAccelerator.OpenCpu(1, DeviceOptions.Default);
    }

    /// <summary>The serial-lane form (what the conformance suite runs).</summary>
    public IAccelerator Serial { get; }

    /// <summary>The warp form (what a GPU runs), on ILGPU's CPU accelerator.</summary>
    public IAccelerator Warp { get; }

    public void Dispose()
    {
        Serial.Dispose();
        Warp.Dispose();
    }
}

/// <summary>
/// The warp form of every kernel that reduces across lanes — the form a GPU runs, with ILGPU.Algorithms' warp
/// shuffles — gives the serial form's bits on ILGPU's CPU accelerator, so the conformance suite's verdict on the serial
/// form (cuda:0) holds for the warp form's arithmetic and indexing too. Small shapes: the CPU accelerator runs a warp as
/// 32 OS threads meeting at every shuffle.
/// </summary>
public sealed class WarpFormTests(CpuDevices devices) : IClassFixture<CpuDevices>
{
    public static TheoryData<DataType> WeightTypes() =>
    [
        DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K,
    ];

    [Theory, MemberData(nameof(WeightTypes))]
    public void MatMul_warp_form_gives_the_serial_forms_bits(DataType type)
    {
        int t = 3, n = 3, k = type.BlockSize() == 256 ? 256 : 64;
        byte[] weight = WeightBytes(type, n, k, seed: (int)type);
        float[] x = Floats(t * k, seed: 11);
        foreach (string variant in new[] { "default", "tile4" })
        {
            byte[] Run(IAccelerator device)
            {
                using var w = Prepare(device, type, n, k, weight);
                using var xb = Upload(device, x);
                using var y = device.Allocate(4L * t * n);
                using var s = device.CreateStream();
                KernelVariant? v = variant == "default" ? null : device.GetVariants(OpKind.MatMul, type).Single(v => v.Name.EndsWith(variant, StringComparison.Ordinal));
                s.MatMul(new TensorView(xb, 0, DataType.F32, t, k), w, new TensorView(y, 0, DataType.F32, t, n), v);
                return Download(s, y);
            }
            byte[] serial = Run(devices.Serial), warp = Run(devices.Warp);
            Assert.True(serial.AsSpan().SequenceEqual(warp), $"MatMul {type.Name()} {variant}: warp form differs from serial form");
            Assert.Contains(MemoryMarshal.Cast<byte, float>(serial).ToArray(), v => v != 0f);
        }
    }

    [Fact]
    public void RmsNorm_and_Argmax_warp_forms_give_the_serial_forms_bits()
    {
        int t = 2, d = 80;
        float[] x = Floats(t * d, seed: 5), w = Floats(d, seed: 6);
        x[d + 17] = x[d + 63] = 9f; // a tie in row 1: the first index wins
        (byte[] Norm, byte[] Max) Run(IAccelerator device)
        {
            using var xb = Upload(device, x);
            using var wb = Upload(device, w);
            using var y = device.Allocate(4L * t * d);
            using var idx = device.Allocate(4L * t);
            using var s = device.CreateStream();
            s.RmsNorm(new TensorView(xb, 0, DataType.F32, t, d), new TensorView(wb, 0, DataType.F32, 1, d), new TensorView(y, 0, DataType.F32, t, d), 1e-5f);
            s.Argmax(new TensorView(xb, 0, DataType.F32, t, d), new TensorView(idx, 0, DataType.I32, 1, t));
            return (Download(s, y), Download(s, idx));
        }
        var serial = Run(devices.Serial);
        var warp = Run(devices.Warp);
        Assert.Equal(serial.Norm, warp.Norm);
        Assert.Equal(serial.Max, warp.Max);
        Assert.Equal(17, MemoryMarshal.Cast<byte, int>(warp.Max)[1]);
    }

    [Theory]
    [InlineData(DataType.F16)]
    [InlineData(DataType.F32)]
    public void Attention_warp_form_gives_the_serial_forms_bits(DataType cacheType)
    {
        const int heads = 4, kvHeads = 2, dh = 40, blockSize = 4, blocks = 3, positions = 6;
        float[] k = Floats(positions * kvHeads * dh, seed: 21), v = Floats(positions * kvHeads * dh, seed: 22), q = Floats(2 * heads * dh, seed: 23);
        int[] slots = [4, 5, 6, 7, 0, 1];          // positions 0..5 in blocks 1 then 0
        int[] table = [1, 0, -1];                  // one sequence; an unused column
        int[] pos = [2, 5], seq = [0, 0];
        byte[] Run(IAccelerator device)
        {
            using var cache = device.CreateKvCache(new KvCacheSpec(1, blocks, blockSize, kvHeads, dh, cacheType));
            using var kb = Upload(device, k);
            using var vb = Upload(device, v);
            using var qb = Upload(device, q);
            using var sb = Upload(device, slots);
            using var tb = Upload(device, table);
            using var pb = Upload(device, pos);
            using var qs = Upload(device, seq);
            using var o = device.Allocate(4L * 2 * heads * dh);
            using var s = device.CreateStream();
            s.KvWrite(new TensorView(kb, 0, DataType.F32, positions, kvHeads * dh), new TensorView(vb, 0, DataType.F32, positions, kvHeads * dh), cache, 0,
                new TensorView(sb, 0, DataType.I32, 1, positions));
            var batch = new AttentionBatch(new TensorView(pb, 0, DataType.I32, 1, 2), new TensorView(qs, 0, DataType.I32, 1, 2),
                new TensorView(tb, 0, DataType.I32, 1, 3), heads, 1f / MathF.Sqrt(dh), 5, true);
            s.Attention(new TensorView(qb, 0, DataType.F32, 2, heads * dh), cache, 0, batch, new TensorView(o, 0, DataType.F32, 2, heads * dh));
            return Download(s, o);
        }
        byte[] serial = Run(devices.Serial), warp = Run(devices.Warp);
        Assert.True(serial.AsSpan().SequenceEqual(warp), $"Attention {cacheType.Name()}: warp form differs from serial form");
        Assert.DoesNotContain(MemoryMarshal.Cast<byte, float>(serial).ToArray(), float.IsNaN);
    }

    private static unsafe IDeviceWeight Prepare(IAccelerator device, DataType type, int rows, int cols, byte[] bytes)
    {
        fixed (byte* p = bytes)
            return device.PrepareWeight(new WeightSource("w", (nint)p, bytes.Length, type, rows, cols, false));
    }

    private static IDeviceBuffer Upload<T>(IAccelerator device, T[] values) where T : unmanaged
    {
        ReadOnlySpan<byte> bytes = MemoryMarshal.AsBytes(values.AsSpan());
        var b = device.Allocate(bytes.Length);
        device.Upload(b, 0, bytes);
        return b;
    }

    private static byte[] Download(IComputeStream s, IDeviceBuffer b)
    {
        byte[] bytes = new byte[b.Length];
        s.Download(b, 0, bytes);
        return bytes;
    }

    private static float[] Floats(int count, int seed)
    {
        var random = new Random(seed);
        var v = new float[count];
        for (int i = 0; i < count; i++) v[i] = (float)(random.NextDouble() * 2 - 1);
        return v;
    }

    /// <summary>Random weights of <paramref name="type"/> with finite, moderate f16 scales.</summary>
    private static byte[] WeightBytes(DataType type, int rows, int cols, int seed)
    {
        var random = new Random(seed);
        byte[] bytes = new byte[rows * type.RowBytes(cols)];
        switch (type)
        {
            case DataType.F32:
                MemoryMarshal.Cast<float, byte>(Floats(rows * cols, seed)).CopyTo(bytes);
                return bytes;
            case DataType.F16:
            case DataType.BF16:
                float[] f = Floats(rows * cols, seed);
                Span<ushort> halves = MemoryMarshal.Cast<byte, ushort>(bytes.AsSpan());
                for (int i = 0; i < f.Length; i++)
                    halves[i] = type == DataType.F16 ? BitConverter.HalfToUInt16Bits((Half)f[i]) : (ushort)(BitConverter.SingleToUInt32Bits(f[i]) >> 16);
                return bytes;
        }
        random.NextBytes(bytes);
        int blockBytes = type.BlockBytes();
        for (int b = 0; b < bytes.Length / blockBytes; b++)
        {
            Span<byte> block = bytes.AsSpan(b * blockBytes, blockBytes);
            ushort Scale() => BitConverter.HalfToUInt16Bits((Half)(0.01 + random.NextDouble() * 0.02));
            switch (type)
            {
                case DataType.Q6_K:
                    BitConverter.TryWriteBytes(block[208..], Scale());
                    break;
                case DataType.Q4_K:
                case DataType.Q5_K:
                    BitConverter.TryWriteBytes(block, Scale());
                    BitConverter.TryWriteBytes(block[2..], Scale());
                    break;
                default:
                    BitConverter.TryWriteBytes(block, Scale());
                    break;
            }
        }
        return bytes;
    }
}
