using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Bench;

/// <summary>
/// The quick op table (not BenchmarkDotNet): every op × weight type × MatMul variant at model-like shapes, timed with a
/// warm-up and the median of several batches, printed as µs/op, GB/s (bytes read + written) and GFLOP/s — the
/// tuner's raw data and a vendor's first report. A host memcpy row gives the scale. Shapes: T = rows in the step,
/// N/K = MatMul output/input dims, D = model dim, H/Hkv = heads, Dh = head dim, F = FFN dim, V = vocab.
/// </summary>
public sealed partial class OpsTable(IAccelerator device, TimeSpan budgetPerCase, bool threadTime = false)
{
    private readonly List<string[]> _rows = [];

    /// <summary>Runs every case and prints the table to stdout.</summary>
    public void Run()
    {
        Console.WriteLine($"device {device.Descriptor.Id}: {device.Descriptor.Name} ({device.Descriptor.Vendor}), {budgetPerCase.TotalSeconds:F2} s per case");
        using var stream = device.CreateStream();
        HostMemcpy();
        MatMul(stream);
        Embed(stream);
        PerRow(stream);
        Attention(stream);
        Copy(stream);
        Print();
    }

    /// <summary>Only MatMul at N = K = <paramref name="size"/>, T = 1 and 64, for <paramref name="types"/>: the default
    /// variant, or every variant when <paramref name="allVariants"/> (the quick before/after check of one kernel).</summary>
    public void RunMatMul(int size, IReadOnlyList<DataType> types, bool allVariants)
    {
        Console.WriteLine($"device {device.Descriptor.Id}: {device.Descriptor.Name} ({device.Descriptor.Vendor}), {budgetPerCase.TotalSeconds:F2} s per case");
        using var stream = device.CreateStream();
        foreach (var type in types)
        {
            if (!Supported(OpKind.MatMul, type)) continue;
            using var w = BenchData.Weight(device, type, size, size, BenchData.Weights(type, size, size));
            var variants = allVariants ? device.GetVariants(OpKind.MatMul, type).Cast<KernelVariant?>().ToList() : [null];
            if (variants.Count == 0) variants.Add(null);
            foreach (int t in new[] { 1, 64 })
            {
                using var x = Owned(BenchData.Upload(device, DataType.F32, t, size, BenchData.Bytes(BenchData.Floats(t * size))));
                using var y = Owned(BenchData.Allocate(device, DataType.F32, t, size));
                foreach (var variant in variants)
                    Time("MatMul", type, variant?.Name ?? "default", $"T={t} N={size} K={size}",
                        type.RowBytes(size) * (double)size + 4.0 * t * 2 * size, 2.0 * t * size * size,
                        () => stream.MatMul(x.View, w, y.View, variant), stream);
            }
        }
        Print();
    }

    private void MatMul(IComputeStream stream)
    {
        const int n = 2048, k = 8192;
        foreach (var type in new[] { DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K })
        {
            if (!Supported(OpKind.MatMul, type)) continue;
            using var w = BenchData.Weight(device, type, n, k, BenchData.Weights(type, n, k));
            var variants = device.GetVariants(OpKind.MatMul, type);
            foreach (int t in new[] { 1, 64 })
            {
                using var x = Owned(BenchData.Upload(device, DataType.F32, t, k, BenchData.Bytes(BenchData.Floats(t * k))));
                using var y = Owned(BenchData.Allocate(device, DataType.F32, t, n));
                foreach (var variant in variants.Count == 0 ? [null] : variants.Cast<KernelVariant?>())
                    Time("MatMul", type, variant?.Name ?? "default", $"T={t} N={n} K={k}",
                        type.RowBytes(k) * n + 4.0 * t * (k + n), 2.0 * t * n * k,
                        () => stream.MatMul(x.View, w, y.View, variant), stream);
            }
        }
    }

