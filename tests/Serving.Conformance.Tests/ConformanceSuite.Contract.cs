using System.Runtime.InteropServices;
using System.Text.RegularExpressions;
using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;
using Serving.Conformance.Tests.Infrastructure;

namespace Serving.Conformance.Tests;

// The parts of the contract around the ops: identity, buffers, host memory, disposal, argument checks, Supports and
// variant names.
public abstract partial class ConformanceSuite
{
    /// <summary>The device says who it is, consistently with its plugin.</summary>
    [SkippableFact]
    public void DescriptorMatchesPlugin()
    {
        var device = Device;
        var plugin = Backends.Get(BackendName).Plugin!;
        Assert.Equal(ContractVersion.Current, plugin.ContractVersion);
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
        var all = new byte[64];
        device.Download(buffer, 0, all);
        Assert.All(all, b => Assert.Equal(0, b));
    }

    /// <summary>
    /// TryWrapHostMemory: when the device accepts host memory, the buffer reads it in place — a change made to the host
    /// memory after wrapping is seen by the next op (here MatMul weights, the memory-mapped-model case, and Copy).
    /// </summary>
    [SkippableFact]
    public unsafe void WrappedHostMemoryIsZeroCopy()
    {
        var device = Device;
        const int n = 7, k = 64, t = 3;
        long bytes = (long)n * k * 4;
        void* memory = NativeMemory.AlignedAlloc((nuint)bytes, 64);
        try
        {
            bool wrapped = device.TryWrapHostMemory((nint)memory, bytes, out var buffer);
            Skip.If(!wrapped, $"{BackendName} cannot wrap host memory (TryWrapHostMemory returned false, which the contract allows)");
            using (buffer)
            {
                Assert.NotNull(buffer);
                Assert.True(buffer!.IsHostMemory);
                Assert.Equal(bytes, buffer.Length);
                var host = new Span<float>(memory, n * k);
                var weights = new TensorView(buffer, 0, DataType.F32, n, k);      // [N, K] in host memory
                var data = new TestData(TestData.Seed("wrap"));
                float[] x = data.Normal(t * k);
                using var scratch = new DeviceScratch(device);
                using var stream = device.CreateStream();
                var xv = scratch.Input(x, t, k);
                bool matmul = device.Supports(OpKind.MatMul, DataType.F32).Supported;
                for (int round = 0; round < 2; round++)
                {
                    // Written through the pointer only, after wrapping: visible only if nothing was copied.
                    float[] w = data.Normal(n * k);
                    w.CopyTo(host);
                    var copy = scratch.Output(DataType.F32, n, k);
                    stream.Copy(weights, copy);
                    stream.Synchronize();
                    Assert.Equal(w, scratch.ReadF32(copy));
                    if (!matmul) continue;
                    var y = scratch.Output(DataType.F32, t, n);
                    stream.MatMul(xv, weights, y);
                    stream.Synchronize();
                    double[] expected = Reference.MatMul(TestData.Widen(x), t, k, TestData.Widen(w), n);
                    Assert.Null(CaseLog.Compare($"{BackendName} MatMul f32 on wrapped host memory, round {round}", expected,
                        scratch.ReadF32(y), n, Tolerances.For(OpKind.MatMul, DataType.F32), Tolerances.MatMulPower(x, t, TestData.Widen(w), n, k)));
                }
                Assert.Null(scratch.CheckGuards());
            }
        }
        finally
        {
            NativeMemory.AlignedFree(memory);
        }
    }

