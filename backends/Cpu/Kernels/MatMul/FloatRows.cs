using System.Runtime.Intrinsics;

namespace Serving.Backends.Cpu.Kernels.MatMul;

/// <summary>
/// How to read floats from a weight row of one unquantized type. Implemented by structs so the generic driver is
/// specialized per type. Every load converts exactly (f16 and bf16 values are all representable in f32), so a
/// row converted once to f32 and then read as F32 gives bit-identical products.
/// </summary>
internal unsafe interface IFloatRow
{
    /// <summary>Bytes per element.</summary>
    static abstract int ElementBytes { get; }

    /// <summary>True when loads convert (F16, BF16): the driver then converts a tile of rows once for many x rows.</summary>
    static abstract bool Converts { get; }

    /// <summary>Elements k..k+15 of the row as floats.</summary>
    static abstract Vector512<float> Load512(byte* row, int k);

    /// <summary>Elements k..k+7.</summary>
    static abstract Vector256<float> Load256(byte* row, int k);

    /// <summary>Elements k..k+3.</summary>
    static abstract Vector128<float> Load128(byte* row, int k);

    /// <summary>Element k.</summary>
    static abstract float Load(byte* row, int k);
}
