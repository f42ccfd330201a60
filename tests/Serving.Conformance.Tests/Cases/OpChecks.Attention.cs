using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    /// <summary>The KV cache types the suite tests: f16 (the default) and f32.</summary>
    public static readonly DataType[] KvTypes = [DataType.F16, DataType.F32];

    // Cache shapes × query heads: GQA 4:1 with 16-slot blocks; 3:1 with odd 5-slot blocks and Dh = 128;
    // plain multi-head with Dh = 80 (not a power of two).
    private static readonly (KvCacheSpec Spec, int Heads)[] AttentionShapes =
    [
        (new(Layers: 2, Blocks: 12, BlockSize: 16, KvHeads: 2, HeadDim: 64), 8),
        (new(Layers: 1, Blocks: 20, BlockSize: 5, KvHeads: 1, HeadDim: 128), 3),
        (new(Layers: 2, Blocks: 16, BlockSize: 8, KvHeads: 4, HeadDim: 80), 4),
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
    /// Paged causal GQA attention over a cache of <paramref name="type"/> for each shape × step of the coverage × variant:
    /// block tables map positions to scattered blocks (unused entries −1), every slot of every layer holds random K/V
    /// written with KvWrite (so reading past a row's position, another sequence's block or the wrong layer changes the
    /// result), compared with the float64 reference on the values the cache holds (f16: rounded to nearest even).
    /// </summary>
    public CaseLog Attention(DataType type, Coverage coverage)
    {
        var log = new CaseLog();
        double limit = Tolerances.For(OpKind.Attention, type);
        using var stream = device.CreateStream();
        foreach (var (spec, heads) in coverage == Coverage.Full ? AttentionShapes : AttentionShapes[..2])
            foreach (var step in coverage == Coverage.Full ? AttentionSteps : [AttentionSteps[0], AttentionSteps[3]])
            {
                string shape = $"{step.Name} T={step.Positions.Length} H={heads} Hkv={spec.KvHeads} Dh={spec.HeadDim} blockSize={spec.BlockSize}";
                AttentionSetup? setup = null;
                using var scratch = new DeviceScratch(device);
                Run(log, Context(OpKind.Attention, type, null, shape + " (setup)"), () =>
                {
                    setup = AttentionSetup.Create(scratch, stream, spec with { PreferredType = type }, heads, step);
                    return setup.Cache.Layout.Type == type ? null
                        : $"{backend} CreateKvCache: asked for {type.Name()}, which Supports accepts, got {setup.Cache.Layout.Type.Name()}";
                });
                if (setup is not { } ready) continue;
                foreach (var variant in VariantRuns(OpKind.Attention, type))
                {
                    if (!Applies(variant, step.Positions.Length, spec.HeadDim)) continue;
                    string context = Context(OpKind.Attention, type, variant, shape);
                    Run(log, context, () =>
                    {
                        var y = scratch.Output(DataType.F32, step.Positions.Length, heads * spec.HeadDim);
                        stream.Attention(ready.Q, ready.Cache, ready.Layer, ready.Batch, y, variant);
                        stream.Synchronize();
                        return CaseLog.Compare(context, ready.Expected(), scratch.ReadF32(y), heads * spec.HeadDim, limit)
                               ?? CaseLog.Guards(context, scratch.CheckGuards());
                    });
                }
            }
        return log;
    }

    /// <summary>
    /// Batch invariance of Attention: each row of the mixed T = 17 step, computed alone (T = 1, same position and
    /// sequence), must be bit-identical to its row in the batch, for every variant that declares it.
    /// </summary>
    public CaseLog AttentionBatchInvariance(DataType type)
    {
        var log = new CaseLog();
        using var stream = device.CreateStream();
        foreach (var (spec, heads) in AttentionShapes)
        foreach (var variant in VariantRuns(OpKind.Attention, type))
        {
            var step = AttentionSteps[3];
            int t = step.Positions.Length, width = heads * spec.HeadDim;
            if (variant is { BatchInvariant: false } || !Applies(variant, t, spec.HeadDim) || !Applies(variant, 1, spec.HeadDim)) continue;
            string context = Context(OpKind.Attention, type, variant, $"mixed T={t} H={heads} Hkv={spec.KvHeads} Dh={spec.HeadDim}");
            Run(log, context, () =>
            {
                using var scratch = new DeviceScratch(device);
                var setup = AttentionSetup.Create(scratch, stream, spec with { PreferredType = type }, heads, step);
                var all = scratch.Output(DataType.F32, t, width);
                stream.Attention(setup.Q, setup.Cache, setup.Layer, setup.Batch, all, variant);
                stream.Synchronize();
                byte[] batchBytes = scratch.Read(all);
                for (int row = 0; row < t; row++)
                {
                    var single = scratch.Output(DataType.F32, 1, width);
                    var batch = setup.Batch with
                    {
                        Positions = scratch.Input([step.Positions[row]], 1, 1),
                        Sequence = scratch.Input([step.Sequence[row]], 1, 1),
                        MaxPosition = step.Positions[row],
                    };
                    stream.Attention(setup.Q.SliceRows(row, 1), setup.Cache, setup.Layer, batch, single, variant);
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

    /// <summary>
    /// Fills every slot of every layer of <paramref name="cache"/> with random k and v rows through KvWrite and returns
    /// them as the cache holds them (rounded to its type): [layer][slot · Hkv·Dh].
    /// </summary>
    private static (float[][] K, float[][] V) FillCache(DeviceScratch scratch, IComputeStream stream, IKvCache cache, TestData data)
    {
        var layout = cache.Layout;
        int slots = (int)layout.SlotsPerLayer, width = layout.RowElements;
        var ks = new float[layout.Layers][];
        var vs = new float[layout.Layers][];
        var all = scratch.Input(Enumerable.Range(0, slots).ToArray(), 1, slots);
        for (int layer = 0; layer < layout.Layers; layer++)
        {
            float[] k = data.Normal(slots * width), v = data.Normal(slots * width);
            stream.KvWrite(scratch.Input(k, slots, width), scratch.Input(v, slots, width), cache, layer, all);
            ks[layer] = Reference.CacheValues(layout.Type, k);
            vs[layer] = Reference.CacheValues(layout.Type, v);
        }
        return (ks, vs);
    }

    /// <summary>The device inputs of one attention case and its float64 reference.</summary>
    private sealed class AttentionSetup
    {
        public required TensorView Q { get; init; }                 // [T, H·Dh]
        public required IKvCache Cache { get; init; }
        public required int Layer { get; init; }
        public required AttentionBatch Batch { get; init; }
        public required Func<double[]> Expected { get; init; }

        public static AttentionSetup Create(DeviceScratch scratch, IComputeStream stream, KvCacheSpec spec, int heads, AttentionStep step)
        {
            var data = new TestData(TestData.Seed("attention", spec, heads, step.Name));
            int t = step.Positions.Length, sequences = step.Sequence.Max() + 1;
            int layer = spec.Layers - 1;
            var cache = scratch.KvCache(spec);
            var layout = cache.Layout;

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

            var (k, v) = FillCache(scratch, stream, cache, data);
            float[] q = data.Normal(t * heads * layout.HeadDim);
            float scale = 1 / MathF.Sqrt(layout.HeadDim);
            var batch = new AttentionBatch(scratch.Input(step.Positions, 1, t), scratch.Input(step.Sequence, 1, t),
                scratch.Input(tables, sequences, columns), heads, scale, step.Positions.Max(), ContiguousSequences: true);
            return new AttentionSetup
            {
                Q = scratch.Input(q, t, heads * layout.HeadDim),
                Cache = cache,
                Layer = layer,
                Batch = batch,
                Expected = () => Reference.Attention(TestData.Widen(q), t, heads, layout.KvHeads, layout.HeadDim,
                    TestData.Widen(k[layer]), TestData.Widen(v[layer]),
                    layout.BlockSize, tables, columns, step.Positions, step.Sequence, scale),
            };
        }
    }
}
