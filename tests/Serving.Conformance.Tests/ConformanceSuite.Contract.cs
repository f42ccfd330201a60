using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;
using Serving.Conformance.Tests.Infrastructure;

namespace Serving.Conformance.Tests;

// The parts of the contract around the ops: identity, buffers, prepared weights, KV caches, disposal, the front end's
// argument checks (the same for every backend: they live in Abstractions' ComputeStream), Supports and variants.
public abstract partial class ConformanceSuite
{
    /// <summary>The device says who it is, consistently with its plugin.</summary>
    [SkippableFact]
    public void DescriptorMatchesPlugin()
    {
        var device = Device;
        var plugin = Backends.Get(BackendName).Plugin!;
        Assert.True(ContractVersion.Current.Accepts(plugin.ContractVersion), $"plugin contract {plugin.ContractVersion}, suite {ContractVersion.Current}");
        Assert.Equal(BackendName, device.Descriptor.Backend);
        Assert.Equal($"{BackendName}:0", device.Descriptor.Id);
        Assert.False(string.IsNullOrWhiteSpace(device.Descriptor.Name));
        Assert.False(string.IsNullOrWhiteSpace(device.Descriptor.Fingerprint));
        Assert.True(device.Descriptor.TotalMemoryBytes > 0, $"TotalMemoryBytes = {device.Descriptor.TotalMemoryBytes}");
        Assert.InRange(device.FreeMemoryBytes, 0, long.MaxValue);
        // The device opened is the one Probe listed first (other fields may be filled in more precisely once open).
        var probed = plugin.Probe().Devices[0];
        Assert.Equal((probed.Backend, probed.Index, probed.Name, probed.Fingerprint),
            (device.Descriptor.Backend, device.Descriptor.Index, device.Descriptor.Name, device.Descriptor.Fingerprint));
    }

    /// <summary>Allocate zero-fills; Upload/Download at odd offsets and lengths round-trip and touch nothing else.</summary>
    [SkippableFact]
    public void UploadDownloadRoundTrip()
    {
        var device = Device;
        const int length = 4099;
        using var buffer = device.Allocate(length);
        Assert.Equal(length, buffer.Length);
        Assert.Same(device, buffer.Device);
        var all = new byte[length];
        device.Download(buffer, 0, all);
        Assert.All(all, b => Assert.Equal(0, b));

        var expected = new byte[length];
        var data = new TestData(TestData.Seed("roundtrip"));
        foreach (var (offset, count) in new[] { (0, 1), (1, 7), (7, 64), (100, 1000), (length - 3, 3), (2048, 0) })
        {
            byte[] bytes = data.Bytes(count);
            device.Upload(buffer, offset, bytes);
            bytes.CopyTo(expected, offset);
            var back = new byte[count];
            device.Download(buffer, offset, back);
            Assert.Equal(bytes, back);
        }
        device.Download(buffer, 0, all);
        Assert.Equal(expected, all);
    }

    /// <summary>Upload and Download outside the buffer throw ArgumentException and change nothing.</summary>
    [SkippableFact]
    public void TransfersOutOfRangeThrow()
    {
        var device = Device;
        using var buffer = device.Allocate(64);
        Assert.ThrowsAny<ArgumentException>(() => device.Upload(buffer, 63, new byte[2]));
        Assert.ThrowsAny<ArgumentException>(() => device.Upload(buffer, -1, new byte[1]));
        Assert.ThrowsAny<ArgumentException>(() => device.Upload(buffer, 65, ReadOnlySpan<byte>.Empty));
        Assert.ThrowsAny<ArgumentException>(() => device.Download(buffer, 60, new byte[5]));
        Assert.ThrowsAny<ArgumentException>(() => device.Download(buffer, long.MinValue, new byte[1]));
        Assert.ThrowsAny<ArgumentException>(() => device.Allocate(-1));
        using (var stream = device.CreateStream())
        {
            Assert.ThrowsAny<ArgumentException>(() => stream.Upload(buffer, 63, new byte[2]));
            Assert.ThrowsAny<ArgumentException>(() => stream.Upload(buffer, -1, new byte[1]));
            Assert.ThrowsAny<ArgumentException>(() => stream.Download(buffer, 60, new byte[5]));
        }
        var all = new byte[64];
        device.Download(buffer, 0, all);
        Assert.All(all, b => Assert.Equal(0, b));
    }

