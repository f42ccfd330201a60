using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;
using Serving.Engine.Synthetic;
using Serving.Host.Plugins;

namespace Serving.Host.Tests.Models;

/// <summary>
/// Measures process memory (RssAnon), so nothing else in this process may allocate meanwhile: the collection runs
/// alone, after the parallel ones.
/// </summary>
[CollectionDefinition("weight-memory", DisableParallelization = true)]
public sealed class WeightMemoryCollection;

/// <summary>
/// One copy of the weights in memory on the Cpu backend (issue 11): a mapped file is read in place (no anonymous
/// copy); <c>UseMmap = false</c> makes one anonymous copy and gives the file's pages back (this process's mapping and
/// the page cache); a zeroed KV cache or buffer is resident only where written. Linux only (RssAnon in
/// /proc/self/status, mincore, posix_fadvise). The model is the tiny shape in f32 (58 MiB of weight matrices), written
/// to its own file and synced, so no other process holds its pages.
/// </summary>
[Collection("weight-memory")]
[Trait("Category", "Slow")]
public sealed unsafe partial class WeightMemoryTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("serving-weightmem-").FullName;
    private readonly IAccelerator _device = DeviceRegistry.Discover(Path.Combine(AppContext.BaseDirectory, "plugins")).Open("cpu:0");

    public void Dispose()
    {
        _device.Dispose();
        Directory.Delete(_dir, recursive: true);
    }

    private string Model()
    {
        string path = Path.Combine(_dir, "tiny-f32.gguf");
        SyntheticModel.Create("tiny", DataType.F32, path, seed: 3);
        using (var f = new FileStream(path, FileMode.Open, FileAccess.ReadWrite))
            f.Flush(flushToDisk: true); // clean pages: the page cache drops only those
        return path;
    }

    private static ModelOptions Options(bool mmap) => new() { UseMmap = mmap, MaxBatchSequences = 1, MaxBatchTokens = 16, KvCacheTokens = 64, ContextLength = 64 };

    /// <summary>The weight matrices' byte ranges (2-D tensors): what a device copies.</summary>
    private static (long Offset, long Bytes)[] Matrices(string path)
    {
        using var file = GgufFile.Open(path);
        return [.. file.Tensors.Where(t => t.Dims.Length == 2).Select(t => (t.Offset, t.ByteSize))];
    }

    [SkippableFact]
    public void WithoutMmapTheFilesPagesAreGivenBackAfterTheCopy()
    {
        Skip.If(!OperatingSystem.IsLinux(), "mincore and posix_fadvise page-cache checks are Linux only");
        string path = Model();
        var matrices = Matrices(path);
        _ = File.ReadAllBytes(path); // every page into the page cache
        double before = ResidentFraction(path, matrices);
        Assert.True(before > 0.5, $"precondition: after reading the file, only {before:P0} of its weight pages are in the page cache");

        int[] mappedTokens, copiedTokens;
        using (var file = GgufFile.Open(path))
        using (var copied = LlamaModel.Load(file, _device, Options(mmap: false)))
        {
            Assert.False(copied.WeightsMapped);
            double after = ResidentFraction(path, matrices);
            Assert.True(after < 0.1, $"{after:P0} of the weight pages are still in the page cache after a --no-mmap load (before: {before:P0})");
            copiedTokens = Greedy(copied);
        }
        using (var file = GgufFile.Open(path))
        using (var mapped = LlamaModel.Load(file, _device, Options(mmap: true)))
        {
            Assert.True(mapped.WeightsMapped);
            mappedTokens = Greedy(mapped);
        }
        Assert.Equal(mappedTokens, copiedTokens); // the copy is the weights: a page given back is never one the model reads
    }

    [SkippableFact]
    public void MappedWeightsAddNoAnonymousMemoryAndACopyAddsOne()
    {
        Skip.If(!OperatingSystem.IsLinux(), "reads RssAnon from /proc/self/status (Linux)");
        string path = Model();
        long weights = Matrices(path).Sum(m => m.Bytes);
        using var file = GgufFile.Open(path);
        long Grow(bool mmap)
        {
            GC.Collect();
            GC.WaitForPendingFinalizers();
            long before = RssAnon();
            using var model = LlamaModel.Load(file, _device, Options(mmap));
            Assert.Equal(mmap, model.WeightsMapped);
            Greedy(model);
            return RssAnon() - before;
        }
        Grow(mmap: true); // warm-up: JIT, worker pool, scratch
        long mapped = Grow(mmap: true);
        long copied = Grow(mmap: false);
        Assert.True(mapped < weights / 4, $"a mapped load of {weights >> 20} MiB of weights grew anonymous memory by {mapped >> 20} MiB");
        Assert.True(copied > weights * 3 / 4, $"a copying load of {weights >> 20} MiB of weights grew anonymous memory by only {copied >> 20} MiB");
    }

    [SkippableFact]
    public void AZeroedKvCacheAndBufferAreResidentOnlyWhereWritten()
    {
        Skip.If(!OperatingSystem.IsLinux(), "reads RssAnon from /proc/self/status (Linux)");
        const long bytes = 128L << 20;
        GC.Collect();
        long before = RssAnon();
        // 16 layers × 1024 blocks × 16 slots × 8 heads × 64 dims × 2 (K and V) × 2 bytes = 256 MiB of f16 cache.
        using var cache = _device.CreateKvCache(new KvCacheSpec(16, 1024, 16, 8, 64, DataType.F16));
        using var buffer = _device.Allocate(bytes);
        var middle = new byte[1 << 20];
        _device.Download(buffer, bytes / 2, middle);
        Assert.All(middle, b => Assert.Equal(0, b)); // zero, as Allocate promises, without writing it
        long grown = RssAnon() - before;
        Assert.True(grown < 64L << 20, $"a 256 MiB KV cache and a 128 MiB buffer, never written, grew anonymous memory by {grown >> 20} MiB");
    }

    private static int[] Greedy(LlamaModel model)
    {
        var batch = new StepBatch(model.MaxBatchTokens, model.MaxBatchSequences, model.MaxBlocksPerSequence);
        batch.SequenceCount = 1;
        for (int k = 0; k < model.MaxBlocksPerSequence; k++) batch.BlockTables[k] = k;
        int[] tokens = [1, 450, 4996, 17354, 1701];
        for (int i = 0; i < tokens.Length; i++)
            batch.AddToken(tokens[i], i, 0, i, wantLogits: true, greedy: true);
        var greedy = new int[model.MaxBatchTokens];
        model.Forward(batch, Span<float>.Empty, greedy);
        return greedy[..tokens.Length];
    }

    /// <summary>The fraction of the ranges' pages in the page cache (mincore through a fresh read-only mapping, which faults nothing in).</summary>
    private static double ResidentFraction(string path, (long Offset, long Bytes)[] ranges)
    {
        using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        byte* p = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
        try
        {
            long page = Environment.SystemPageSize, resident = 0, total = 0;
            foreach (var (offset, bytes) in ranges)
            {
                // Whole pages inside the tensor only: a page shared with a neighbouring small tensor may be read again.
                long start = (offset + page - 1) / page * page, end = (offset + bytes) / page * page;
                if (end <= start) continue;
                var vec = new byte[(end - start) / page];
                fixed (byte* v = vec)
                    Assert.Equal(0, Mincore(p + start, (nuint)(end - start), v));
                resident += vec.Count(b => (b & 1) != 0);
                total += vec.Length;
            }
            return total == 0 ? 0 : (double)resident / total;
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    [LibraryImport("libc", EntryPoint = "mincore", SetLastError = true)]
    private static partial int Mincore(void* address, nuint length, byte* vec);

    private static long RssAnon()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
            if (line.StartsWith("RssAnon:", StringComparison.Ordinal))
                return long.Parse(line.AsSpan(8).Trim().TrimEnd("kB").Trim(), System.Globalization.CultureInfo.InvariantCulture) * 1024;
        throw new InvalidOperationException("no RssAnon in /proc/self/status");
    }
}
