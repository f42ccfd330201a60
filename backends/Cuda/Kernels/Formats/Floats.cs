using ILGPU;

namespace Serving.Backends.Cuda.Kernels.Formats;

/// <summary>f32 weights, as GGUF stores them.</summary>
internal struct F32Format : IWeightFormat
{
    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e) => global::ILGPU.Interop.IntAsFloat(w.Words[row * w.Cols + e]);

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
        => Value(w, row, (int)slot) * x.X[t * x.K + slot];
}

/// <summary>f16 weights, as GGUF stores them (widened exactly; x stays f32).</summary>
internal struct F16Format : IWeightFormat
{
    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e) => Scalars.HalfToFloat(w.Halves[row * w.Cols + e]);

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
        => Value(w, row, (int)slot) * x.X[t * x.K + slot];
}

/// <summary>bf16 weights, as GGUF stores them (widened exactly; x stays f32).</summary>
internal struct BF16Format : IWeightFormat
{
    /// <inheritdoc/>
    public readonly long Slots(int cols) => cols;

    /// <inheritdoc/>
    public readonly float Value(WeightView w, long row, int e) => Scalars.BFloatToFloat(w.Halves[row * w.Cols + e]);

    /// <inheritdoc/>
    public readonly float Dot<TM>(WeightView w, long row, long slot, MatMulInputs x, long t) where TM : struct, IKernelMode
        => Value(w, row, (int)slot) * x.X[t * x.K + slot];
}