    /// <summary>
    /// PrepareWeight: the weight reports the source's type and shape and its device. A persistent source may be read in
    /// place (<see cref="IDeviceWeight.ReadsSourceInPlace"/>, no device bytes): then a change to the host memory after
    /// preparing is seen by the next op (the memory-mapped-model case); otherwise the weight holds its own copy and the
    /// change is not seen. A non-persistent source is never read in place (the caller may free it at once).
    /// </summary>
    [SkippableFact]
    public unsafe void PreparedWeightReadsInPlaceOrCopies()
    {
        var device = Device;
        Skip.If(!device.Supports(new OpQuery(OpKind.MatMul, DataType.F32, 7, 64)).Supported, $"{BackendName} has no f32 MatMul");
        const int n = 7, k = 64, t = 3;
        var data = new TestData(TestData.Seed("prepared-weight"));
        float[] x = data.Normal(t * k);
        using var scratch = new DeviceScratch(device);
        using var stream = device.CreateStream();
        var xv = scratch.Input(x, t, k);
        var log = new CaseLog();
        foreach (bool persistent in new[] { true, false })
        {
            float[] w0 = data.Normal(n * k), w1 = data.Normal(n * k);
            nint memory = DeviceScratch.HostCopy(TestData.AsBytes(w0));
            try
            {
                using var weight = device.PrepareWeight(new WeightSource("w", memory, n * k * 4L, DataType.F32, n, k, persistent));
                log.Record(ReferenceEquals(weight.Device, device) && weight.Type == DataType.F32 && weight.Rows == n && weight.Cols == k ? null
                    : $"{BackendName} PrepareWeight: weight says device {weight.Device.Descriptor.Id}, [{weight.Rows}, {weight.Cols}] {weight.Type.Name()}");
                log.Record(persistent || !weight.ReadsSourceInPlace ? null : $"{BackendName} PrepareWeight: reads a non-persistent source in place");
                log.Record(!weight.ReadsSourceInPlace || weight.DeviceBytes == 0 ? null
                    : $"{BackendName} PrepareWeight: reads in place yet holds {weight.DeviceBytes} device bytes");
                TestData.AsBytes(w1).CopyTo(new Span<byte>((void*)memory, n * k * 4));   // changed after preparing
                float[] seen = weight.ReadsSourceInPlace ? w1 : w0;
                var y = scratch.Output(DataType.F32, t, n);
                stream.MatMul(xv, weight, y);
                stream.Synchronize();
                double[] expected = Reference.MatMul(TestData.Widen(x), t, k, TestData.Widen(seen), n);
                log.Record(CaseLog.Compare($"{BackendName} MatMul f32 on a {(persistent ? "persistent" : "transient")} source (ReadsSourceInPlace={weight.ReadsSourceInPlace})",
                    expected, scratch.ReadF32(y), n, Tolerances.For(OpKind.MatMul, DataType.F32), Tolerances.MatMulPower(x, t, TestData.Widen(seen), n, k)));
            }
            finally
            {
                NativeMemory.AlignedFree((void*)memory);
            }
        }
        log.Record(CaseLog.Guards($"{BackendName} prepared weights", scratch.CheckGuards()));
        log.AssertAllPassed();
    }

