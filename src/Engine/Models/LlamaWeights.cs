using Serving.Abstractions;

namespace Serving.Engine.Models;

/// <summary>Device weights of one transformer block. Legend in <see cref="LlamaConfig"/>.</summary>
internal sealed class LlamaLayerWeights
{
    public required TensorView AttnNorm { get; init; }   // F32 [1, D]
    public required IDeviceWeight Wq { get; init; }      // [H·Dh, D]
    public required IDeviceWeight Wk { get; init; }      // [Hkv·Dh, D]
    public required IDeviceWeight Wv { get; init; }      // [Hkv·Dh, D]
    public required IDeviceWeight Wo { get; init; }      // [D, H·Dh]
    public TensorView? Bq { get; init; }                 // F32 [1, H·Dh] (qwen2)
    public TensorView? Bk { get; init; }                 // F32 [1, Hkv·Dh]
    public TensorView? Bv { get; init; }                 // F32 [1, Hkv·Dh]
    public required TensorView FfnNorm { get; init; }    // F32 [1, D]
    public required IDeviceWeight WGate { get; init; }   // [F, D]
    public required IDeviceWeight WUp { get; init; }     // [F, D]
    public required IDeviceWeight WDown { get; init; }   // [D, F]
}
