using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;
using Serving.Conformance.Tests.Infrastructure;

namespace Serving.Conformance.Tests;

/// <summary>
/// The backend conformance suite (docs/conformance.md), written once against the contract. A backend joins with a one-line
/// subclass naming it (<see cref="CpuConformance"/>). When the backend's plugin is absent, fails to load, or its
/// Probe says unusable, every test reports SKIPPED with that reason; an op or type the device does not support is
/// skipped with the device's own reason. Nothing skipped counts as passed.
/// This file holds the op tests; ConformanceSuite.Contract.cs the front-end rules and the device/stream contract,
/// ConformanceSuite.Stream.cs stream ordering, timestamps and variants, ConformanceSuite.Tiers.cs the SIMD-tier re-runs.
/// </summary>
public abstract partial class ConformanceSuite(string backend)
{
    /// <summary>The backend under test ("cpu").</summary>
    protected string BackendName => backend;

    /// <summary>The opened device; skips the running test when the backend is unavailable here.</summary>
    protected IAccelerator Device
    {
        get
        {
            var handle = Backends.Get(backend);
            Skip.If(handle.Device is null, handle.UnavailableReason ?? $"backend '{backend}' unavailable");
            return handle.Device!;
        }
    }

    /// <summary>The op cases on <see cref="Device"/>, after skipping when <paramref name="op"/>/<paramref name="type"/> is unsupported.</summary>
    private OpChecks ChecksFor(OpKind op, DataType type)
    {
        var checks = new OpChecks(Device, backend);
        string? unsupported = checks.Unsupported(op, type);
        Skip.If(unsupported is not null, unsupported!);
        return checks;
    }

    /// <summary>The weight types of MatMul and Embed, one theory row each.</summary>
    public static TheoryData<DataType> WeightTypes()
    {
        var data = new TheoryData<DataType>();
        foreach (var type in OpChecks.WeightTypes) data.Add(type);
        return data;
    }

    /// <summary>MatMul: every T × N × K tail shape × every variant, per weight type.</summary>
    [SkippableTheory, MemberData(nameof(WeightTypes))]
    public void MatMul(DataType type)
    {
        string? issue = KnownIssue(OpKind.MatMul, type);
        Skip.If(issue is not null, issue!);
        ChecksFor(OpKind.MatMul, type).MatMul(type, Coverage.Full).AssertAllPassed();
    }

    /// <summary>
    /// A defect of this backend that is known, open and tracked in an issue, for one op and type: the theory row is then
    /// skipped with this text as its reason (shown in every test run, never counted as passed). Null: none.
    /// </summary>
    protected virtual string? KnownIssue(OpKind op, DataType type) => null;

    /// <summary>The unquantized weight types, one theory row each.</summary>
    public static TheoryData<DataType> FloatWeightTypes() => new() { DataType.F32, DataType.F16, DataType.BF16 };

    /// <summary>±∞ and NaN in a float weight propagate as IEEE arithmetic says, and leave the other rows' bits alone.</summary>
    [SkippableTheory, MemberData(nameof(FloatWeightTypes))]
    public void MatMulWeightSpecials(DataType type)
    {
        ChecksFor(OpKind.MatMul, type).MatMulWeightSpecials(type).AssertAllPassed();
    }

    /// <summary>MatMul rows are bit-identical at T = 1 and inside a T = 17 batch, for every variant, and all variants agree bit for bit.</summary>
    [SkippableTheory, MemberData(nameof(WeightTypes))]
    public void MatMulIsBatchInvariant(DataType type) => ChecksFor(OpKind.MatMul, type).MatMulBatchInvariance(type).AssertAllPassed();

    /// <summary>Embed: exact dequantized rows, per table type.</summary>
    [SkippableTheory, MemberData(nameof(WeightTypes))]
    public void Embed(DataType type) => ChecksFor(OpKind.Embed, type).Embed(type, Coverage.Full).AssertAllPassed();

    /// <summary>RmsNorm over tail widths, in place and not.</summary>
    [SkippableFact]
    public void RmsNorm() => ChecksFor(OpKind.RmsNorm, DataType.F32).RmsNorm(Coverage.Full).AssertAllPassed();

    /// <summary>Rope, Normal and NeoX, full and partial rotation.</summary>
    [SkippableFact]
    public void Rope() => ChecksFor(OpKind.Rope, DataType.F32).Rope(Coverage.Full).AssertAllPassed();

