using System.Diagnostics;
using System.Globalization;
using Serving.Abstractions;

namespace Serving.Bench;

/// <summary>
/// <c>attention [--quick]</c>: decode attention over f32 and f16 caches holding the same values, at several batch
/// sizes (S sequences, one query row each), context lengths and head shapes. The two cache types are timed in
/// alternating batches (f32, f16, f32, …) so that a shared, noisy machine slows both alike; the table gives the median
/// µs of each and their ratio f16/f32 (below 1: the f16 cache is faster).
/// With <paramref name="threadTime"/> (<c>--thread-time</c>, Linux) batches are timed by the calling thread's CPU time,
/// which a busy machine's preemptions do not inflate; it counts all the work only when the backend runs on the calling
/// thread alone (Cpu backend with DOTNET_PROCESSOR_COUNT=1).
/// </summary>
public sealed partial class AttentionSweep(IAccelerator device, TimeSpan budgetPerCase, bool threadTime = false)
{
    private const int BlockSize = 16;

    /// <summary>Runs every shape and prints one line per shape.</summary>
    public void Run()
    {
        Console.WriteLine($"device {device.Descriptor.Id}: {device.Descriptor.Name}, {budgetPerCase.TotalSeconds:F2} s per shape");
        Console.WriteLine($"{"S",2} {"ctx",5} {"H",3} {"Hkv",3} {"Dh",4}  {"f32 µs",9} {"f16 µs",9}  f16/f32");
        using var stream = device.CreateStream();
        foreach (var (heads, kvHeads, headDim) in new[] { (32, 8, 128), (16, 16, 64), (14, 2, 64) })
            foreach (int context in new[] { 512, 4096 })
                foreach (int sequences in new[] { 1, 8 })
                    Shape(stream, sequences, context, heads, kvHeads, headDim);
    }

    /// <summary>
    /// <c>attention --verify</c>: the f16 cache must give the bits the f32 cache gives when both hold the same
    /// half-representable values (the f16 path widens exactly), also with subnormals, ∞ and NaN in the cache and large
    /// |q|. Returns the number of mismatching shapes (0: all bit-identical).
    /// </summary>
    public int Verify()
    {
        using var stream = device.CreateStream();
        int bad = 0;
        foreach (var (heads, kvHeads, headDim) in new[] { (8, 2, 64), (4, 4, 128), (6, 2, 40), (3, 1, 24) })
            foreach (int context in new[] { 37, 300 })
                foreach (string mix in new[] { "plain", "subnormal", "wide", "special-k", "special-v", "large-q" })
                {
                    int sequences = 3, perSequence = (context + BlockSize - 1) / BlockSize, width = kvHeads * headDim;
                    var owned = new List<TensorView>();
                    TensorView Own(TensorView v) { owned.Add(v); return v; }
                    var caches = new List<IKvCache>();
                    try
                    {
                        var rng = new Random(context * 31 + headDim + mix.Length);
                        float Value(bool special)
                        {
                            if (special && rng.Next(50) == 0) return rng.Next(3) switch { 0 => float.PositiveInfinity, 1 => float.NegativeInfinity, _ => float.NaN };
                            return mix switch
                            {
                                "subnormal" => (float)(Half)((rng.NextSingle() * 2 - 1) * (rng.Next(4) == 0 ? 1e-6f : 1f)),
                                "wide" => (float)BitConverter.UInt16BitsToHalf((ushort)(rng.Next(0x7C00) | (rng.Next(2) << 15))) * 1e-3f is var w && float.IsFinite(w) ? (float)(Half)w : 0,
                                _ => (float)(Half)(rng.NextSingle() * 2 - 1),
                            };
                        }
                        var tables = Own(BenchData.Upload(device, DataType.I32, sequences, perSequence, BenchData.Bytes(Enumerable.Range(0, sequences * perSequence).ToArray())));
                        int[] pos = [context - 1, context / 2, 0];
                        var positions = Own(BenchData.Upload(device, DataType.I32, 1, sequences, BenchData.Bytes(pos)));
                        var sequence = Own(BenchData.Upload(device, DataType.I32, 1, sequences, BenchData.Bytes(Enumerable.Range(0, sequences).ToArray())));
                        var qv = BenchData.Floats(sequences * heads * headDim, 29);
                        if (mix == "large-q") for (int i = 0; i < qv.Length; i += 97) qv[i] = 70000f * (i % 2 == 0 ? 1 : -1);
                        var q = Own(BenchData.Upload(device, DataType.F32, sequences, heads * headDim, BenchData.Bytes(qv)));
                        float[] kv = new float[perSequence * BlockSize * width], vv = new float[kv.Length];
                        for (int i = 0; i < kv.Length; i++) { kv[i] = Value(mix == "special-k"); vv[i] = Value(mix == "special-v"); }
                        var k = Own(BenchData.Upload(device, DataType.F32, kv.Length / width, width, BenchData.Bytes(kv)));
                        var v = Own(BenchData.Upload(device, DataType.F32, kv.Length / width, width, BenchData.Bytes(vv)));
                        var batch = new AttentionBatch(positions, sequence, tables, heads, 1 / MathF.Sqrt(headDim), context - 1, ContiguousSequences: true);
                        var outputs = new List<byte[]>();
                        foreach (var type in new[] { DataType.F32, DataType.F16 })
                        {
                            var cache = device.CreateKvCache(new KvCacheSpec(1, sequences * perSequence, BlockSize, kvHeads, headDim, type));
                            caches.Add(cache);
                            for (int s = 0; s < sequences; s++)
                            {
                                var ids = Own(BenchData.Upload(device, DataType.I32, 1, kv.Length / width, BenchData.Bytes(Enumerable.Range(s * perSequence * BlockSize, kv.Length / width).ToArray())));
                                stream.KvWrite(k, v, cache, 0, ids);
                            }
                            var y = Own(BenchData.Allocate(device, DataType.F32, sequences, heads * headDim));
                            stream.Attention(q, cache, 0, batch, y);
                            var bytes = new byte[sequences * heads * headDim * 4];
                            stream.Download(y.Buffer, 0, bytes);
                            stream.Synchronize();
                            outputs.Add(bytes);
                        }
                        bool same = outputs[0].AsSpan().SequenceEqual(outputs[1]);
                        if (!same) bad++;
                        Console.WriteLine($"{(same ? "same" : "DIFFERENT")}  H={heads} Hkv={kvHeads} Dh={headDim} ctx={context} {mix}");
                    }
                    finally
                    {
                        foreach (var cache in caches) cache.Dispose();
                        foreach (var view in owned) view.Buffer.Dispose();
                    }
                }
        return bad;
    }

