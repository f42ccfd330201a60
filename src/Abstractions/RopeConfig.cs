namespace Serving.Abstractions;

/// <summary>How rotary pairs are formed.</summary>
public enum RopeStyle
{
    /// <summary>Adjacent pairs (x[2i], x[2i+1]): llama, mistral (GGUF/ggml "normal" mode).</summary>
    Normal,
    /// <summary>Split halves (x[i], x[i + rot/2]): qwen2 and HF-converted NeoX models.</summary>
    NeoX,
}

/// <summary>
/// Parameters of <see cref="IComputeStream.Rope"/>. The engine folds theta and any scaling (linear, llama3)
/// into <see cref="InverseFrequencies"/>, so backends only do the rotation:
/// angle(pos, i) = pos · InverseFrequencies[i], for i in [0, RotaryDim/2).
/// </summary>
/// <param name="Heads">Heads in the rows being rotated (H for q, Hkv for k).</param>
/// <param name="HeadDim">Dh: elements per head.</param>
/// <param name="RotaryDim">Leading elements of each head that rotate (≤ HeadDim, even); the rest pass through.</param>
/// <param name="Style">Pairing style.</param>
/// <param name="InverseFrequencies">F32 [1, RotaryDim/2] on the same device.</param>
public readonly record struct RopeConfig(int Heads, int HeadDim, int RotaryDim, RopeStyle Style, TensorView InverseFrequencies);
