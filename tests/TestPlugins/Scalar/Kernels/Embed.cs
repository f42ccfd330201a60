using Serving.Abstractions;

namespace Serving.Backends.Scalar.Kernels;

/// <summary>Embed: out[t, :] = dequant(table[ids[t], :]).</summary>
internal static class Embed
{
    public static void Run(ScalarWeight table, in TensorView ids, in TensorView output)
    {
        int[] id = Views.ReadInts(ids);
        foreach (int v in id) Views.CheckIndex(nameof(Embed), "token id", v, table.Rows); // before writing anything
        var row = new float[table.Cols];
        for (int t = 0; t < id.Length; t++)
        {
            Dequantize.Row(table.Type, table.Row(id[t]), row);
            Views.WriteRow(output, t, row);
        }
    }
}