    /// <summary>The KV cache types (f16, f32), one theory row each.</summary>
    public static TheoryData<DataType> KvTypes()
    {
        var data = new TheoryData<DataType>();
        foreach (var type in OpChecks.KvTypes) data.Add(type);
        return data;
    }

    /// <summary>KvWrite writes exactly the given slots of the given layer (rounded to the cache type), read back through Attention.</summary>
    [SkippableTheory, MemberData(nameof(KvTypes))]
    public void KvWrite(DataType type)
    {
        var checks = ChecksFor(OpKind.KvWrite, type);
        string? why = checks.Unsupported(OpKind.Attention, type);
        Skip.If(why is not null, $"KvWrite is read back through Attention: {why}");
        checks.KvWrite(type, Coverage.Full).AssertAllPassed();
    }

    /// <summary>Paged causal GQA attention over block tables: decode, prefill, later chunk, mixed; per cache type.</summary>
    [SkippableTheory, MemberData(nameof(KvTypes))]
    public void Attention(DataType type)
    {
        var checks = ChecksFor(OpKind.Attention, type);
        string? why = checks.Unsupported(OpKind.KvWrite, type);
        Skip.If(why is not null, $"the cache is filled through KvWrite: {why}");
        checks.Attention(type, Coverage.Full).AssertAllPassed();
    }

    /// <summary>Attention rows are bit-identical alone and inside a T = 17 batch, per cache type and invariant variant.</summary>
    [SkippableTheory, MemberData(nameof(KvTypes))]
    public void AttentionIsBatchInvariant(DataType type)
    {
        var checks = ChecksFor(OpKind.Attention, type);
        string? why = checks.Unsupported(OpKind.KvWrite, type);
        Skip.If(why is not null, $"the cache is filled through KvWrite: {why}");
        checks.AttentionBatchInvariance(type).AssertAllPassed();
    }

    /// <summary>The row-wise ops (F32; Embed per weight type below), one theory row each.</summary>
    public static TheoryData<OpKind> RowOps()
    {
        var data = new TheoryData<OpKind>();
        foreach (var op in OpChecks.RowOps.Where(o => o != OpKind.Embed)) data.Add(op);
        return data;
    }

    /// <summary>Each batch-invariant variant of a row-wise op gives a row alone the bits it gives it inside a T = 17 call.</summary>
    [SkippableTheory, MemberData(nameof(RowOps))]
    public void RowOpIsBatchInvariant(OpKind op) => ChecksFor(op, DataType.F32).BatchInvariance(op, DataType.F32).AssertAllPassed();

    /// <summary>Embed rows are bit-identical alone and inside a T = 17 call, per table type.</summary>
    [SkippableTheory, MemberData(nameof(WeightTypes))]
    public void EmbedIsBatchInvariant(DataType type) => ChecksFor(OpKind.Embed, type).BatchInvariance(OpKind.Embed, type).AssertAllPassed();

    /// <summary>Gather: exact rows, repeats and any order.</summary>
    [SkippableFact]
    public void Gather() => ChecksFor(OpKind.Gather, DataType.F32).Gather(Coverage.Full).AssertAllPassed();

    /// <summary>Add with one broadcast row of b (a bias), separate output and aliased.</summary>
    [SkippableFact]
    public void AddBroadcast() => ChecksFor(OpKind.Add, DataType.F32).AddBroadcast(Coverage.Full).AssertAllPassed();

    /// <summary>SwiGlu, separate output and aliased.</summary>
    [SkippableFact]
    public void SwiGlu() => ChecksFor(OpKind.SwiGlu, DataType.F32).SwiGlu(Coverage.Full).AssertAllPassed();

    /// <summary>Add, separate output and aliased.</summary>
    [SkippableFact]
    public void Add() => ChecksFor(OpKind.Add, DataType.F32).Add(Coverage.Full).AssertAllPassed();

    /// <summary>Copy is bit-exact for any bytes.</summary>
    [SkippableFact]
    public void Copy() => ChecksFor(OpKind.Copy, DataType.F32).Copy(Coverage.Full).AssertAllPassed();

    /// <summary>Argmax, first index on ties (an optional op: skipped with the reason when unsupported).</summary>
    [SkippableFact]
    public void Argmax() => ChecksFor(OpKind.Argmax, DataType.F32).Argmax(Coverage.Full).AssertAllPassed();
}
