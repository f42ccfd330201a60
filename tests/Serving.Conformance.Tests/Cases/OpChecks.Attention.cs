using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    // Cache layouts × query heads: GQA 4:1 with 16-slot blocks; 3:1 with odd 5-slot blocks and Dh = 128;
    // plain multi-head with Dh = 80 (not a power of two).
    private static readonly (KvCacheLayout Layout, int Heads)[] AttentionShapes =
    [
        (new(Layers: 2, Blocks: 12, BlockSize: 16, KvHeads: 2, HeadDim: 64, DataType.F32), 8),
        (new(Layers: 1, Blocks: 20, BlockSize: 5, KvHeads: 1, HeadDim: 128, DataType.F32), 3),
        (new(Layers: 2, Blocks: 16, BlockSize: 8, KvHeads: 4, HeadDim: 80, DataType.F32), 4),
    ];

    /// <summary>One step's query rows: position and sequence of each row.</summary>
    private sealed record AttentionStep(string Name, int[] Positions, int[] Sequence);

    // Three sequences. decode: one row each; prefill: a first chunk; chunk: a later chunk (attends to cached
    // positions before it); mixed (T = 17): decode rows around a prefill chunk, as continuous batching records them.
    private static readonly AttentionStep[] AttentionSteps =
    [
        new("decode", [0, 17, 40], [0, 1, 2]),
        new("prefill", [.. Enumerable.Range(0, 16)], [.. Enumerable.Repeat(0, 16)]),
        new("chunk", [.. Enumerable.Range(20, 7)], [.. Enumerable.Repeat(2, 7)]),
        new("mixed", [33, .. Enumerable.Range(30, 15), 0], [1, .. Enumerable.Repeat(0, 15), 2]),
    ];

    /// <summary>
    /// Paged causal GQA attention for each layout × step of the coverage: block tables map positions to scattered
    /// blocks (unused entries −1), the cache holds random K/V everywhere (so reading past a row's position, another
    /// sequence's block or the wrong layer changes the result), compared with the float64 reference.
    /// </summary>
    public CaseLog Attention(Coverage coverage)
    {
        var log = new CaseLog();
        double limit = Tolerances.For(OpKind.Attention, DataType.F32);
        using var stream = device.CreateStream();
        foreach (var (layout, heads) in coverage == Coverage.Full ? AttentionShapes : AttentionShapes[..2])
            foreach (var step in coverage == Coverage.Full ? AttentionSteps : [AttentionSteps[0], AttentionSteps[3]])
            {
                string context = Context(OpKind.Attention, DataType.F32, null,
                    $"{step.Name} T={step.Positions.Length} H={heads} Hkv={layout.KvHeads} Dh={layout.HeadDim} blockSize={layout.BlockSize}");
                Run(log, context, () =>
                {
                    using var scratch = new DeviceScratch(device);
                    var setup = AttentionSetup.Create(scratch, layout, heads, step);
                    var y = scratch.Output(DataType.F32, step.Positions.Length, heads * layout.HeadDim);
                    stream.Attention(setup.Q, setup.Cache, setup.Layer, setup.Batch, y);
                    stream.Synchronize();
                    return CaseLog.Compare(context, setup.Expected(), scratch.ReadF32(y), heads * layout.HeadDim, limit)
                           ?? CaseLog.Guards(context, scratch.CheckGuards());
                });
            }
        return log;
    }

    /// <summary>
    /// Batch invariance of Attention: each row of the mixed T = 17 step, computed alone (T = 1, same position and
    /// sequence), must be bit-identical to its row in the batch.
    /// </summary>
    public CaseLog AttentionBatchInvariance()
    {
        var log = new CaseLog();
        using var stream = device.CreateStream();
        foreach (var (layout, heads) in AttentionShapes)
        {
            var step = AttentionSteps[3];
            int t = step.Positions.Length, width = heads * layout.HeadDim;
            string context = Context(OpKind.Attention, DataType.F32, null, $"mixed T={t} H={heads} Hkv={layout.KvHeads} Dh={layout.HeadDim}");
            Run(log, context, () =>
            {
                using var scratch = new DeviceScratch(device);
                var setup = AttentionSetup.Create(scratch, layout, heads, step);
                var all = scratch.Output(DataType.F32, t, width);
                stream.Attention(setup.Q, setup.Cache, setup.Layer, setup.Batch, all);
                stream.Synchronize();
                byte[] batchBytes = scratch.Read(all);
                for (int row = 0; row < t; row++)
                {
                    var single = scratch.Output(DataType.F32, 1, width);
                    var batch = setup.Batch with
                    {
                        Positions = scratch.Input([step.Positions[row]], 1, 1),
                        Sequence = scratch.Input([step.Sequence[row]], 1, 1),
                    };
                    stream.Attention(setup.Q.SliceRows(row, 1), setup.Cache, setup.Layer, batch, single);
                    stream.Synchronize();
                    string? failure = CaseLog.CompareBytes($"{context}: row {row} (position {step.Positions[row]}) alone vs in the batch, bits",
                        batchBytes.AsSpan(row * width * 4, width * 4), scratch.Read(single));
                    if (failure is not null) return failure;
                }
                return null;
            });
        }
        return log;
    }

    /// <summary>The device inputs of one attention case and its float64 reference.</summary>
    private sealed class AttentionSetup
    {
        public required TensorView Q { get; init; }                 // [T, H·Dh]
        public required KvCacheView Cache { get; init; }
        public required int Layer { get; init; }
        public required AttentionBatch Batch { get; init; }
        public required Func<double[]> Expected { get; init; }

        public static AttentionSetup Create(DeviceScratch scratch, KvCacheLayout layout, int heads, AttentionStep step)
        {
            var data = new TestData(TestData.Seed("attention", layout, heads, step.Name));
            int t = step.Positions.Length, width = layout.RowElements, sequences = step.Sequence.Max() + 1;
            int layer = layout.Layers - 1;

            // Blocks each sequence needs for its highest position, scattered over the layer's blocks; one unused (−1)
            // column at the end, which the backend must ignore.
            var needed = new int[sequences];
            for (int r = 0; r < t; r++)
                needed[step.Sequence[r]] = Math.Max(needed[step.Sequence[r]], step.Positions[r] / layout.BlockSize + 1);
            int columns = needed.Max() + 1;
            int[] order = data.Permutation(layout.Blocks);
            if (needed.Sum() > layout.Blocks) throw new InvalidOperationException($"layout {layout} too small for step {step.Name}");
            var tables = new int[sequences * columns];                          // [S, M]
            Array.Fill(tables, -1);
            for (int s = 0, next = 0; s < sequences; s++)
                for (int b = 0; b < needed[s]; b++) tables[s * columns + b] = order[next++];

            float[] k = data.Normal((int)(layout.Layers * layout.SlotsPerLayer * width)); // (layer, slot, Hkv·Dh)
            float[] v = data.Normal(k.Length);
            float[] q = data.Normal(t * heads * layout.HeadDim);
            var kBuffer = scratch.Allocate(layout.BytesPerTensor);
            var vBuffer = scratch.Allocate(layout.BytesPerTensor);
            scratch.Device.Upload(kBuffer, 0, TestData.AsBytes(k));
            scratch.Device.Upload(vBuffer, 0, TestData.AsBytes(v));
            float scale = 1 / MathF.Sqrt(layout.HeadDim);
            var batch = new AttentionBatch(scratch.Input(step.Positions, 1, t), scratch.Input(step.Sequence, 1, t),
                scratch.Input(tables, sequences, columns), heads, scale);
            long layerStart = layer * layout.SlotsPerLayer * width;
            return new AttentionSetup
            {
                Q = scratch.Input(q, t, heads * layout.HeadDim),
                Cache = new KvCacheView(kBuffer, vBuffer, layout),
                Layer = layer,
                Batch = batch,
                Expected = () => Reference.Attention(TestData.Widen(q), t, heads, layout.KvHeads, layout.HeadDim,
                    TestData.Widen(k.AsSpan((int)layerStart, (int)(layout.SlotsPerLayer * width))),
                    TestData.Widen(v.AsSpan((int)layerStart, (int)(layout.SlotsPerLayer * width))),
                    layout.BlockSize, tables, columns, step.Positions, step.Sequence, scale),
            };
        }
    }
}