    /// <summary>A disposed buffer: disposing again is harmless, any use throws ObjectDisposedException.</summary>
    [SkippableFact]
    public void DisposedBufferThrowsObjectDisposed()
    {
        var device = Device;
        using var stream = device.CreateStream();
        using var live = device.Allocate(256);
        var dead = device.Allocate(256);
        dead.Dispose();
        dead.Dispose();
        var deadView = new TensorView(dead, 0, DataType.F32, 1, 64);
        var liveView = new TensorView(live, 0, DataType.F32, 1, 64);
        Assert.Throws<ObjectDisposedException>(() => device.Upload(dead, 0, new byte[4]));
        Assert.Throws<ObjectDisposedException>(() => device.Download(dead, 0, new byte[4]));
        Assert.Throws<ObjectDisposedException>(() => stream.Copy(deadView, liveView));
        Assert.Throws<ObjectDisposedException>(() => stream.Copy(liveView, deadView));
        Assert.Throws<ObjectDisposedException>(() => stream.Add(liveView, liveView, deadView));
        // The device and stream still work.
        stream.Add(liveView, liveView, liveView);
        stream.Synchronize();
    }

    /// <summary>
    /// Every malformed op call (shape, type, count, layer, bounds) throws ArgumentException when recorded — never
    /// another exception, never a crash — and the stream keeps working afterwards.
    /// </summary>
    [SkippableFact]
    public void BadArgumentsThrowArgumentException()
    {
        var device = Device;
        using var scratch = new DeviceScratch(device);
        var log = new CaseLog();
        TensorView F32(int rows, int cols) => scratch.Output(DataType.F32, rows, cols);
        TensorView I32(params int[] values) => scratch.Input(values, 1, values.Length);
        var layout = new KvCacheLayout(Layers: 2, Blocks: 4, BlockSize: 4, KvHeads: 2, HeadDim: 8, DataType.F32);
        var cache = new KvCacheView(scratch.Allocate(layout.BytesPerTensor), scratch.Allocate(layout.BytesPerTensor), layout);
        var smallCache = cache with { V = scratch.Allocate(layout.BytesPerTensor - 4) };
        var batch = new AttentionBatch(I32(0, 1), I32(0, 0), I32(0, 1), Heads: 4, Scale: 0.35f);
        var q8 = scratch.Output(DataType.Q8_0, 4, 64);
        var q4k = scratch.Output(DataType.Q4_K, 4, 512);
        var rope = new RopeConfig(2, 8, 8, RopeStyle.Normal, F32(1, 4));

        var cases = new (string Name, Action<IComputeStream> Call)[]
        {
            ("MatMul x.Cols != W.Cols", s => s.MatMul(F32(2, 64), F32(4, 32), F32(2, 4))),
            ("MatMul y.Rows != x.Rows", s => s.MatMul(F32(2, 64), F32(4, 64), F32(3, 4))),
            ("MatMul y.Cols != W.Rows", s => s.MatMul(F32(2, 64), F32(4, 64), F32(2, 5))),
            ("MatMul x not F32", s => s.MatMul(scratch.Output(DataType.F16, 2, 64), F32(4, 64), F32(2, 4))),
            ("MatMul y not F32", s => s.MatMul(F32(2, 64), F32(4, 64), scratch.Output(DataType.I32, 2, 4))),
            ("MatMul q8_0 W with K = 33 (not whole blocks)", s => s.MatMul(F32(2, 33), q8 with { Cols = 33 }, F32(2, 4))),
            ("MatMul q4_K W with K = 288 (whole 32-blocks, not whole 256-super-blocks)", s => s.MatMul(F32(2, 288), q4k with { Cols = 288 }, F32(2, 4))),
            ("MatMul W view past its buffer", s => s.MatMul(F32(2, 64), q8 with { Rows = 5 }, F32(2, 5))),
            ("MatMul view at a negative offset", s => s.MatMul(F32(2, 64) with { Offset = -4 }, F32(4, 64), F32(2, 4))),
            ("MatMul variant of another op", s => s.MatMul(F32(2, 64), F32(4, 64), F32(2, 4), new KernelVariant("add_f32_none", OpKind.Add, DataType.F32, "wrong op"))),
            ("Embed ids not I32", s => s.Embed(F32(5, 8), F32(1, 2), F32(2, 8))),
            ("Embed output width != table width", s => s.Embed(F32(5, 8), I32(0, 1), F32(2, 9))),
            ("Embed output rows != id count", s => s.Embed(F32(5, 8), I32(0, 1), F32(3, 8))),
            ("RmsNorm weight length != D", s => s.RmsNorm(F32(2, 8), F32(1, 7), F32(2, 8), 1e-5f)),
            ("RmsNorm y shape != x shape", s => s.RmsNorm(F32(2, 8), F32(1, 8), F32(3, 8), 1e-5f)),
            ("Rope positions count != T", s => s.Rope(F32(2, 16), I32(0, 1, 2), rope)),
            ("Rope x width != Heads·HeadDim", s => s.Rope(F32(2, 15), I32(0, 1), rope)),
            ("Rope RotaryDim > HeadDim", s => s.Rope(F32(2, 16), I32(0, 1), rope with { RotaryDim = 10, InverseFrequencies = F32(1, 5) })),
            ("Rope odd RotaryDim", s => s.Rope(F32(2, 16), I32(0, 1), rope with { RotaryDim = 7, InverseFrequencies = F32(1, 3) })),
            ("Rope inverse frequencies != RotaryDim/2", s => s.Rope(F32(2, 16), I32(0, 1), rope with { InverseFrequencies = F32(1, 3) })),
            ("KvWrite k width != Hkv·Dh", s => s.KvWrite(F32(2, 15), F32(2, 16), cache, 0, I32(0, 1))),
            ("KvWrite slots count != T", s => s.KvWrite(F32(2, 16), F32(2, 16), cache, 0, I32(0))),
            ("KvWrite layer == Layers", s => s.KvWrite(F32(2, 16), F32(2, 16), cache, 2, I32(0, 1))),
            ("KvWrite layer < 0", s => s.KvWrite(F32(2, 16), F32(2, 16), cache, -1, I32(0, 1))),
            ("KvWrite V buffer smaller than the layout", s => s.KvWrite(F32(2, 16), F32(2, 16), smallCache, 0, I32(0, 1))),
            ("Attention Heads not a multiple of Hkv", s => s.Attention(F32(2, 24), cache, 0, batch with { Heads = 3 }, F32(2, 24))),
            ("Attention q width != H·Dh", s => s.Attention(F32(2, 31), cache, 0, batch, F32(2, 32))),
            ("Attention output shape != q shape", s => s.Attention(F32(2, 32), cache, 0, batch, F32(1, 32))),
            ("Attention positions count != T", s => s.Attention(F32(2, 32), cache, 0, batch with { Positions = I32(0) }, F32(2, 32))),
            ("Attention layer == Layers", s => s.Attention(F32(2, 32), cache, 2, batch, F32(2, 32))),
            ("SwiGlu shapes differ", s => s.SwiGlu(F32(2, 8), F32(2, 9), F32(2, 8))),
            ("Add shapes differ", s => s.Add(F32(2, 8), F32(2, 8), F32(1, 8))),
            ("Add not F32", s => s.Add(scratch.Output(DataType.I32, 2, 8), scratch.Output(DataType.I32, 2, 8), scratch.Output(DataType.I32, 2, 8))),
            ("Copy byte lengths differ", s => s.Copy(F32(2, 8), F32(2, 7))),
            ("Argmax output not I32", s => s.Argmax(F32(2, 8), F32(1, 2))),
            ("Argmax output count != T", s => s.Argmax(F32(2, 8), I32(0, 0, 0))),
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

    /// <summary>Supports answers for every op and type without throwing: empty reason when supported, a reason when not.</summary>
    [SkippableFact]
    public void SupportsAnswersEveryOpAndType()
    {
        var device = Device;
        var log = new CaseLog();
        foreach (var op in Enum.GetValues<OpKind>())
            foreach (var type in Enum.GetValues<DataType>())
            {
                string context = $"{BackendName} Supports({op}, {type.Name()})";
                try
                {
                    var support = device.Supports(op, type);
                    log.Record(support.Supported == (support.Reason.Length == 0) ? null
                        : $"{context}: Supported={support.Supported} with reason \"{support.Reason}\" (reason must be empty exactly when supported)");
                }
                catch (Exception e) { log.Record($"{context}: threw {e.GetType().Name}: {e.Message}"); }
            }
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
                if (!device.Supports(op, type).Supported) continue;
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