    private void Embed(IComputeStream stream)
    {
        const int v = 4096, d = 2048, t = 64;
        using var ids = Owned(BenchData.Upload(device, DataType.I32, 1, t, BenchData.Bytes(Enumerable.Range(0, t).Select(i => i * 61 % v).ToArray())));
        using var y = Owned(BenchData.Allocate(device, DataType.F32, t, d));
        foreach (var type in new[] { DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0, DataType.Q5_0, DataType.Q4_K, DataType.Q5_K, DataType.Q6_K })
        {
            if (!Supported(OpKind.Embed, type)) continue;
            using var table = BenchData.Weight(device, type, v, d, BenchData.Weights(type, v, d));
            Time("Embed", type, "default", $"T={t} V={v} D={d}", t * (type.RowBytes(d) + 4.0 * d), 0,
                () => stream.Embed(table, ids.View, y.View), stream);
        }
    }

    private void PerRow(IComputeStream stream)
    {
        const int t = 64, d = 4096, f = 8192, heads = 32, headDim = 128;
        using var a = Owned(BenchData.Upload(device, DataType.F32, t, f, BenchData.Bytes(BenchData.Floats(t * f, 3))));
        using var b = Owned(BenchData.Upload(device, DataType.F32, t, f, BenchData.Bytes(BenchData.Floats(t * f, 5))));
        using var y = Owned(BenchData.Allocate(device, DataType.F32, t, f));
        using var w = Owned(BenchData.Upload(device, DataType.F32, 1, d, BenchData.Bytes(BenchData.Floats(d, 9))));
        var ad = a.View.Reshape(t * f / d, d).SliceRows(0, t);
        var yd = y.View.Reshape(t * f / d, d).SliceRows(0, t);
        if (Supported(OpKind.RmsNorm, DataType.F32))
            Time("RmsNorm", DataType.F32, "default", $"T={t} D={d}", 4.0 * (2 * t * d + d), 4.0 * t * d,
                () => stream.RmsNorm(ad, w.View, yd, 1e-5f), stream);
        if (Supported(OpKind.SwiGlu, DataType.F32))
            Time("SwiGlu", DataType.F32, "default", $"T={t} F={f}", 12.0 * t * f, 0, () => stream.SwiGlu(a.View, b.View, y.View), stream);
        if (Supported(OpKind.Add, DataType.F32))
        {
            Time("Add", DataType.F32, "default", $"T={t} D={f}", 12.0 * t * f, t * f, () => stream.Add(a.View, b.View, y.View), stream);
            Time("Add", DataType.F32, "broadcast", $"T={t} D={f} b=[1, D]", 4.0 * (2 * t * f + f), t * f, () => stream.Add(a.View, b.View.SliceRows(0, 1), y.View), stream);
        }
        if (Supported(OpKind.Gather, DataType.F32))
        {
            const int rows = 8;
            using var ids = Owned(BenchData.Upload(device, DataType.I32, 1, rows, BenchData.Bytes(Enumerable.Range(0, rows).Select(i => i * 7 % t).ToArray())));
            var ya = y.View.SliceRows(0, rows);
            Time("Gather", DataType.F32, "default", $"R={rows} of T={t} D={f}", 8.0 * rows * f, 0, () => stream.Gather(a.View, ids.View, ya), stream);
        }
        if (Supported(OpKind.Rope, DataType.F32))
        {
            var inv = Enumerable.Range(0, headDim / 2).Select(i => (float)Math.Pow(10000, -2.0 * i / headDim)).ToArray();
            using var freq = Owned(BenchData.Upload(device, DataType.F32, 1, headDim / 2, BenchData.Bytes(inv)));
            using var pos = Owned(BenchData.Upload(device, DataType.I32, 1, t, BenchData.Bytes(Enumerable.Range(100, t).ToArray())));
            var x = y.View.Reshape(t * f / (heads * headDim), heads * headDim).SliceRows(0, t);
            foreach (var style in new[] { RopeStyle.Normal, RopeStyle.NeoX })
            {
                var config = new RopeConfig(heads, headDim, headDim, style, freq.View);
                Time("Rope", DataType.F32, style.ToString().ToLowerInvariant(), $"T={t} H={heads} Dh={headDim}", 8.0 * t * heads * headDim, 0,
                    () => stream.Rope(x, pos.View, config), stream);
            }
        }
        if (Supported(OpKind.Argmax, DataType.F32))
        {
            const int v = 32000, rows = 8;
            using var logits = Owned(BenchData.Upload(device, DataType.F32, rows, v, BenchData.Bytes(BenchData.Floats(rows * v, 17))));
            using var ids = Owned(BenchData.Allocate(device, DataType.I32, 1, rows));
            Time("Argmax", DataType.F32, "default", $"T={rows} V={v}", 4.0 * rows * v, 0, () => stream.Argmax(logits.View, ids.View), stream);
        }
    }