    private void Shape(IComputeStream stream, int sequences, int context, int heads, int kvHeads, int headDim)
    {
        int perSequence = context / BlockSize, slots = sequences * context, width = kvHeads * headDim;
        var owned = new List<TensorView>();
        TensorView Own(TensorView v) { owned.Add(v); return v; }
        var caches = new List<IKvCache>();
        try
        {
            var tables = Own(BenchData.Upload(device, DataType.I32, sequences, perSequence, BenchData.Bytes(Enumerable.Range(0, sequences * perSequence).ToArray())));
            var positions = Own(BenchData.Upload(device, DataType.I32, 1, sequences, BenchData.Bytes(Enumerable.Repeat(context - 1, sequences).ToArray())));
            var sequence = Own(BenchData.Upload(device, DataType.I32, 1, sequences, BenchData.Bytes(Enumerable.Range(0, sequences).ToArray())));
            var q = Own(BenchData.Upload(device, DataType.F32, sequences, heads * headDim, BenchData.Bytes(BenchData.Floats(sequences * heads * headDim, 29))));
            var y = Own(BenchData.Allocate(device, DataType.F32, sequences, heads * headDim));
            var all = Own(BenchData.Upload(device, DataType.F32, context, width, BenchData.Bytes(BenchData.Floats(context * width, 19))));
            var batch = new AttentionBatch(positions, sequence, tables, heads, 1 / MathF.Sqrt(headDim), context - 1, ContiguousSequences: true);
            var calls = new List<Action>();
            foreach (var type in new[] { DataType.F32, DataType.F16 })
            {
                var cache = device.CreateKvCache(new KvCacheSpec(1, slots / BlockSize, BlockSize, kvHeads, headDim, type));
                caches.Add(cache);
                for (int s = 0; s < sequences; s++)
                {
                    var ids = Own(BenchData.Upload(device, DataType.I32, 1, context, BenchData.Bytes(Enumerable.Range(s * context, context).ToArray())));
                    stream.KvWrite(all, all, cache, 0, ids);
                }
                calls.Add(() => { stream.Attention(q, cache, 0, batch, y); stream.Synchronize(); });
            }
            stream.Synchronize();
            var (f32, f16) = Interleaved(calls[0], calls[1]);
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{sequences,2} {context,5} {heads,3} {kvHeads,3} {headDim,4}  {f32 * 1e6,9:F1} {f16 * 1e6,9:F1}  {f16 / f32,7:F3}"));
        }
        finally
        {
            foreach (var cache in caches) cache.Dispose();
            foreach (var view in owned) view.Buffer.Dispose();
        }
    }

    // Warm-up of both, then alternating batches of ~20 ms each until the budget is spent; the median of each wins.
    private (double A, double B) Interleaved(Action a, Action b)
    {
        var watch = Stopwatch.StartNew();
        a();
        b();
        int perBatch = Math.Max(1, (int)(0.02 / Math.Max(watch.Elapsed.TotalSeconds / 2, 1e-7)));
        var warm = Stopwatch.StartNew();
        do { a(); b(); } while (warm.Elapsed < TimeSpan.FromMilliseconds(100));
        List<double> sa = [], sb = [];
        watch.Restart();
        while (sa.Count < 5 || (watch.Elapsed < budgetPerCase && sa.Count < 200))
        {
            sa.Add(Batch(a, perBatch));
            sb.Add(Batch(b, perBatch));
        }
        sa.Sort();
        sb.Sort();
        return (sa[sa.Count / 2], sb[sb.Count / 2]);
    }

    private double Batch(Action call, int count)
    {
        if (threadTime)
        {
            double t0 = ThreadSeconds();
            for (int i = 0; i < count; i++) call();
            return (ThreadSeconds() - t0) / count;
        }
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < count; i++) call();
        return Stopwatch.GetElapsedTime(start).TotalSeconds / count;
    }

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

    [System.Runtime.InteropServices.LibraryImport("libc", EntryPoint = "clock_gettime")]
    private static partial int ClockGetTime(int clock, out TimeSpec time);
}
