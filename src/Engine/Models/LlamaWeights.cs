using Serving.Abstractions;

namespace Serving.Engine.Models;

/// <summary>Device views of one transformer block's tensors. Legend in <see cref="LlamaConfig"/>.</summary>
internal sealed class LlamaLayerWeights
{
    public required TensorView AttnNorm { get; init; }   // F32 [1, D]
    public required TensorView Wq { get; init; }         // [H·Dh, D]
    public required TensorView Wk { get; init; }         // [Hkv·Dh, D]
    public required TensorView Wv { get; init; }         // [Hkv·Dh, D]
    public required TensorView Wo { get; init; }         // [D, H·Dh]
    public TensorView? Bq { get; init; }                 // F32 [1, H·Dh] (qwen2)
    public TensorView? Bk { get; init; }                 // F32 [1, Hkv·Dh]
    public TensorView? Bv { get; init; }                 // F32 [1, Hkv·Dh]
    public required TensorView FfnNorm { get; init; }    // F32 [1, D]
    public required TensorView WGate { get; init; }      // [F, D]
    public required TensorView WUp { get; init; }        // [F, D]
    public required TensorView WDown { get; init; }      // [D, F]
}