    private void Attention(IComputeStream stream)
    {
        // Decode of 8 sequences at 1024 cached positions each, llama-3-8B head shape (H 32, Hkv 8, Dh 128), per cache type.
        const int sequences = 8, context = 1024, heads = 32, kvHeads = 8, headDim = 128, blockSize = 16;
        int perSequence = context / blockSize, slots = sequences * context, width = kvHeads * headDim;
        using var tables = Owned(BenchData.Upload(device, DataType.I32, sequences, perSequence, BenchData.Bytes(Enumerable.Range(0, sequences * perSequence).ToArray())));
        using var positions = Owned(BenchData.Upload(device, DataType.I32, 1, sequences, BenchData.Bytes(Enumerable.Repeat(context - 1, sequences).ToArray())));
        using var sequence = Owned(BenchData.Upload(device, DataType.I32, 1, sequences, BenchData.Bytes(Enumerable.Range(0, sequences).ToArray())));
        using var q = Owned(BenchData.Upload(device, DataType.F32, sequences, heads * headDim, BenchData.Bytes(BenchData.Floats(sequences * heads * headDim, 29))));
        using var y = Owned(BenchData.Allocate(device, DataType.F32, sequences, heads * headDim));
        var batch = new AttentionBatch(positions.View, sequence.View, tables.View, heads, 1 / MathF.Sqrt(headDim), context - 1, ContiguousSequences: true);
        foreach (var type in new[] { DataType.F32, DataType.F16 })
        {
            if (!Supported(OpKind.KvWrite, type) || !Supported(OpKind.Attention, type)) continue;
            using var cache = device.CreateKvCache(new KvCacheSpec(1, slots / blockSize, blockSize, kvHeads, headDim, type));
            {
                // Every slot holds random rows, written in chunks of one sequence.
                using var all = Owned(BenchData.Upload(device, DataType.F32, context, width, BenchData.Bytes(BenchData.Floats(context * width, 19))));
                for (int s = 0; s < sequences; s++)
                {
                    using var ids = Owned(BenchData.Upload(device, DataType.I32, 1, context, BenchData.Bytes(Enumerable.Range(s * context, context).ToArray())));
                    stream.KvWrite(all.View, all.View, cache, 0, ids.View);
                }
                stream.Synchronize();
            }
            using var slotIds = Owned(BenchData.Upload(device, DataType.I32, 1, sequences, BenchData.Bytes(Enumerable.Range(0, sequences).Select(s => s * context + context - 1).ToArray())));
            var kv = q.View.Reshape(sequences * heads / kvHeads, width).SliceRows(0, sequences);
            Time("KvWrite", type, "default", $"T={sequences} Hkv={kvHeads} Dh={headDim}", sequences * (8.0 * width + 2 * type.RowBytes(width)), 0,
                () => stream.KvWrite(kv, kv, cache, 0, slotIds.View), stream);
            Time("Attention", type, "default", $"decode S={sequences} ctx={context} H={heads} Hkv={kvHeads} Dh={headDim}",
                cache.Layout.Bytes + 8.0 * sequences * heads * headDim, 4.0 * sequences * context * heads * headDim,
                () => stream.Attention(q.View, cache, 0, batch, y.View), stream);
        }
    }

    private void Copy(IComputeStream stream)
    {
        const int bytes = 256 << 20; // several times any last-level cache
        if (!Supported(OpKind.Copy, DataType.F32)) return;
        using var a = Owned(BenchData.Allocate(device, DataType.F32, 1, bytes / 4));
        using var b = Owned(BenchData.Allocate(device, DataType.F32, 1, bytes / 4));
        Time("Copy", DataType.F32, "default", "256 MiB", 2.0 * bytes, 0, () => stream.Copy(a.View, b.View), stream);
    }