    /// <summary>PrepareWeight refuses malformed sources and types the device does not compute with: ArgumentException, nothing prepared.</summary>
    [SkippableFact]
    public unsafe void PrepareWeightRejectsBadSources()
    {
        var device = Device;
        var log = new CaseLog();
        nint memory = DeviceScratch.HostCopy(new byte[4096]);
        try
        {
            var good = new WeightSource("w", memory, 4 * 68, DataType.Q8_0, 4, 64, false);
            var cases = new (string Name, WeightSource Source)[]
            {
                ("null pointer", good with { Pointer = 0 }),
                ("byte count one short", good with { Bytes = good.Bytes - 1 }),
                ("byte count one row long", good with { Bytes = good.Bytes + 68 }),
                ("zero rows", good with { Rows = 0, Bytes = 0 }),
                ("negative cols", good with { Cols = -32 }),
                ("q8_0 row of 33 elements", good with { Cols = 33 }),
                ("unknown type", good with { Type = (DataType)999 }),
                ("i32 (not a weight type)", new WeightSource("w", memory, 4 * 64 * 4, DataType.I32, 4, 64, false)),
            };
            foreach (var (name, source) in cases)
            {
                try
                {
                    using var w = device.PrepareWeight(source);
                    log.Record($"{BackendName} PrepareWeight with {name}: no exception");
                }
                catch (ArgumentException) { log.Record((string?)null); }
                catch (Exception e) { log.Record($"{BackendName} PrepareWeight with {name}: threw {e.GetType().Name} instead of an ArgumentException: {e.Message}"); }
            }
        }
        finally
        {
            NativeMemory.AlignedFree((void*)memory);
        }
        log.AssertAllPassed();
    }

    /// <summary>
    /// CreateKvCache: an f16 or f32 cache the device supports keeps that type and the spec's dimensions; malformed specs
    /// (a dimension ≤ 0, a type other than f16/f32, a size past a long) throw ArgumentException.
    /// </summary>
    [SkippableFact]
    public void CreateKvCacheHonoursAndRejectsSpecs()
    {
        var device = Device;
        var log = new CaseLog();
        var good = new KvCacheSpec(Layers: 2, Blocks: 4, BlockSize: 4, KvHeads: 2, HeadDim: 8);
        foreach (var type in OpChecks.KvTypes)
        {
            if (!device.Supports(new OpQuery(OpKind.KvWrite, type, HeadDim: 8, KvHeads: 2)).Supported) continue;
            using var cache = device.CreateKvCache(good with { PreferredType = type });
            var l = cache.Layout;
            log.Record(ReferenceEquals(cache.Device, device) && (l.Layers, l.Blocks, l.BlockSize, l.KvHeads, l.HeadDim, l.Type) == (2, 4, 4, 2, 8, type) ? null
                : $"{BackendName} CreateKvCache({good with { PreferredType = type }}): layout {l}");
        }
        var cases = new (string Name, KvCacheSpec Spec)[]
        {
            ("zero layers", good with { Layers = 0 }),
            ("zero blocks", good with { Blocks = 0 }),
            ("negative block size", good with { BlockSize = -4 }),
            ("zero kv heads", good with { KvHeads = 0 }),
            ("zero head dim", good with { HeadDim = 0 }),
            ("q8_0 cache", good with { PreferredType = DataType.Q8_0 }),
            ("i32 cache", good with { PreferredType = DataType.I32 }),
            ("size past a long", new KvCacheSpec(int.MaxValue, int.MaxValue, int.MaxValue, 1024, 1024)),
        };
        foreach (var (name, spec) in cases)
        {
            try
            {
                using var c = device.CreateKvCache(spec);
                log.Record($"{BackendName} CreateKvCache with {name}: no exception");
            }
            catch (ArgumentException) { log.Record((string?)null); }
            catch (Exception e) { log.Record($"{BackendName} CreateKvCache with {name}: threw {e.GetType().Name} instead of an ArgumentException: {e.Message}"); }
        }
        log.AssertAllPassed();
    }

