using Serving.Abstractions;

namespace Serving.Engine.Gguf;

/// <summary>
/// Block geometry of every ggml tensor type id, so a file holding types this engine does not compute with
/// (Q3_K, IQ2_XS, ...) still parses and its sizes are still checked. The types of <see cref="DataType"/> take their
/// geometry from the contract's table (<see cref="DataTypes"/>); the rest follow ggml's type traits (ggml.c
/// <c>type_traits</c>): ids 4, 5 and 31–33, 36–38 were removed from ggml and are unknown here.
/// </summary>
public static class GgmlTypes
{
    /// <summary>Geometry of one ggml type.</summary>
    /// <param name="Id">ggml type id (equals <see cref="DataType"/> values where both exist).</param>
    /// <param name="Name">ggml's name ("q4_K").</param>
    /// <param name="BlockSize">Elements per block (1 for plain types).</param>
    /// <param name="BlockBytes">Bytes per block.</param>
    public readonly record struct Traits(int Id, string Name, int BlockSize, int BlockBytes);

    // QK_K = 256 super-blocks for the K and most IQ types.
    private static readonly Traits?[] Table = Build();

    private static Traits?[] Build()
    {
        var t = new Traits?[40];
        void Add(int id, string name, int bs, int bytes) => t[id] = new Traits(id, name, bs, bytes);
        foreach (DataTypeInfo info in DataTypes.All)
            Add((int)info.Type, info.Name, info.BlockSize, info.BlockBytes);
        Add(3, "q4_1", 32, 20);      // f16 d, f16 m + 16
        Add(7, "q5_1", 32, 24);      // f16 d, f16 m + 4 + 16
        Add(9, "q8_1", 32, 36);      // f16 d, f16 s + 32 int8
        Add(10, "q2_K", 256, 84);    // 16 scales + 64 qs + f16 d, dmin
        Add(11, "q3_K", 256, 110);   // 32 hmask + 64 qs + 12 scales + f16 d
        Add(15, "q8_K", 256, 292);   // f32 d + 256 qs + 16 int16 bsums
        Add(16, "iq2_xxs", 256, 66);
        Add(17, "iq2_xs", 256, 74);
        Add(18, "iq3_xxs", 256, 98);
        Add(19, "iq1_s", 256, 50);
        Add(20, "iq4_nl", 32, 18);
        Add(21, "iq3_s", 256, 110);
        Add(22, "iq2_s", 256, 82);
        Add(23, "iq4_xs", 256, 136);
        Add(24, "i8", 1, 1);
        Add(25, "i16", 1, 2);
        Add(27, "i64", 1, 8);
        Add(28, "f64", 1, 8);
        Add(29, "iq1_m", 256, 56);
        Add(34, "tq1_0", 256, 54);
        Add(35, "tq2_0", 256, 66);
        Add(39, "mxfp4", 32, 17);    // e8m0 scale + 16 nibble bytes
        return t;
    }

    /// <summary>Looks up a ggml type id; false for ids ggml does not define (or has removed).</summary>
    public static bool TryGet(int ggmlType, out Traits traits)
    {
        if ((uint)ggmlType < (uint)Table.Length && Table[ggmlType] is { } found)
        {
            traits = found;
            return true;
        }
        traits = default;
        return false;
    }

    /// <summary>ggml's name for a type id ("q4_K"), or "unknown(N)".</summary>
    public static string NameOf(int ggmlType) => TryGet(ggmlType, out var t) ? t.Name : $"unknown({ggmlType})";

    /// <summary>True when <paramref name="ggmlType"/> is a <see cref="DataType"/> this engine computes with.</summary>
    public static bool IsImplemented(int ggmlType) => ((DataType)ggmlType).TryGetInfo(out _);
}
