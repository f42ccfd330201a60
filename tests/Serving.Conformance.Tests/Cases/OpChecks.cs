using Serving.Abstractions;

namespace Serving.Conformance.Tests.Cases;

/// <summary>How many shapes a check covers.</summary>
public enum Coverage
{
    /// <summary>Every tail shape of the suite.</summary>
    Full,
    /// <summary>A few shapes with tails, for the SIMD-tier child runs.</summary>
    Quick,
}

/// <summary>
/// The op cases of the conformance suite, runnable without xunit (the SIMD-tier child process runs them too).
/// Each method runs every shape × variant of one op and type against <see cref="Reference"/> and returns the log;
/// a case that throws is a failed case, not an aborted test. One file per op (OpChecks.&lt;Op&gt;.cs).
/// Legend: T = rows in the step, K = input dim, N = output dim, D = row width, V = vocab or table rows,
/// H/Hkv = query/kv heads, Dh = head dim, F = FFN dim.
/// </summary>
public sealed partial class OpChecks(IAccelerator device, string backend)
{
    /// <summary>Step sizes: decode (1), tiny batches, a non-multiple of 8 and 16, a full tile, a tile plus one.</summary>
    public static readonly int[] Rows = [1, 2, 3, 7, 16, 33];

    /// <summary>Output widths: 1, odd, just under a power of two, a power of two, a power of two plus one.</summary>
    public static readonly int[] Widths = [1, 7, 31, 64, 257];

    /// <summary>Input widths every weight type takes: whole q-blocks, an odd number of blocks (3, 9), and 10 blocks.</summary>
    public static readonly int[] BlockWidths = [32, 64, 96, 288, 320];

    /// <summary>
    /// Input widths of the K-quants (rows are whole super-blocks of 256): one, two (so a row spans super-blocks) and
    /// three (an odd count).
    /// </summary>
    public static readonly int[] SuperBlockWidths = [256, 512, 768];

    /// <summary>Extra input widths for unquantized types: not multiples of any vector width.</summary>
    public static readonly int[] OddWidths = [1, 7, 33, 257];

    /// <summary>The weight types of MatMul and Embed.</summary>
    public static readonly DataType[] WeightTypes = WeightFormatCases.Types;

    /// <summary>The backend under test.</summary>
    public string Backend => backend;

    /// <summary>The device under test.</summary>
    public IAccelerator Device => device;

    /// <summary>Null when the device runs <paramref name="op"/> with <paramref name="type"/>; otherwise the skip reason.</summary>
    public string? Unsupported(OpKind op, DataType type)
    {
        var support = device.Supports(new OpQuery(op, type));
        return support.Supported ? null : $"{backend} does not support {op} {type.Name()}: {support.Reason}";
    }

    /// <summary>
    /// Input widths for a weight type: block multiples, plus odd widths for unquantized types; super-block multiples
    /// for the K-quants.
    /// </summary>
    public static int[] InputWidths(DataType type, Coverage coverage)
    {
        if (type.BlockSize() == 256)
            return coverage == Coverage.Full ? SuperBlockWidths : [256, 768];
        int[] widths = type.IsQuantized() ? BlockWidths : [.. BlockWidths, .. OddWidths];
        return coverage == Coverage.Full ? widths : widths.Where(k => k is 32 or 96 or 288 or 7 or 33).ToArray();
    }

    private static int[] Pick(int[] values, Coverage coverage, params int[] quick)
        => coverage == Coverage.Full ? values : values.Where(quick.Contains).ToArray();

    /// <summary>
    /// What to pass as the variant: each of GetVariants, then null (the default) as a separate run. A variant that is not
    /// batch-invariant runs only when the device's streams are not reproducible (a reproducible stream refuses it).
    /// </summary>
    private IReadOnlyList<KernelVariant?> VariantRuns(OpKind op, DataType type)
    {
        bool reproducible;
        using (var probe = device.CreateStream()) reproducible = probe.Reproducible;
        return [.. device.GetVariants(op, type).Where(v => v.BatchInvariant || !reproducible), null];
    }

    /// <summary>True for the default (null) and for a variant whose <see cref="KernelVariant.AppliesTo"/> matches T = rows and the op's cols.</summary>
    private static bool Applies(KernelVariant? variant, int rows, int cols) => variant is null || variant.AppliesTo.Matches(rows, cols);

    private string Context(OpKind op, DataType type, KernelVariant? variant, string shape)
        => $"{backend} {op} {type.Name()} variant={variant?.Name ?? "default"} {shape}";

    // A case body; exceptions become failures of that case so one crash does not hide the other cases.
    private static void Run(CaseLog log, string context, Func<string?> body)
    {
        try { log.Record(body()); }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            log.Record($"{context}: threw {e.GetType().Name}: {e.Message}");
        }
    }
}