    /// <summary>
    /// Disposed buffers, weights, KV caches and streams: disposing again is harmless, any use throws
    /// ObjectDisposedException (not an ArgumentException), and the device and other streams keep working.
    /// </summary>
    [SkippableFact]
    public void DisposedObjectsThrowObjectDisposed()
    {
        var device = Device;
        using var scratch = new DeviceScratch(device);
        using var stream = device.CreateStream();
        var data = new TestData(TestData.Seed("disposed"));
        using var live = device.Allocate(256);
        var dead = device.Allocate(256);
        dead.Dispose();
        dead.Dispose();
        Assert.True(dead.IsDisposed);
        var deadView = new TensorView(dead, 0, DataType.F32, 1, 64);
        var liveView = new TensorView(live, 0, DataType.F32, 1, 64);
        Assert.Throws<ObjectDisposedException>(() => device.Upload(dead, 0, new byte[4]));
        Assert.Throws<ObjectDisposedException>(() => device.Download(dead, 0, new byte[4]));
        Assert.Throws<ObjectDisposedException>(() => stream.Upload(dead, 0, new byte[4]));
        Assert.Throws<ObjectDisposedException>(() => stream.Copy(deadView, liveView));
        Assert.Throws<ObjectDisposedException>(() => stream.Copy(liveView, deadView));
        Assert.Throws<ObjectDisposedException>(() => stream.Add(liveView, liveView, deadView));

        var weight = device.PrepareWeight(new WeightSource("w", DeviceScratch.HostCopy(TestData.AsBytes(data.Normal(4 * 64))), 4 * 64 * 4, DataType.F32, 4, 64, false));
        weight.Dispose();
        weight.Dispose();
        Assert.True(weight.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => stream.MatMul(liveView, weight, scratch.Output(DataType.F32, 1, 4)));
        Assert.Throws<ObjectDisposedException>(() => stream.Embed(weight, scratch.Input([0], 1, 1), liveView));

        var cache = device.CreateKvCache(new KvCacheSpec(1, 2, 2, 1, 64));
        cache.Dispose();
        cache.Dispose();
        Assert.True(cache.IsDisposed);
        var one = scratch.Input([0], 1, 1);
        Assert.Throws<ObjectDisposedException>(() => stream.KvWrite(liveView, liveView, cache, 0, one));
        Assert.Throws<ObjectDisposedException>(() => stream.Attention(liveView, cache, 0, new AttentionBatch(one, one, one, 1, 1f, 0, true), scratch.Output(DataType.F32, 1, 64)));

        var gone = device.CreateStream();
        gone.Dispose();
        gone.Dispose();
        Assert.Throws<ObjectDisposedException>(() => gone.Add(liveView, liveView, liveView));
        Assert.Throws<ObjectDisposedException>(() => gone.Upload(live, 0, new byte[4]));
        Assert.Throws<ObjectDisposedException>(() => gone.RecordTimestamp());
        Assert.Throws<ObjectDisposedException>(() => gone.Synchronize());
        // The device and the other stream still work.
        stream.Add(liveView, liveView, liveView);
        stream.Synchronize();
    }

