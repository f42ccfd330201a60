using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;
using Serving.Conformance.Tests.Infrastructure;

namespace Serving.Conformance.Tests;

// Stream behaviour around the ops: stream-ordered uploads, device timestamps, reproducibility and variants.
public abstract partial class ConformanceSuite
{
    /// <summary>
    /// Stream uploads are ordered with the ops and copy the host bytes before returning: upload a, add, upload a′ into
    /// the same buffer (the host array is overwritten at once after each upload), add again; the first result must
    /// be from a, the second from a′, with no synchronization in between.
    /// </summary>
    [SkippableFact]
    public void StreamUploadsAreOrderedWithOps()
    {
        var device = Device;
        Skip.If(!device.Supports(new OpQuery(OpKind.Add, DataType.F32)).Supported, $"{BackendName} has no Add");
        using var scratch = new DeviceScratch(device);
        using var stream = device.CreateStream();
        var data = new TestData(TestData.Seed("stream-upload"));
        const int n = 1000;
        float[] a0 = data.Normal(n), a1 = data.Normal(n);
        var input = scratch.Output(DataType.F32, 1, n);
        var y0 = scratch.Output(DataType.F32, 1, n);
        var y1 = scratch.Output(DataType.F32, 1, n);
        byte[] host = TestData.AsBytes(a0);
        stream.Upload(input.Buffer, input.Offset, host);
        Array.Fill(host, (byte)0x7F);                 // the stream must have taken its copy already
        stream.Add(input, input, y0);
        host = TestData.AsBytes(a1);
        stream.Upload(input.Buffer, input.Offset, host);
        Array.Fill(host, (byte)0x7F);
        stream.Add(input, input, y1);
        stream.Synchronize();
        var log = new CaseLog();
        log.Record(CaseLog.Compare($"{BackendName} Add after the first stream upload", Reference.Add(TestData.Widen(a0), TestData.Widen(a0)), scratch.ReadF32(y0), n, 0));
        log.Record(CaseLog.Compare($"{BackendName} Add after the second stream upload", Reference.Add(TestData.Widen(a1), TestData.Widen(a1)), scratch.ReadF32(y1), n, 0));
        log.Record(CaseLog.Guards($"{BackendName} stream uploads", scratch.CheckGuards()));
        log.AssertAllPassed();
    }

    /// <summary>
    /// Device timestamps: after Synchronize, Elapsed between timestamps of the stream is ≥ 0 and grows with later
    /// timestamps (t0 ≤ t1 ≤ t2), and a timestamp of another stream is refused with ArgumentException.
    /// </summary>
    [SkippableFact]
    public void TimestampsAreMonotone()
    {
        var device = Device;
        using var scratch = new DeviceScratch(device);
        using var stream = device.CreateStream();
        using var other = device.CreateStream();
        var x = scratch.Input(new TestData(TestData.Seed("timestamps")).Normal(64 * 1024), 64, 1024);
        var y = scratch.Output(DataType.F32, 64, 1024);
        var t0 = stream.RecordTimestamp();
        stream.Copy(x, y);
        var t1 = stream.RecordTimestamp();
        stream.Copy(y, x);
        var t2 = stream.RecordTimestamp();
        var foreign = other.RecordTimestamp();
        stream.Synchronize();
        other.Synchronize();
        TimeSpan e01 = stream.Elapsed(t0, t1), e02 = stream.Elapsed(t0, t2), e12 = stream.Elapsed(t1, t2);
        Assert.True(e01 >= TimeSpan.Zero && e12 >= TimeSpan.Zero, $"{BackendName} Elapsed: t0→t1 {e01}, t1→t2 {e12} (must be ≥ 0)");
        Assert.True(e02 >= e01 && e02 >= e12, $"{BackendName} Elapsed: t0→t2 {e02} is shorter than t0→t1 {e01} or t1→t2 {e12}");
        Assert.True(stream.Elapsed(t1, t1) == TimeSpan.Zero, $"{BackendName} Elapsed(t1, t1) = {stream.Elapsed(t1, t1)}");
        Assert.ThrowsAny<ArgumentException>(() => stream.Elapsed(t0, foreign));
        Assert.ThrowsAny<ArgumentException>(() => stream.Elapsed(foreign, t1));
    }

