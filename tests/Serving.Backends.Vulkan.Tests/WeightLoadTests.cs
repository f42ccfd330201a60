using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>A file mapped read-only, as the engine maps a GGUF file: the source of persistent weights.</summary>
internal sealed unsafe class MappedFile : IDisposable
{
    private readonly string _path;
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;

    public MappedFile(byte[] contents)
    {
        _path = Path.GetTempFileName();
        File.WriteAllBytes(_path, contents);
        _map = MemoryMappedFile.CreateFromFile(_path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        Base = p + _view.PointerOffset;
    }

    public byte* Base { get; }

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
        File.Delete(_path);
    }
}

/// <summary>
/// Weights read in place from a mapped file where the device imports host memory (VK_EXT_external_memory_host:
/// lavapipe, integrated GPUs), and copied otherwise, with the same results either way.
/// </summary>
public sealed unsafe class HostImportTests
{
    private static VulkanAccelerator OpenImporting()
    {
        VulkanAccelerator device = VulkanFixture.Open();
        if (device.HostImports is null)
        {
            string why = device.HostImportStatus;
            device.Dispose();
            Skip.If(true, $"{device.Descriptor.Id} does not import host memory here: {why}");
        }
        return device;
    }

    /// <summary>q4_0 rows with random blocks and sane scales (18-byte blocks: rows are no multiple of 16 bytes).</summary>
    private static byte[] Q4Rows(int rows, int cols, int seed)
    {
        var bytes = new byte[rows * cols / 32 * 18];
        new Random(seed).NextBytes(bytes);
        for (int b = 0; b < bytes.Length; b += 18)
            BitConverter.TryWriteBytes(bytes.AsSpan(b, 2), (Half)(0.01 * (b % 7 + 1)));
        return bytes;
    }