    private unsafe void HostMemcpy()
    {
        const int bytes = 256 << 20;
        void* a = NativeMemory.AlignedAlloc(bytes, 64), b = NativeMemory.AlignedAlloc(bytes, 64);
        try
        {
            new Span<byte>(a, bytes).Fill(1);
            new Span<byte>(b, bytes).Clear();
            Time("host memcpy", DataType.F32, "1 thread", "256 MiB", 2.0 * bytes, 0, () => Buffer.MemoryCopy(a, b, bytes, bytes), null);
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
        }
    }

    private bool Supported(OpKind op, DataType type)
    {
        var support = device.Supports(new OpQuery(op, type));
        if (!support.Supported) _rows.Add([op.ToString(), type.Name(), "-", "-", "unsupported", support.Reason, ""]);
        return support.Supported;
    }

    // Warm-up (also JIT and first-touch), then batches of calls each long enough to time well; the median batch wins.
    private void Time(string op, DataType type, string variant, string shape, double bytes, double flops, Action call, IComputeStream? stream)
    {
        void Once() { call(); stream?.Synchronize(); }
        try
        {
            var watch = Stopwatch.StartNew();
            Once();
            double first = watch.Elapsed.TotalSeconds;
            int perBatch = Math.Max(1, (int)(0.02 / Math.Max(first, 1e-7)));
            // Warm up for a fixed time, not a fixed count: the first case after an upload otherwise reads slow
            // (worker threads parked, clocks ramping) and a variant measured first looked ~1.8× slower than the
            // identical code path measured second.
            var warm = Stopwatch.StartNew();
            do Once(); while (warm.Elapsed < TimeSpan.FromMilliseconds(100));
            var samples = new List<double>();
            watch.Restart();
            while (samples.Count < 3 || (watch.Elapsed < budgetPerCase && samples.Count < 200))
            {
                if (threadTime)
                {
                    double t0 = ThreadSeconds();
                    for (int i = 0; i < perBatch; i++) Once();
                    samples.Add((ThreadSeconds() - t0) / perBatch);
                    continue;
                }
                long start = Stopwatch.GetTimestamp();
                for (int i = 0; i < perBatch; i++) Once();
                samples.Add(Stopwatch.GetElapsedTime(start).TotalSeconds / perBatch);
            }
            samples.Sort();
            // Thread CPU time: the fastest batch (the least disturbed by other processes' cache traffic); wall time: the median.
            double seconds = threadTime ? samples[0] : samples[samples.Count / 2];
            _rows.Add([op, type.Name(), variant, shape, F(seconds * 1e6, "F1"), F(bytes / seconds / 1e9, "F1"), flops > 0 ? F(flops / seconds / 1e9, "F1") : ""]);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            _rows.Add([op, type.Name(), variant, shape, "error", e.GetType().Name, e.Message]);
        }
    }

    private static string F(double value, string format) => value.ToString(format, CultureInfo.InvariantCulture);

    private void Print()
    {
        string[] header = ["op", "type", "variant", "shape", "µs/op", "GB/s", "GFLOP/s"];
        var widths = header.Select((h, i) => Math.Max(h.Length, _rows.Select(r => r[i].Length).DefaultIfEmpty(0).Max())).ToArray();
        string Line(string[] cells) => string.Join("  ", cells.Select((c, i) => i >= 4 ? c.PadLeft(widths[i]) : c.PadRight(widths[i])));
        Console.WriteLine(Line(header));
        Console.WriteLine(string.Join("  ", widths.Select(w => new string('-', w))));
        foreach (var row in _rows) Console.WriteLine(Line(row));
    }

    private static OwnedView Owned(TensorView view) => new(view);

    /// <summary>A view that frees its buffer at the end of a using block.</summary>
    private readonly record struct OwnedView(TensorView View) : IDisposable
    {
        public void Dispose() => View.Buffer.Dispose();
    }

    /// <summary>The calling thread's CPU time in seconds (Linux).</summary>
    private static double ThreadSeconds()
    {
        if (ClockGetTime(3 /* CLOCK_THREAD_CPUTIME_ID */, out var ts) != 0) throw new InvalidOperationException("clock_gettime failed");
        return ts.Seconds + ts.Nanoseconds * 1e-9;
    }

    private struct TimeSpec
    {
        public long Seconds;
        public long Nanoseconds;
    }

    [LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);
}