    /// <summary>
    /// The front end's rules: every malformed op call (shape, type, count, layer, bounds, aliasing, a buffer, weight or
    /// cache of another device instance, a variant that is not the device's or does not apply) throws ArgumentException
    /// when recorded — never another exception, never a crash — and the stream keeps working afterwards. The list is the
    /// same for every backend (docs/conformance.md).
    /// </summary>
    [SkippableFact]
    public void BadArgumentsThrowArgumentException()
    {
        var device = Device;
        using var other = Backends.OpenAnother(BackendName, DeviceOptions.Default)!;
        using var scratch = new DeviceScratch(device);
        using var foreign = new DeviceScratch(other);
        var log = new CaseLog();
        var data = new TestData(TestData.Seed("bad-arguments"));
        TensorView F32(int rows, int cols) => scratch.Output(DataType.F32, rows, cols);
        TensorView I32(params int[] values) => scratch.Input(values, 1, values.Length);
        var wf = scratch.Weight(DataType.F32, 4, 64, TestData.AsBytes(data.Normal(4 * 64)));
        var table = scratch.Weight(DataType.F32, 5, 8, TestData.AsBytes(data.Normal(5 * 8)));
        var foreignWeight = foreign.Weight(DataType.F32, 4, 64, TestData.AsBytes(data.Normal(4 * 64)));
        var spec = new KvCacheSpec(Layers: 2, Blocks: 4, BlockSize: 4, KvHeads: 2, HeadDim: 8);
        var cache = scratch.KvCache(spec);
        var foreignCache = foreign.KvCache(spec);
        var batch = new AttentionBatch(I32(0, 1), I32(0, 0), I32(0, 1), Heads: 4, Scale: 0.35f, MaxPosition: 1, ContiguousSequences: true);
        var rope = new RopeConfig(2, 8, 8, RopeStyle.Normal, F32(1, 4));
        var big = F32(4, 64);
        var shared = scratch.Output(DataType.F32, 4, 16);
        var other1 = device.GetVariants(OpKind.Add, DataType.F32) is { Count: > 0 } adds ? adds[0] : new KernelVariant("add_f32_none", OpKind.Add, DataType.F32, "none");
        using var otherStream = device.CreateStream();
        var foreignStamp = otherStream.RecordTimestamp();

        var cases = new (string Name, Action<IComputeStream> Call)[]
        {
            ("MatMul x.Cols != W.Cols", s => s.MatMul(F32(2, 32), wf, F32(2, 4))),
            ("MatMul y.Rows != x.Rows", s => s.MatMul(F32(2, 64), wf, F32(3, 4))),
            ("MatMul y.Cols != W.Rows", s => s.MatMul(F32(2, 64), wf, F32(2, 5))),
            ("MatMul x not F32", s => s.MatMul(scratch.Output(DataType.F16, 2, 64), wf, F32(2, 4))),
            ("MatMul y not F32", s => s.MatMul(F32(2, 64), wf, scratch.Output(DataType.I32, 2, 4))),
            ("MatMul x view past its buffer", s => s.MatMul(F32(2, 64) with { Rows = 100 }, wf, F32(100, 4))),
            ("MatMul view at a negative offset", s => s.MatMul(F32(2, 64) with { Offset = -4 }, wf, F32(2, 4))),
            ("MatMul x with negative rows", s => s.MatMul(F32(2, 64) with { Rows = -1 }, wf, F32(2, 4))),
            ("MatMul x with an unknown type", s => s.MatMul(F32(2, 64) with { Type = (DataType)999 }, wf, F32(2, 4))),
            ("MatMul y overlaps x", s => s.MatMul(big.SliceRows(0, 2), wf, big.SliceRows(1, 1) with { Cols = 4, Rows = 2 })),
            ("MatMul x of another device instance", s => s.MatMul(foreign.Output(DataType.F32, 2, 64), wf, F32(2, 4))),
            ("MatMul weight of another device instance", s => s.MatMul(F32(2, 64), foreignWeight, F32(2, 4))),
            ("MatMul variant of another op", s => s.MatMul(F32(2, 64), wf, F32(2, 4), other1)),
            ("MatMul variant the device does not list", s => s.MatMul(F32(2, 64), wf, F32(2, 4), new KernelVariant("matmul_f32_nonexistent", OpKind.MatMul, DataType.F32, "none"))),
            ("Embed ids not I32", s => s.Embed(table, F32(1, 2), F32(2, 8))),
            ("Embed ids [2, 1] (not one row)", s => s.Embed(table, scratch.Input([0, 1], 2, 1), F32(2, 8))),
            ("Embed output width != table width", s => s.Embed(table, I32(0, 1), F32(2, 9))),
            ("Embed output rows != id count", s => s.Embed(table, I32(0, 1), F32(3, 8))),
            ("Embed table of another device instance", s => s.Embed(foreign.Weight(DataType.F32, 5, 8, new byte[160]), I32(0, 1), F32(2, 8))),
            ("RmsNorm weight length != D", s => s.RmsNorm(F32(2, 8), F32(1, 7), F32(2, 8), 1e-5f)),
            ("RmsNorm y shape != x shape", s => s.RmsNorm(F32(2, 8), F32(1, 8), F32(3, 8), 1e-5f)),
            ("RmsNorm negative eps", s => s.RmsNorm(F32(2, 8), F32(1, 8), F32(2, 8), -1e-5f)),
            ("RmsNorm NaN eps", s => s.RmsNorm(F32(2, 8), F32(1, 8), F32(2, 8), float.NaN)),
            ("RmsNorm y partly overlaps x", s => s.RmsNorm(shared.SliceRows(0, 2), F32(1, 16), shared.SliceRows(1, 2), 1e-5f)),
            ("Rope positions count != T", s => s.Rope(F32(2, 16), I32(0, 1, 2), rope)),
            ("Rope x width != Heads·HeadDim", s => s.Rope(F32(2, 15), I32(0, 1), rope)),
            ("Rope RotaryDim > HeadDim", s => s.Rope(F32(2, 16), I32(0, 1), rope with { RotaryDim = 10, InverseFrequencies = F32(1, 5) })),
            ("Rope odd RotaryDim", s => s.Rope(F32(2, 16), I32(0, 1), rope with { RotaryDim = 7, InverseFrequencies = F32(1, 3) })),
            ("Rope inverse frequencies != RotaryDim/2", s => s.Rope(F32(2, 16), I32(0, 1), rope with { InverseFrequencies = F32(1, 3) })),
            ("Rope positions not I32", s => s.Rope(F32(2, 16), F32(1, 2), rope)),
            ("KvWrite k width != Hkv·Dh", s => s.KvWrite(F32(2, 15), F32(2, 16), cache, 0, I32(0, 1))),
            ("KvWrite v rows != k rows", s => s.KvWrite(F32(2, 16), F32(3, 16), cache, 0, I32(0, 1))),
            ("KvWrite k not F32", s => s.KvWrite(scratch.Output(DataType.F16, 2, 16), F32(2, 16), cache, 0, I32(0, 1))),
            ("KvWrite slots count != T", s => s.KvWrite(F32(2, 16), F32(2, 16), cache, 0, I32(0))),
            ("KvWrite slots not I32", s => s.KvWrite(F32(2, 16), F32(2, 16), cache, 0, F32(1, 2))),
            ("KvWrite layer == Layers", s => s.KvWrite(F32(2, 16), F32(2, 16), cache, 2, I32(0, 1))),
            ("KvWrite layer < 0", s => s.KvWrite(F32(2, 16), F32(2, 16), cache, -1, I32(0, 1))),
            ("KvWrite cache of another device instance", s => s.KvWrite(F32(2, 16), F32(2, 16), foreignCache, 0, I32(0, 1))),
            ("Attention Heads not a multiple of Hkv", s => s.Attention(F32(2, 24), cache, 0, batch with { Heads = 3 }, F32(2, 24))),
            ("Attention q width != H·Dh", s => s.Attention(F32(2, 31), cache, 0, batch, F32(2, 32))),
            ("Attention output shape != q shape", s => s.Attention(F32(2, 32), cache, 0, batch, F32(1, 32))),
            ("Attention positions count != T", s => s.Attention(F32(2, 32), cache, 0, batch with { Positions = I32(0) }, F32(2, 32))),
            ("Attention sequence count != T", s => s.Attention(F32(2, 32), cache, 0, batch with { Sequence = I32(0, 0, 0) }, F32(2, 32))),
            ("Attention block tables not I32", s => s.Attention(F32(2, 32), cache, 0, batch with { BlockTables = F32(1, 2) }, F32(2, 32))),
            ("Attention MaxPosition past the block tables' width", s => s.Attention(F32(2, 32), cache, 0, batch with { MaxPosition = 8 }, F32(2, 32))),
            ("Attention negative MaxPosition", s => s.Attention(F32(2, 32), cache, 0, batch with { MaxPosition = -1 }, F32(2, 32))),
            ("Attention NaN scale", s => s.Attention(F32(2, 32), cache, 0, batch with { Scale = float.NaN }, F32(2, 32))),
            ("Attention layer == Layers", s => s.Attention(F32(2, 32), cache, 2, batch, F32(2, 32))),
            ("Attention output overlaps q", s => s.Attention(big.SliceRows(0, 2) with { Cols = 32 }, cache, 0, batch, big.SliceRows(0, 2) with { Cols = 32, Offset = big.Offset + 64 })),
            ("Attention cache of another device instance", s => s.Attention(F32(2, 32), foreignCache, 0, batch, F32(2, 32))),
            ("SwiGlu shapes differ", s => s.SwiGlu(F32(2, 8), F32(2, 9), F32(2, 8))),
            ("SwiGlu output partly overlaps gate", s => s.SwiGlu(shared.SliceRows(0, 2), F32(2, 16), shared.SliceRows(1, 2))),
            ("Add output shape differs", s => s.Add(F32(2, 8), F32(2, 8), F32(1, 8))),
            ("Add b of 2 rows for a of 3", s => s.Add(F32(3, 8), F32(2, 8), F32(3, 8))),
            ("Add broadcast b of another width", s => s.Add(F32(3, 8), F32(1, 9), F32(3, 8))),
            ("Add not F32", s => s.Add(scratch.Output(DataType.I32, 2, 8), scratch.Output(DataType.I32, 2, 8), scratch.Output(DataType.I32, 2, 8))),
            ("Add output overlaps a broadcast b", s => s.Add(F32(2, 16), shared.SliceRows(0, 1), shared.SliceRows(0, 2))),
            ("Copy byte lengths differ", s => s.Copy(F32(2, 8), F32(2, 7))),
            ("Copy overlapping ranges", s => s.Copy(shared.SliceRows(0, 2), shared.SliceRows(1, 2))),
            ("Argmax output not I32", s => s.Argmax(F32(2, 8), F32(1, 2))),
            ("Argmax output count != T", s => s.Argmax(F32(2, 8), I32(0, 0, 0))),
            ("Argmax empty rows", s => s.Argmax(F32(2, 0), I32(0, 0))),
            ("Gather rows not I32", s => s.Gather(F32(3, 8), F32(1, 2), F32(2, 8))),
            ("Gather rows [2, 1] (not one row)", s => s.Gather(F32(3, 8), scratch.Input([0, 1], 2, 1), F32(2, 8))),
            ("Gather output rows != R", s => s.Gather(F32(3, 8), I32(0, 1), F32(3, 8))),
            ("Gather output width != D", s => s.Gather(F32(3, 8), I32(0, 1), F32(2, 7))),
            ("Gather output overlaps source", s => s.Gather(shared.SliceRows(0, 3), I32(0), shared.SliceRows(3, 1) with { Offset = shared.Offset + 32 })),
            ("Gather source without rows", s => s.Gather(F32(0, 8), I32(0), F32(1, 8))),
            ("Upload past the buffer's end", s => s.Upload(big.Buffer, big.Buffer.Length - 2, new byte[4])),
            ("Upload into another device instance's buffer", s => s.Upload(foreign.Allocate(16), 0, new byte[4])),
            ("Download at a negative offset", s => s.Download(big.Buffer, -1, new byte[4])),
            ("Elapsed of another stream's timestamp", s => s.Elapsed(foreignStamp, s.RecordTimestamp())),
            ("Elapsed of a default timestamp", s => s.Elapsed(default, s.RecordTimestamp())),
        };
        foreach (var (name, call) in cases)
        {
            using var stream = device.CreateStream();
            try
            {
                call(stream);
                stream.Synchronize();
                log.Record($"{BackendName} {name}: no exception");
            }
            catch (ArgumentException) { log.Record((string?)null); }
            catch (Exception e) { log.Record($"{BackendName} {name}: threw {e.GetType().Name} instead of an ArgumentException: {e.Message}"); }
        }
        log.Record(CaseLog.Guards($"{BackendName} bad-argument calls", scratch.CheckGuards()));

        // The device still computes after all that.
        using (var stream = device.CreateStream())
        {
            var a = scratch.Input([1f, 2f, 3f], 1, 3);
            var y = F32(1, 3);
            stream.Add(a, a, y);
            stream.Synchronize();
            log.Record(CaseLog.Compare($"{BackendName} Add after the bad calls", new double[] { 2, 4, 6 }, scratch.ReadF32(y), 3, 0));
        }
        log.AssertAllPassed();
    }

