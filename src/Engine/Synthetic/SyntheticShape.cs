namespace Serving.Engine.Synthetic;

/// <summary>
/// Hyper-parameters of a Llama-family decoder, for generating synthetic models of real shapes.
/// D = <see cref="Dim"/>, F = <see cref="FeedForward"/>, V = <see cref="Vocab"/>, Dh = D / heads.
/// </summary>
/// <param name="Name">Short name ("tiny", "1b").</param>
/// <param name="Dim">Model (embedding) dimension D.</param>
/// <param name="Layers">Transformer blocks.</param>
/// <param name="Heads">Query heads H (must divide D).</param>
/// <param name="KvHeads">Key/value heads Hkv (must divide H).</param>
/// <param name="FeedForward">FFN hidden dimension F.</param>
/// <param name="Vocab">Vocabulary size V (the embedded llama vocabulary has 32000 tokens).</param>
/// <param name="Context">Training context length written to llama.context_length.</param>
/// <param name="RopeTheta">RoPE frequency base.</param>
/// <param name="RmsEpsilon">RMSNorm epsilon.</param>
public sealed record SyntheticShape(
    string Name, int Dim, int Layers, int Heads, int KvHeads, int FeedForward, int Vocab, int Context,
    float RopeTheta, float RmsEpsilon = 1e-5f)
{
    /// <summary>Dh = D / H.</summary>
    public int HeadDim => Dim / Heads;

    /// <summary>Width of K and V projections: Hkv · Dh.</summary>
    public int KvDim => KvHeads * HeadDim;

    /// <summary>Number of weights (tied embeddings: the output projection reuses token_embd).</summary>
    public long ParameterCount =>
        (long)Vocab * Dim + Dim
        + (long)Layers * (2L * Dim + 2L * Dim * Dim + 2L * Dim * KvDim + 3L * Dim * FeedForward);
}