    [SkippableFact]
    public void MappedWeightsAreImportedOnceAndComputeExactlyAsCopies()
    {
        using VulkanAccelerator device = OpenImporting();
        const int n = 40, k = 96, t = 3, rowBytes = k / 32 * 18;
        byte[] a = Q4Rows(n, k, 1), b = Q4Rows(n, k, 2);
        // Tensors as a GGUF file places them: past a header, at offsets that are no multiple of the page or of 16.
        const int offsetA = 4096 + 40, offsetB = 3 * 4096 + 8;
        var file = new byte[5 * 4096];
        new Random(3).NextBytes(file);
        a.CopyTo(file, offsetA);
        b.CopyTo(file, offsetB);
        using var mapped = new MappedFile(file);

        WeightSource Source(string name, int at, bool persistent) => new(name, (nint)(mapped.Base + at), n * rowBytes, DataType.Q4_0, n, k, persistent);
        using var inPlaceA = (VulkanWeight)device.PrepareWeight(Source("a", offsetA, true));
        using var inPlaceB = (VulkanWeight)device.PrepareWeight(Source("b", offsetB, true));
        Assert.True(inPlaceA.ReadsSourceInPlace, device.HostImports!.LastFailure);
        Assert.True(inPlaceB.ReadsSourceInPlace, device.HostImports.LastFailure);
        Assert.Equal(0, inPlaceA.DeviceBytes);
        Assert.Equal(1, device.HostImports.Imports); // one import covers the whole mapping
        Assert.Equal(1, device.HostImports.Regions);
        Assert.True(device.HostImports.ImportedBytes >= file.Length);

        using var notPersistent = (VulkanWeight)device.PrepareWeight(Source("c", offsetA, false));
        Assert.False(notPersistent.ReadsSourceInPlace);
        device.HostImportEnabled = false;
        using var copyA = (VulkanWeight)device.PrepareWeight(Source("a", offsetA, true));
        using var copyB = (VulkanWeight)device.PrepareWeight(Source("b", offsetB, true));
        device.HostImportEnabled = true;
        Assert.False(copyA.ReadsSourceInPlace);
        Assert.Equal(copyA.Buffer.AllocatedBytes, copyA.DeviceBytes);

        // The imported buffer holds the file's bytes at the weight's offset.
        var back = new byte[a.Length];
        device.ReadHost(inPlaceA.Buffer, inPlaceA.Offset, back, "test");
        Assert.Equal(a, back);

        float[] x = Enumerable.Range(0, t * k).Select(i => (float)Math.Sin(0.3 * i)).ToArray();
        int[] ids = [39, 0, 7, -3, 8, 15, 40, 16];
        using var stream = device.CreateStream();
        TensorView xv = VulkanFixture.Floats(device, x, t, k);
        IDeviceBuffer idBuffer = device.Allocate(ids.Length * 4);
        device.Upload(idBuffer, 0, MemoryMarshal.AsBytes(ids.AsSpan()));
        var idView = new TensorView(idBuffer, 0, DataType.I32, 1, ids.Length);
        float[] Run(VulkanWeight w)
        {
            TensorView y = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, t * n).ToArray(), t, n);
            TensorView e = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, ids.Length * k).ToArray(), ids.Length, k);
            stream.MatMul(xv, w, y);
            stream.Embed(w, idView, e);
            stream.Synchronize();
            return [.. VulkanFixture.Read(device, y), .. VulkanFixture.Read(device, e)];
        }
        float[] expectA = Run(copyA), expectB = Run(copyB);
        Assert.DoesNotContain(expectA, float.IsNaN);
        Assert.NotEqual(expectA, expectB);
        Assert.Equal(expectA, Run(inPlaceA));
        Assert.Equal(expectB, Run(inPlaceB));
        Assert.Equal(expectA, Run(notPersistent));

        // Row windows of a weight that starts inside its buffer (binding offsets aligned down, slack left): one x row
        // (384 bytes) and 480-byte bindings split the 2160-byte weight.
        TensorView x1 = VulkanFixture.Floats(device, x.AsSpan(0, k).ToArray(), 1, k);
        float[] One(VulkanWeight w)
        {
            TensorView y = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, n).ToArray(), 1, n);
            stream.MatMul(x1, w, y);
            stream.Synchronize();
            return VulkanFixture.Read(device, y);
        }
        float[] wholeA = One(copyA), wholeB = One(copyB);
        device.MaxBindingBytes = 480;
        Assert.True(inPlaceB.RowWindows(device.MaxBindingBytes).Count() > 1);
        Assert.All(inPlaceB.RowWindows(device.MaxBindingBytes), w => Assert.True(w.Offset % 4 == 0 && w.Offset >= inPlaceB.Offset));
        Assert.Equal(wholeA, One(inPlaceA));
        Assert.Equal(wholeB, One(inPlaceB));
    }

    [SkippableFact]
    public void TheImportIsFreedWithItsLastWeight()
    {
        using VulkanAccelerator device = OpenImporting();
        byte[] a = Q4Rows(8, 64, 4);
        var file = new byte[8192];
        a.CopyTo(file, 64);
        a.CopyTo(file, 4096 + 32);
        using var mapped = new MappedFile(file);
        var w1 = device.PrepareWeight(new WeightSource("a", (nint)(mapped.Base + 64), a.Length, DataType.Q4_0, 8, 64, true));
        var w2 = device.PrepareWeight(new WeightSource("b", (nint)(mapped.Base + 4096 + 32), a.Length, DataType.Q4_0, 8, 64, true));
        Assert.True(w1.ReadsSourceInPlace && w2.ReadsSourceInPlace, device.HostImports!.LastFailure);
        Assert.Equal(1, device.HostImports.Regions);
        w1.Dispose();
        Assert.Equal(1, device.HostImports.Regions);
        w2.Dispose();
        Assert.Equal(0, device.HostImports.Regions);
        Assert.Equal(0, device.HostImports.ImportedBytes);
    }

    [SkippableFact]
    public void AnonymousMemoryImportsOnlyTheTensorsPages()
    {
        using VulkanAccelerator device = OpenImporting();
        byte[] a = Q4Rows(8, 64, 5);
        byte* memory = (byte*)NativeMemory.AlignedAlloc(3 * 4096, 4096);
        try
        {
            a.CopyTo(new Span<byte>(memory + 4096 + 64, a.Length));
            using var w = (VulkanWeight)device.PrepareWeight(new WeightSource("a", (nint)(memory + 4096 + 64), a.Length, DataType.Q4_0, 8, 64, true));
            Assert.True(w.ReadsSourceInPlace, device.HostImports!.LastFailure);
            Assert.Equal(4096, device.HostImports.ImportedBytes);
        }
        finally
        {
            NativeMemory.AlignedFree(memory);
        }
    }

    /// <summary>
    /// The point of the import: one copy of the weights in memory. Preparing and running a 64 MiB weight from a mapped
    /// file adds no anonymous memory (only the file's pages, shared with the page cache); the copy adds the whole weight.
    /// Linux only (RssAnon in /proc/self/status).
    /// </summary>
    [SkippableFact]
    public void ImportedWeightsAddNoAnonymousMemoryAndCopiesDo()
    {
        Skip.If(!OperatingSystem.IsLinux(), "reads RssAnon from /proc/self/status (Linux)");
        using VulkanAccelerator device = OpenImporting();
        const int n = 4096, k = 4096; // f32: 64 MiB
        const long bytes = (long)n * k * 4;
        string path = Path.GetTempFileName();
        try
        {
            using (var f = File.OpenWrite(path))
            {
                var row = new byte[k * 4];
                MemoryMarshal.Cast<byte, float>(row.AsSpan()).Fill(0.001f);
                for (int r = 0; r < n; r++) f.Write(row);
            }
            using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            using var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* p = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            try
            {
                using var stream = device.CreateStream();
                TensorView x = VulkanFixture.Floats(device, Enumerable.Repeat(1f, k).ToArray(), 1, k);
                TensorView y = VulkanFixture.Floats(device, new float[n], 1, n);
                // Compile the f32 MatMul pipeline first: LLVM's own memory is not the weights'.
                float[] small = Enumerable.Repeat(0.5f, 64 * k).ToArray();
                fixed (float* sp = small)
                using (IDeviceWeight warm = device.PrepareWeight(new WeightSource("warm", (nint)sp, small.Length * 4L, DataType.F32, 64, k, false)))
                {
                    stream.MatMul(x, warm, new TensorView(y.Buffer, 0, DataType.F32, 1, 64));
                    stream.Synchronize();
                }
                long Grow(bool import)
                {
                    device.HostImportEnabled = import;
                    long before = RssAnon();
                    using IDeviceWeight w = device.PrepareWeight(new WeightSource("w", (nint)(p + view.PointerOffset), bytes, DataType.F32, n, k, true));
                    Assert.Equal(import, w.ReadsSourceInPlace);
                    stream.MatMul(x, w, y);
                    stream.Synchronize();
                    float[] got = VulkanFixture.Read(device, y);
                    Assert.All(got, v => Assert.Equal(0.001f * k, v, 0.01f));
                    return RssAnon() - before;
                }
                long imported = Grow(import: true);
                long copied = Grow(import: false);
                Assert.True(imported < bytes / 4, $"importing a {bytes >> 20} MiB weight grew anonymous memory by {imported >> 20} MiB");
                Assert.True(copied > bytes * 3 / 4, $"copying a {bytes >> 20} MiB weight grew anonymous memory by only {copied >> 20} MiB");
            }
            finally
            {
                view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static long RssAnon()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(8).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException("no RssAnon in /proc/self/status");
    }
}

/// <summary>
/// On a device with its own memory (here lavapipe told to behave like one), weights go up through staging chunks
/// submitted without a host wait per tensor; the results equal those of the unified path, and the staging memory is
/// freed once the copies are done.
/// </summary>
public sealed unsafe class StagedUploadTests
{
    [SkippableFact]
    public void StagedWeightsUploadWithoutAWaitPerTensorAndComputeAsUnified()
    {
        using VulkanAccelerator unified = VulkanFixture.Open();
        using VulkanAccelerator staged = VulkanFixture.OpenStaging();
        Assert.False(staged.Unified);
        staged.Transfers.ChunkBytes = 4096; // a ring of small chunks: 12 weights of 1080 bytes fill several
        const int n = 20, k = 96, t = 2, count = 12;
        byte[][] weights = [.. Enumerable.Range(0, count).Select(i =>
        {
            var bytes = new byte[n * k / 32 * 18];
            new Random(i).NextBytes(bytes);
            for (int b = 0; b < bytes.Length; b += 18) BitConverter.TryWriteBytes(bytes.AsSpan(b, 2), (Half)(0.02 * (b % 5 + 1)));
            return bytes;
        })];
        float[] x = Enumerable.Range(0, t * k).Select(i => (float)Math.Cos(0.1 * i)).ToArray();

        float[][] Run(VulkanAccelerator device, out long submittedDuringLoad)
        {
            var prepared = new List<IDeviceWeight>();
            long before = device.Transfers.Submitted;
            foreach (byte[] w in weights)
                fixed (byte* p = w)
                    prepared.Add(device.PrepareWeight(new WeightSource("w", (nint)p, w.Length, DataType.Q4_0, n, k, false)));
            submittedDuringLoad = device.Transfers.Submitted - before;
            using var stream = device.CreateStream();
            TensorView xv = VulkanFixture.Floats(device, x, t, k);
            var results = new float[count][];
            for (int i = 0; i < count; i++)
            {
                TensorView y = VulkanFixture.Floats(device, Enumerable.Repeat(float.NaN, t * n).ToArray(), t, n);
                stream.MatMul(xv, prepared[i], y);
                stream.Synchronize();
                results[i] = VulkanFixture.Read(device, y);
            }
            foreach (IDeviceWeight w in prepared) w.Dispose();
            return results;
        }

        float[][] expected = Run(unified, out _);
        long waitsBefore = staged.Transfers.Waits;
        float[][] got = Run(staged, out long submitted);
        for (int i = 0; i < count; i++) Assert.Equal(expected[i], got[i]);
        // 12 × 1080 bytes through 4 KiB chunks: a handful of batches, not one wait per tensor.
        Assert.InRange(submitted, 2, count - 1);
        Assert.InRange(staged.Transfers.Waits - waitsBefore, 0, submitted);
        Assert.Equal(0, staged.Transfers.Chunks); // staging freed after the load
    }

    [SkippableFact]
    public void AllocateAndUploadOnDeviceMemoryAreOrderedWithoutWaits()
    {
        using VulkanAccelerator staged = VulkanFixture.OpenStaging();
        long before = staged.Transfers.Submitted;
        using IDeviceBuffer zero = staged.Allocate(4099);
        using IDeviceBuffer data = staged.Allocate(64);
        byte[] bytes = [.. Enumerable.Range(0, 64).Select(i => (byte)(i * 3))];
        staged.Upload(data, 0, bytes);
        staged.Upload(data, 8, bytes.AsSpan(0, 4)); // a second write to the same buffer in the batch: ordered by a barrier
        Assert.Equal(before, staged.Transfers.Submitted); // fills and uploads recorded, nothing waited on
        var back = new byte[64];
        staged.Download(data, 0, back);
        byte[] expected = [.. bytes];
        bytes.AsSpan(0, 4).CopyTo(expected.AsSpan(8));
        Assert.Equal(expected, back);
        var zeros = new byte[4099];
        Array.Fill(zeros, (byte)9);
        staged.Download(zero, 0, zeros);
        Assert.All(zeros, b => Assert.Equal(0, b));
    }
}
