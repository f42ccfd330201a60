using Serving.Abstractions;
using Serving.Conformance.Tests.Cases;
using Serving.Conformance.Tests.Infrastructure;

namespace Serving.Conformance.Tests;

/// <summary>The conformance suite on the CPU backend (plugins/Serving.Backends.Cpu).</summary>
public sealed class CpuConformance() : ConformanceSuite("cpu")
{
    /// <summary>
    /// The Cpu backend's own promise beyond the contract (which leaves index values to the caller): an index value in
    /// an I32 view that would reach outside memory — token id, slot, sequence, position, block id, gathered row — throws
    /// ArgumentOutOfRangeException when the op runs, and nothing is written.
    /// </summary>
    [SkippableFact]
    public void IndexValuesOutOfRangeThrow()
    {
        var device = Device;
        using var scratch = new DeviceScratch(device);
        using var stream = device.CreateStream();
        var data = new TestData(TestData.Seed("cpu-index-values"));
        TensorView F32(int rows, int cols) => scratch.Output(DataType.F32, rows, cols);
        TensorView I32(params int[] values) => scratch.Input(values, 1, values.Length);
        var table = scratch.Weight(DataType.F32, 5, 8, TestData.AsBytes(data.Normal(40)));
        var cache = scratch.KvCache(new KvCacheSpec(Layers: 1, Blocks: 4, BlockSize: 4, KvHeads: 1, HeadDim: 8));
        var batch = new AttentionBatch(I32(0, 1), I32(0, 0), I32(0, 1), Heads: 1, Scale: 0.35f, MaxPosition: 1, ContiguousSequences: true);
        var cases = new (string Name, Action Call)[]
        {
            ("Embed token id = V", () => stream.Embed(table, I32(0, 5), F32(2, 8))),
            ("Embed token id < 0", () => stream.Embed(table, I32(-1), F32(1, 8))),
            ("KvWrite slot = SlotsPerLayer", () => stream.KvWrite(F32(1, 8), F32(1, 8), cache, 0, I32(16))),
            ("KvWrite slot < 0", () => stream.KvWrite(F32(1, 8), F32(1, 8), cache, 0, I32(-1))),
            ("Attention sequence past the block tables", () => stream.Attention(F32(2, 8), cache, 0, batch with { Sequence = I32(0, 1) }, F32(2, 8))),
            ("Attention position above MaxPosition", () => stream.Attention(F32(2, 8), cache, 0, batch with { Positions = I32(0, 2) }, F32(2, 8))),
            ("Attention negative position", () => stream.Attention(F32(2, 8), cache, 0, batch with { Positions = I32(0, -1) }, F32(2, 8))),
            ("Attention block id = Blocks", () => stream.Attention(F32(2, 8), cache, 0, batch with { BlockTables = I32(4, 1) }, F32(2, 8))),
            ("Attention block id < 0", () => stream.Attention(F32(2, 8), cache, 0, batch with { BlockTables = I32(-1, 1) }, F32(2, 8))),
            ("Gather row = T", () => stream.Gather(F32(3, 8), I32(0, 3), F32(2, 8))),
        };
        var log = new CaseLog();
        foreach (var (name, call) in cases)
        {
            try
            {
                call();
                log.Record($"cpu {name}: no exception");
            }
            catch (ArgumentOutOfRangeException) { log.Record((string?)null); }
            catch (Exception e) { log.Record($"cpu {name}: threw {e.GetType().Name} instead of ArgumentOutOfRangeException: {e.Message}"); }
        }
        log.Record(CaseLog.Guards("cpu index-value calls", scratch.CheckGuards()));
        log.AssertAllPassed();
    }
}
