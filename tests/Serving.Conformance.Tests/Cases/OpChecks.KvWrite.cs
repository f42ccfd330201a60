using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

public sealed partial class OpChecks
{
    // Layouts: a usual one (16-slot blocks) and an odd one (3-slot blocks, Dh = 7, one kv head).
    private static readonly KvCacheLayout[] KvLayouts =
    [
        new(Layers: 2, Blocks: 4, BlockSize: 16, KvHeads: 2, HeadDim: 64, DataType.F32),
        new(Layers: 3, Blocks: 5, BlockSize: 3, KvHeads: 1, HeadDim: 7, DataType.F32),
    ];

    /// <summary>
    /// KvWrite of T rows into random distinct slots of each layer (first and last layers included): the written rows
    /// must hold k and v exactly, and every other byte of both caches (other slots, other layers) must be unchanged —
    /// the rest of the cache is the guard region.
    /// </summary>
    public CaseLog KvWrite(Coverage coverage)
    {
        var log = new CaseLog();
        using var stream = device.CreateStream();
        foreach (var layout in KvLayouts)
            foreach (int t in coverage == Coverage.Full ? new[] { 1, 3, 7 } : [3])
                for (int layer = 0; layer < layout.Layers; layer += layout.Layers - 1)
                {
                    int l = layer;
                    string context = Context(OpKind.KvWrite, DataType.F32, null, $"T={t} layer={l} {layout}");
                    Run(log, context, () =>
                    {
                        var data = new TestData(TestData.Seed("kvwrite", layout, t, l));
                        int width = layout.RowElements;
                        float[] k = data.Normal(t * width), v = data.Normal(t * width); // [T, Hkv·Dh]
                        int[] slots = data.Permutation((int)layout.SlotsPerLayer)[..t]; // [T], distinct
                        if (t > 1) slots[^1] = (int)layout.SlotsPerLayer - 1;           // the last slot of the layer
                        if (t > 2) slots[0] = 0;                                       // and the first
                        slots = Distinct(slots, (int)layout.SlotsPerLayer);
                        byte[] kBefore = data.Bytes((int)layout.BytesPerTensor), vBefore = data.Bytes((int)layout.BytesPerTensor);
                        using var scratch = new DeviceScratch(device);
                        var kBuffer = scratch.Allocate(layout.BytesPerTensor);
                        var vBuffer = scratch.Allocate(layout.BytesPerTensor);
                        device.Upload(kBuffer, 0, kBefore);
                        device.Upload(vBuffer, 0, vBefore);
                        var cache = new KvCacheView(kBuffer, vBuffer, layout);
                        stream.KvWrite(scratch.Input(k, t, width), scratch.Input(v, t, width), cache, l, scratch.Input(slots, 1, t));
                        stream.Synchronize();

                        byte[] kExpected = (byte[])kBefore.Clone(), vExpected = (byte[])vBefore.Clone();
                        byte[] kRows = TestData.AsBytes(k), vRows = TestData.AsBytes(v);
                        int rowBytes = width * 4;
                        for (int r = 0; r < t; r++)
                        {
                            long at = (l * layout.SlotsPerLayer + slots[r]) * rowBytes;
                            Array.Copy(kRows, r * rowBytes, kExpected, at, rowBytes);
                            Array.Copy(vRows, r * rowBytes, vExpected, at, rowBytes);
                        }
                        var kAfter = new byte[layout.BytesPerTensor];
                        var vAfter = new byte[layout.BytesPerTensor];
                        device.Download(kBuffer, 0, kAfter);
                        device.Download(vBuffer, 0, vAfter);
                        return CaseLog.CompareBytes($"{context} slots=[{string.Join(',', slots)}] K cache", kExpected, kAfter)
                               ?? CaseLog.CompareBytes($"{context} slots=[{string.Join(',', slots)}] V cache", vExpected, vAfter);
                    });
                    if (layout.Layers == 1) break;
                }
        return log;
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