    /// <summary>
    /// Supports answers for every op and type without throwing, with an empty reason exactly when supported, and agrees
    /// with GetVariants: an op/type is supported exactly when it lists a variant; the first variant (the default) applies
    /// to every shape; GetVariants returns the same list on every call (the front end asks per op). Shapes count: a q8_0
    /// MatMul whose K is not a whole number of 32-element blocks is refused with a reason.
    /// </summary>
    [SkippableFact]
    public void SupportsAgreesWithVariants()
    {
        var device = Device;
        var log = new CaseLog();
        foreach (var op in Enum.GetValues<OpKind>())
            foreach (var type in Enum.GetValues<DataType>())
            {
                string context = $"{BackendName} Supports({op}, {type.Name()})";
                try
                {
                    var support = device.Supports(new OpQuery(op, type));
                    log.Record(support.Supported == (support.Reason.Length == 0) ? null
                        : $"{context}: Supported={support.Supported} with reason \"{support.Reason}\" (reason must be empty exactly when supported)");
                    var variants = device.GetVariants(op, type);
                    // Copy's variants are listed under F32 (the front end resolves Copy as F32 whatever the bytes).
                    if (op != OpKind.Copy)
                        log.Record(support.Supported == variants.Count > 0 ? null
                            : $"{context}: Supported={support.Supported} but GetVariants lists {variants.Count} variants");
                    log.Record(ReferenceEquals(variants, device.GetVariants(op, type)) || variants.Count == 0 ? null
                        : $"{context}: GetVariants returned a new list on a second call (cache it: the front end asks per op)");
                    log.Record(variants.Count == 0 || variants[0].AppliesTo == VariantShapes.Any ? null
                        : $"{context}: the default variant {variants[0].Name} applies only to {variants[0].AppliesTo}");
                }
                catch (Exception e) { log.Record($"{context}: threw {e.GetType().Name}: {e.Message}"); }
            }
        if (device.Supports(new OpQuery(OpKind.MatMul, DataType.Q8_0)).Supported)
        {
            var odd = device.Supports(new OpQuery(OpKind.MatMul, DataType.Q8_0, Rows: 4, Cols: 33));
            log.Record(!odd.Supported && odd.Reason.Length > 0 ? null : $"{BackendName} Supports(MatMul q8_0 [4, 33]): Supported={odd.Supported} \"{odd.Reason}\"");
        }
        log.Record(device.GetVariants(OpKind.Copy, DataType.F32).Count > 0 ? null : $"{BackendName}: Copy lists no variant under F32");
        log.AssertAllPassed();
    }

