using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    // One-slot blocks, so that an attention row at position 0 reads exactly one chosen slot: a usual width and an
    // odd one (Dh = 7, one kv head).
    private static readonly KvCacheSpec[] KvWriteSpecs =
    [
        new(Layers: 3, Blocks: 24, BlockSize: 1, KvHeads: 2, HeadDim: 64),
        new(Layers: 2, Blocks: 11, BlockSize: 1, KvHeads: 1, HeadDim: 7),
    ];

    /// <summary>
    /// KvWrite of T rows into distinct slots of one layer (first and last layers and slots included), over a cache whose
    /// every slot already holds other rows. The cache is read back only through Attention, as the contract allows: an
    /// attention row at position 0 over a one-slot block returns that slot's V row exactly (softmax over one position
    /// is 1), so every slot of every layer must hold exactly the latest row written there, rounded to the cache's type
    /// (f16: to nearest even); and one row attending over all slots of the layer checks K against the reference.
    /// </summary>
    public CaseLog KvWrite(DataType type, Coverage coverage)
    {
        var log = new CaseLog();
        using var stream = device.CreateStream();
        foreach (var spec in KvWriteSpecs)
            foreach (int t in coverage == Coverage.Full ? new[] { 1, 3, 7 } : [3])
                for (int layer = 0; layer < spec.Layers; layer += spec.Layers - 1)
                    foreach (var variant in VariantRuns(OpKind.KvWrite, type))
                    {
                        if (!Applies(variant, t, spec.HeadDim)) continue;
                        int l = layer;
                        string context = Context(OpKind.KvWrite, type, variant, $"T={t} layer={l} {spec}");
                        Run(log, context, () =>
                        {
                            var data = new TestData(TestData.Seed("kvwrite", spec, type, t, l));
                            using var scratch = new DeviceScratch(device);
                            var cache = scratch.KvCache(spec with { PreferredType = type });
                            var layout = cache.Layout;
                            if (layout.Type != type) return $"{context}: CreateKvCache asked for {type.Name()}, which Supports accepts, got {layout.Type.Name()}";
                            int width = layout.RowElements, slotCount = (int)layout.SlotsPerLayer;
                            var (kHeld, vHeld) = FillCache(scratch, stream, cache, data);

                            float[] k = data.Normal(t * width), v = data.Normal(t * width); // [T, Hkv·Dh]
                            int[] slots = data.Permutation(slotCount)[..t];                 // [T], distinct
                            if (t > 1) slots[^1] = slotCount - 1;                          // the last slot of the layer
                            if (t > 2) slots[0] = 0;                                       // and the first
                            slots = Distinct(slots, slotCount);
                            stream.KvWrite(scratch.Input(k, t, width), scratch.Input(v, t, width), cache, l, scratch.Input(slots, 1, t), variant);
                            float[] kRounded = Reference.CacheValues(layout.Type, k), vRounded = Reference.CacheValues(layout.Type, v);
                            for (int r = 0; r < t; r++)
                            {
                                Array.Copy(kRounded, r * width, kHeld[l], slots[r] * width, width);
                                Array.Copy(vRounded, r * width, vHeld[l], slots[r] * width, width);
                            }
                            string where = $"slots=[{string.Join(',', slots)}]";
                            for (int readLayer = 0; readLayer < layout.Layers; readLayer++)
                            {
                                float[] read = ReadV(scratch, stream, cache, readLayer);
                                string? failure = CaseLog.CompareBytes($"{context} {where}: V of every slot of layer {readLayer}, read back through Attention, bits",
                                    TestData.AsBytes(vHeld[readLayer]), TestData.AsBytes(read));
                                if (failure is not null) return failure;
                            }
                            // K: one query row over every slot of the layer, in a shuffled order.
                            int[] table = data.Permutation(slotCount);
                            float[] q = data.Normal(layout.KvHeads * layout.HeadDim);
                            float scale = 1 / MathF.Sqrt(layout.HeadDim);
                            var y = scratch.Output(DataType.F32, 1, width);
                            stream.Attention(scratch.Input(q, 1, width), cache, l,
                                new AttentionBatch(scratch.Input([slotCount - 1], 1, 1), scratch.Input([0], 1, 1), scratch.Input(table, 1, slotCount),
                                    layout.KvHeads, scale, slotCount - 1, true), y);
                            stream.Synchronize();
                            double[] expected = Reference.Attention(TestData.Widen(q), 1, layout.KvHeads, layout.KvHeads, layout.HeadDim,
                                TestData.Widen(kHeld[l]), TestData.Widen(vHeld[l]), 1, table, slotCount, [slotCount - 1], [0], scale);
                            return CaseLog.Compare($"{context} {where}: attention over every slot of layer {l} (checks K)", expected, scratch.ReadF32(y), width,
                                       Tolerances.For(OpKind.Attention, layout.Type))
                                   ?? CaseLog.Guards(context, scratch.CheckGuards());
                        });
                        if (spec.Layers == 1) break;
                    }
        return log;
    }

    /// <summary>
    /// The V row of every slot of <paramref name="layer"/> of a one-slot-block cache, read through Attention: query row s
    /// is sequence s at position 0, whose only block is slot s, with H = Hkv, so its output is V[s] exactly.
    /// </summary>
    private static float[] ReadV(DeviceScratch scratch, IComputeStream stream, IKvCache cache, int layer)
    {
        var layout = cache.Layout;
        int slots = (int)layout.SlotsPerLayer, width = layout.RowElements;
        int[] ids = [.. Enumerable.Range(0, slots)];
        var y = scratch.Output(DataType.F32, slots, width);
        var batch = new AttentionBatch(scratch.Input(new int[slots], 1, slots), scratch.Input(ids, 1, slots), scratch.Input(ids, slots, 1),
            layout.KvHeads, 1f, 0, true);
        stream.Attention(scratch.Input(new TestData(layer).Normal(slots * width), slots, width), cache, layer, batch, y);
        stream.Synchronize();
        return scratch.ReadF32(y);
    }

    // Replaces repeats (from the forced first/last slots) by unused slots, keeping the order.
    private static int[] Distinct(int[] slots, int count)
    {
        var used = new HashSet<int>();
        var free = new Queue<int>(Enumerable.Range(0, count).Where(s => !slots.Contains(s)));
        for (int i = 0; i < slots.Length; i++)
            if (!used.Add(slots[i])) { slots[i] = free.Dequeue(); used.Add(slots[i]); }
        return slots;
    }
}