    /// <summary>
    /// Reproducibility: a device opened with the default options gives reproducible streams, one opened with
    /// Reproducible = false does not; a reproducible stream refuses a variant that is not batch-invariant with
    /// ArgumentException (skipped when the device lists none), and every non-invariant variant, run on a
    /// non-reproducible device, still computes its op (checked against the reference like any other variant).
    /// </summary>
    [SkippableFact]
    public void NonInvariantVariantsOnlyRunWhenNotReproducible()
    {
        var device = Device;
        using (var s = device.CreateStream())
            Assert.True(s.Reproducible, $"{BackendName}: a stream of a device opened with DeviceOptions.Default must be reproducible");
        using var loose = Backends.OpenAnother(BackendName, new DeviceOptions(Reproducible: false))!;
        using (var s = loose.CreateStream())
            Assert.False(s.Reproducible, $"{BackendName}: a stream of a device opened with Reproducible = false says it is reproducible");

        var nonInvariant = new List<KernelVariant>();
        foreach (var op in Enum.GetValues<OpKind>())
            foreach (var type in Enum.GetValues<DataType>())
                nonInvariant.AddRange(device.GetVariants(op, type).Where(v => !v.BatchInvariant));
        Skip.If(nonInvariant.Count == 0, $"{BackendName} lists no variant that is not batch-invariant: the reproducible-stream refusal has nothing to refuse");

        var log = new CaseLog();
        var checks = new OpChecks(loose, BackendName);
        foreach (var variant in nonInvariant)
        {
            log.Record(variant == device.GetVariants(variant.Op, variant.WeightType)[0]
                ? $"{BackendName} {variant.Name}: a non-invariant variant is the default (the default must run on reproducible streams)" : null);
            using var stream = device.CreateStream();
            using var scratch = new DeviceScratch(device);
            try
            {
                var x = scratch.Output(DataType.F32, 1, 64);
                stream.Add(x, x, x, variant);   // refused before the op or shape matter
                log.Record($"{BackendName} {variant.Name} on a reproducible stream: no exception");
            }
            catch (ArgumentException) { log.Record((string?)null); }
            catch (Exception e) { log.Record($"{BackendName} {variant.Name} on a reproducible stream: threw {e.GetType().Name}: {e.Message}"); }
        }
        foreach (var (op, type) in nonInvariant.Select(v => (v.Op, v.WeightType)).Distinct())
        {
            CaseLog result = op switch
            {
                OpKind.MatMul => checks.MatMul(type, Coverage.Quick),
                OpKind.Attention => checks.Attention(type, Coverage.Quick),
                OpKind.KvWrite => checks.KvWrite(type, Coverage.Quick),
                OpKind.Embed => checks.Embed(type, Coverage.Quick),
                OpKind.RmsNorm => checks.RmsNorm(Coverage.Quick),
                OpKind.Rope => checks.Rope(Coverage.Quick),
                OpKind.SwiGlu => checks.SwiGlu(Coverage.Quick),
                OpKind.Add => checks.Add(Coverage.Quick),
                OpKind.Copy => checks.Copy(Coverage.Quick),
                OpKind.Argmax => checks.Argmax(Coverage.Quick),
                OpKind.Gather => checks.Gather(Coverage.Quick),
                _ => throw new ArgumentOutOfRangeException(nameof(op), op, null),
            };
            foreach (var failure in result.Failures) log.Record(failure);
            log.Record(result.Cases > 0 ? null : $"{BackendName} {op} {type.Name()}: no case ran on the non-reproducible device");
        }
        log.AssertAllPassed();
    }
}
