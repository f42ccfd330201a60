using System.Runtime.InteropServices;
using Serving.Abstractions;
using Xunit.Abstractions;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>The dispatch layer: ops recorded, submitted once, read back; barriers only between dependent ops;
/// the pooled-descriptor fallback; stream-ordered uploads; KvWrite's packed layout; device timestamps.</summary>
public sealed class DispatchTests(ITestOutputHelper output)
{
    [SkippableFact]
    public void AddRunsWithValidationAndBroadcasts()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        using var stream = (VulkanStream)device.CreateStream();
        float[] a = [1, 2, 3, 4, 5, 6], b = [10, 20, 30];
        TensorView av = VulkanFixture.Floats(device, a, 2, 3), bv = VulkanFixture.Floats(device, b, 1, 3);
        TensorView o = new(device.Allocate(24), 0, DataType.F32, 2, 3);
        stream.Add(av, bv, o);
        stream.Synchronize();
        Assert.Equal([11f, 22, 33, 14, 25, 36], VulkanFixture.Read(device, o));
        Assert.Equal(1, stream.Submissions);
    }

    [SkippableFact]
    public void BarriersOnlyBetweenDependentOps()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        using var stream = (VulkanStream)device.CreateStream();
        TensorView x = VulkanFixture.Floats(device, [1, 2, 3, 4], 1, 4);
        IDeviceBuffer scratch = device.Allocate(64);
        TensorView y1 = new(scratch, 0, DataType.F32, 1, 4), y2 = new(scratch, 16, DataType.F32, 1, 4), y3 = new(scratch, 32, DataType.F32, 1, 4);
        stream.Add(x, x, y1);      // independent of each other: no barrier
        stream.Add(x, x, y2);
        Assert.Equal(0, stream.Barriers);
        stream.Add(y1, y2, y3);    // reads what both wrote: one barrier
        Assert.Equal(1, stream.Barriers);
        stream.Add(x, x, y1);      // writes y1, which the last op read: write after read, a barrier
        Assert.Equal(2, stream.Barriers);
        stream.Synchronize();
        Assert.Equal([4f, 8, 12, 16], VulkanFixture.Read(device, y3));
        Assert.Equal(1, stream.Submissions);
    }

    [SkippableFact]
    public void PooledDescriptorsWorkWithoutPushDescriptors()
    {
        Environment.SetEnvironmentVariable(VulkanAccelerator.NoPushDescriptorsVariable, "1");
        VulkanAccelerator device;
        try { device = VulkanFixture.Open(); }
        finally { Environment.SetEnvironmentVariable(VulkanAccelerator.NoPushDescriptorsVariable, null); }
        using (device)
        {
            Assert.False(device.Kernels.PushDescriptors);
            using var stream = device.CreateStream();
            TensorView x = VulkanFixture.Floats(device, Enumerable.Range(0, 1000).Select(i => (float)i).ToArray(), 10, 100);
            TensorView y = new(device.Allocate(4000), 0, DataType.F32, 10, 100);
            // More dispatches than one descriptor pool holds, across a flush.
            for (int i = 0; i < 600; i++)
            {
                stream.Add(x, x, y);
                if (i == 300) stream.Flush();
            }
            stream.Synchronize();
            Assert.Equal(2f * 999, VulkanFixture.Read(device, y)[999]);
        }
    }

    [SkippableFact]
    public void StreamUploadIsOrderedAndCopiesTheCallersBytesAtOnce()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        using var stream = device.CreateStream();
        IDeviceBuffer buffer = device.Allocate(16);
        TensorView v = new(buffer, 0, DataType.F32, 1, 4);
        TensorView o = new(device.Allocate(16), 0, DataType.F32, 1, 4);
        float[] host = [1, 2, 3, 4];
        stream.Upload(buffer, 0, MemoryMarshal.AsBytes(host.AsSpan()));
        host[0] = 100; // the stream already copied the bytes
        stream.Add(v, v, o);
        stream.Upload(buffer, 0, MemoryMarshal.AsBytes(new float[] { 5, 5, 5, 5 }.AsSpan())); // after the Add reads
        stream.Synchronize();
        Assert.Equal([2f, 4, 6, 8], VulkanFixture.Read(device, o));
        Assert.Equal([5f, 5, 5, 5], VulkanFixture.Read(device, v));
    }

    [SkippableTheory]
    [InlineData(DataType.F16)]
    [InlineData(DataType.F32)]
    public void KvWriteStoresRowsInTheirSlots(DataType type)
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        using var stream = device.CreateStream();
        // 2 layers, 2 blocks of 4 slots, Hkv 1, Dh 3 (odd: the f16 row pads to 2 words).
        using var cache = (VulkanKvCache)device.CreateKvCache(new KvCacheSpec(2, 2, 4, 1, 3, type));
        float[] k = [1.5f, -2, 0.333333f, 4, 5, 6], v = [-1, -2, -3, 7, 8, 65504];
        TensorView kv = VulkanFixture.Floats(device, k, 2, 3), vv = VulkanFixture.Floats(device, v, 2, 3);
        IDeviceBuffer slotBuffer = device.Allocate(8);
        device.Upload(slotBuffer, 0, MemoryMarshal.AsBytes(new int[] { 5, 99 }.AsSpan())); // 99 is out of range: skipped
        stream.KvWrite(kv, vv, cache, 1, new TensorView(slotBuffer, 0, DataType.I32, 1, 2));
        stream.Synchronize();
        var raw = new byte[cache.Buffer.Length];
        device.ReadHost(cache.Buffer, 0, raw, "test");
        long rowBytes = cache.RowWords * 4;
        float Element(long plane, long slot, int e) => type == DataType.F16
            ? (float)BitConverter.ToHalf(raw, (int)(plane + slot * rowBytes + 2 * e))
            : BitConverter.ToSingle(raw, (int)(plane + slot * rowBytes + 4 * e));
        for (int e = 0; e < 3; e++)
        {
            float expectK = type == DataType.F16 ? (float)(Half)k[e] : k[e];
            float expectV = type == DataType.F16 ? (float)(Half)v[e] : v[e];
            Assert.Equal(expectK, Element(cache.KOffset(1), 5, e));
            Assert.Equal(expectV, Element(cache.VOffset(1), 5, e));
        }
        // Everything else stayed zero: the other layer, the other slots, and the skipped row 99.
        long written = 0;
        for (int i = 0; i < raw.Length; i++) if (raw[i] != 0) written++;
        long slotStartK = cache.KOffset(1) + 5 * rowBytes, slotStartV = cache.VOffset(1) + 5 * rowBytes;
        for (int i = 0; i < raw.Length; i++)
            if (raw[i] != 0) Assert.True((i >= slotStartK && i < slotStartK + rowBytes) || (i >= slotStartV && i < slotStartV + rowBytes), $"byte {i} written");
        Assert.True(written > 0);
    }

    [SkippableFact]
    public unsafe void Int8MatMulsQuantizeASharedInputOnceAndAgainAfterItIsWritten()
    {
        using VulkanAccelerator device = VulkanFixture.Open();
        using var stream = (VulkanStream)device.CreateStream();
        const int n = 3, k = 64;
        // q8_0 rows with d = 1 and small integer quants; x blocks whose largest |value| is 127, so x quantizes exactly
        // (d_x = 1, q = x) and y is the exact integer dot product.
        var w = new byte[n * (k / 32) * 34];
        var wq = new int[n * k];
        for (int r = 0; r < n; r++)
            for (int b = 0; b < k / 32; b++)
            {
                int at = (r * (k / 32) + b) * 34;
                w[at] = 0x00;
                w[at + 1] = 0x3C; // f16 1.0
                for (int i = 0; i < 32; i++)
                {
                    int q = (r * 7 + b * 3 + i) % 9 - 4;
                    wq[r * k + b * 32 + i] = q;
                    w[at + 2 + i] = (byte)(sbyte)q;
                }
            }
        float[] X(int seed) => Enumerable.Range(0, k).Select(i => i % 32 == 5 ? 127f : (float)((i * seed) % 101 - 50)).ToArray();
        float[] Expected(float[] x) => Enumerable.Range(0, n).Select(r => (float)Enumerable.Range(0, k).Sum(i => wq[r * k + i] * (int)x[i])).ToArray();
        fixed (byte* p = w)
        {
            using var weight = device.PrepareWeight(new WeightSource("w", (nint)p, w.Length, DataType.Q8_0, n, k, false));
            Assert.StartsWith("matmul_q8_0_int8", device.GetVariants(OpKind.MatMul, DataType.Q8_0)[0].Name, StringComparison.Ordinal);
            float[] x1 = X(13), x2 = X(29);
            TensorView x = VulkanFixture.Floats(device, x1, 1, k);
            TensorView[] y = [.. Enumerable.Range(0, 4).Select(_ => new TensorView(device.Allocate(n * 4), 0, DataType.F32, 1, n))];
            long before = stream.Dispatches;
            for (int i = 0; i < 3; i++) stream.MatMul(x, weight, y[i]);   // the q, k, v pattern: one quantization
            Assert.Equal(4, stream.Dispatches - before);
            stream.Upload(x.Buffer, 0, MemoryMarshal.AsBytes(x2.AsSpan()));  // x written: the next MatMul quantizes again
            stream.MatMul(x, weight, y[3]);
            Assert.Equal(6, stream.Dispatches - before);
            stream.Synchronize();
            for (int i = 0; i < 3; i++) Assert.Equal(Expected(x1), VulkanFixture.Read(device, y[i]));
            Assert.Equal(Expected(x2), VulkanFixture.Read(device, y[3]));
        }
    }

    [SkippableFact]
    public void TimesOneAddAndOneRmsNormOnTheDevice()
    {
        using VulkanAccelerator device = VulkanFixture.Open(validation: false);
        using var stream = device.CreateStream();
        const int t = 1, d = 4096;
        var data = Enumerable.Range(0, t * d).Select(i => (float)Math.Sin(i)).ToArray();
        TensorView x = VulkanFixture.Floats(device, data, t, d), w = VulkanFixture.Floats(device, data[..d], 1, d);
        TensorView y = new(device.Allocate(t * d * 4L), 0, DataType.F32, t, d);
        double best = double.MaxValue, bestNorm = double.MaxValue;
        for (int i = 0; i < 20; i++)
        {
            var s0 = stream.RecordTimestamp();
            stream.Add(x, w, y);
            var s1 = stream.RecordTimestamp();
            stream.RmsNorm(x, w, y, 1e-5f);
            var s2 = stream.RecordTimestamp();
            stream.Synchronize();
            best = Math.Min(best, stream.Elapsed(s0, s1).TotalMicroseconds);
            bestNorm = Math.Min(bestNorm, stream.Elapsed(s1, s2).TotalMicroseconds);
        }
        output.WriteLine($"{device.Descriptor.Name}: Add [{t}, {d}] {best:0.0} µs, RmsNorm [{t}, {d}] {bestNorm:0.0} µs (best of 20, device timestamps)");
        Assert.True(best > 0 && bestNorm > 0);
    }
}
