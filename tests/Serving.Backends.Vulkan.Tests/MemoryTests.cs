using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>Out of memory is an AcceleratorException, never a crash; the device keeps working after it.</summary>
public sealed class MemoryTests
{
    [SkippableFact]
    public void AllocationBeyondTheDeviceThrowsAcceleratorException()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        long tooMuch = Math.Max(device.Descriptor.TotalMemoryBytes, device.FreeMemoryBytes) * 2 + (1L << 30);
        var e = Assert.Throws<AcceleratorException>(() => device.Allocate(tooMuch));
        Assert.Equal(device.Descriptor.Id, e.Device);
        Assert.False(e.DeviceLost);
        using IDeviceBuffer small = device.Allocate(1 << 20);
        Assert.Equal(1 << 20, small.Length);
    }

    [SkippableFact]
    public void AllocationsAreZeroFilledAndFreeMemoryIsReported()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        Assert.True(device.FreeMemoryBytes > 0);
        using IDeviceBuffer b = device.Allocate(4099);
        var bytes = new byte[4099];
        Array.Fill(bytes, (byte)7);
        device.Download(b, 0, bytes);
        Assert.All(bytes, x => Assert.Equal(0, x));
        Assert.Equal(device.Unified, b.IsHostMemory);
    }

    [SkippableFact]
    public void PreparedWeightHoldsTheSourceBytes()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        var bytes = new byte[3 * 2 * 33]; // f16 [3, 33]: rows of an odd element count, 198 bytes (not whole words)
        new Random(5).NextBytes(bytes);
        unsafe
        {
            fixed (byte* p = bytes)
            {
                using var weight = (VulkanWeight)device.PrepareWeight(new WeightSource("w", (nint)p, bytes.Length, DataType.F16, 3, 33, false));
                Assert.Equal(66, weight.RowBytes);
                Assert.False(weight.ReadsSourceInPlace);
                var back = new byte[bytes.Length];
                nint address = (nint)p;
                Assert.Throws<ArgumentException>(() => device.PrepareWeight(new WeightSource("i", address, 12, DataType.I32, 1, 3, false)));
                device.ReadHost(weight.Buffer, 0, back, "test");
                Assert.Equal(bytes, back);
            }
        }
    }
}

/// <summary>Tables larger than one binding may span are read in row windows.</summary>
public sealed class BindingWindowTests
{
    [SkippableTheory]
    [InlineData(DataType.F32)]
    [InlineData(DataType.F16)]
    public unsafe void EmbedReadsATableLargerThanOneBindingInWindows(DataType type)
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        const int v = 20, d = 9; // f16 rows of 18 bytes: windows must still start on a word
        device.MaxBindingBytes = 320; // the output (288 bytes) fits, the table (720 or 360) does not
        var values = Enumerable.Range(0, v * d).Select(i => (float)(i % 97) - 40).ToArray();
        byte[] bytes = type == DataType.F32
            ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray()
            : values.SelectMany(x => BitConverter.GetBytes((Half)x)).ToArray();
        int[] ids = [19, 0, 7, -3, 8, 15, 20, 16];
        fixed (byte* p = bytes)
        {
            using var table = (VulkanWeight)device.PrepareWeight(new WeightSource("t", (nint)p, bytes.Length, type, v, d, false));
            Assert.True(table.RowWindows(device.MaxBindingBytes).Count() > 1);
            using var stream = device.CreateStream();
            IDeviceBuffer idBuffer = device.Allocate(ids.Length * 4);
            device.Upload(idBuffer, 0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(ids.AsSpan()));
            TensorView output = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, ids.Length * d).ToArray(), ids.Length, d);
            stream.Embed(table, new TensorView(idBuffer, 0, DataType.I32, 1, ids.Length), output);
            stream.Synchronize();
            float[] got = VulkanFixture.Read(device, output);
            for (int t = 0; t < ids.Length; t++)
                for (int c = 0; c < d; c++)
                    Assert.Equal(ids[t] is >= 0 and < v ? values[ids[t] * d + c] : 0f, got[t * d + c]);
        }
    }

    [SkippableFact]
    public unsafe void MatMulAndQuantizedEmbedReadAWeightLargerThanOneBindingInWindows()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        const int n = 20, k = 96, t = 1; // q4_0 rows of 54 bytes: windows of 8 rows start on 16-byte boundaries; views ≤ 480 bytes
        var rng = new Random(5);
        byte[] bytes = new byte[n * 54];
        rng.NextBytes(bytes);
        for (int b = 0; b < bytes.Length; b += 18)
            BitConverter.TryWriteBytes(bytes.AsSpan(b, 2), (Half)(0.01 * (b % 7 + 1)));
        float[] x = Enumerable.Range(0, t * k).Select(i => (float)Math.Sin(i)).ToArray();
        int[] ids = [19, 0, 7, -3, 8, 15, 20, 16];
        fixed (byte* p = bytes)
        {
            using var weight = (VulkanWeight)device.PrepareWeight(new WeightSource("w", (nint)p, bytes.Length, DataType.Q4_0, n, k, false));
            using var stream = device.CreateStream();
            TensorView xv = VulkanFixture.Floats(device, x, t, k);
            IDeviceBuffer idBuffer = device.Allocate(ids.Length * 4);
            device.Upload(idBuffer, 0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(ids.AsSpan()));
            var idView = new TensorView(idBuffer, 0, DataType.I32, 1, ids.Length);
            (float[] Y, float[] E) Run()
            {
                TensorView y = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, t * n).ToArray(), t, n);
                stream.MatMul(xv, weight, y);
                var e = new List<float>();
                for (int i = 0; i < ids.Length; i++)
                {
                    TensorView row = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, k).ToArray(), 1, k);
                    stream.Embed(weight, idView with { Offset = 4 * i, Cols = 1 }, row);
                    stream.Synchronize();
                    e.AddRange(VulkanFixture.Read(device, row));
                }
                return (VulkanFixture.Read(device, y), e.ToArray());
            }
            var whole = Run();
            device.MaxBindingBytes = 480;
            Assert.Equal(3, weight.RowWindows(device.MaxBindingBytes).Count());
            var windowed = Run();
            Assert.DoesNotContain(whole.Y, float.IsNaN);
            Assert.DoesNotContain(whole.E, float.IsNaN);
            Assert.Equal(whole.Y, windowed.Y);
            Assert.Equal(whole.E, windowed.E);
            for (int c = 0; c < k; c++)
                Assert.Equal(0f, whole.E[3 * k + c]); // id -3: zeros
        }
    }

    [SkippableFact]
    public void CopyLargerThanOneBindingGoesInChunks()
    {
        // The bandwidth probe copies 512 MiB; lavapipe binds at most 128 MiB: Copy must split, not fail.
        using VulkanAccelerator device = VulkanFixture.Open();
        device.MaxBindingBytes = 320;
        const int n = 1000; // 4000 bytes: 13 chunks of at most 320 - alignment bytes
        float[] values = Enumerable.Range(0, n).Select(i => (float)i - 500).ToArray();
        TensorView source = VulkanFixture.Floats(device, values, 1, n);
        TensorView destination = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, n + 8).ToArray(), 1, n + 8);
        using var stream = device.CreateStream();
        stream.Copy(source, destination with { Offset = 16, Cols = n });
        stream.Synchronize();
        float[] got = VulkanFixture.Read(device, destination);
        Assert.True(float.IsNaN(got[3]) && float.IsNaN(got[n + 4]));
        Assert.Equal(values, got.AsSpan(4, n).ToArray());
    }
}