    /// <summary>
    /// Every variant of every supported op/type is named &lt;op&gt;_&lt;type&gt;_&lt;what-changed&gt; (lower case; op as
    /// the enum name or in snake case, e.g. rmsnorm or rms_norm), names are unique in the backend, and each variant
    /// states its op, weight type and what changed.
    /// </summary>
    [SkippableFact]
    public void VariantNamesFollowConvention()
    {
        var device = Device;
        var log = new CaseLog();
        var seen = new Dictionary<string, (OpKind, DataType)>();
        foreach (var op in Enum.GetValues<OpKind>())
            foreach (var type in Enum.GetValues<DataType>())
            {
                if (!device.Supports(new OpQuery(op, type)).Supported) continue;
                string lower = op.ToString().ToLowerInvariant();
                string snake = Regex.Replace(op.ToString(), "(?<=[a-z])([A-Z])", "_$1").ToLowerInvariant();
                var pattern = new Regex($"^({lower}|{snake})_{Regex.Escape(type.Name())}(_[a-z0-9]+)+$");
                foreach (var v in device.GetVariants(op, type))
                {
                    string context = $"{BackendName} variant \"{v.Name}\" for {op} {type.Name()}";
                    string? failure =
                        !pattern.IsMatch(v.Name) ? $"{context}: name does not match {pattern}" :
                        v.Op != op || v.WeightType != type ? $"{context}: says it is {v.Op} {v.WeightType.Name()}" :
                        string.IsNullOrWhiteSpace(v.Description) ? $"{context}: no description" :
                        seen.TryGetValue(v.Name, out var other) && other != (op, type) ? $"{context}: name also used for {other.Item1} {other.Item2.Name()}" :
                        null;
                    seen.TryAdd(v.Name, (op, type));
                    log.Record(failure);
                }
            }
        Skip.If(log.Cases == 0, $"{BackendName} lists no kernel variants");
        log.AssertAllPassed();
    }
}
