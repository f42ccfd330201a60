namespace Serving.Abstractions;

/// <summary>
/// Shape of a paged KV cache. K and V each live in one buffer laid out as
/// (layer, block, slotInBlock, Hkv·Dh), row-major, of <see cref="Type"/>. A slot is
/// block · BlockSize + slotInBlock, so slot s of layer l starts at row l · Blocks · BlockSize + s.
/// </summary>
/// <param name="Layers">Transformer layers.</param>
/// <param name="Blocks">Blocks (pages) per layer.</param>
/// <param name="BlockSize">Token slots per block.</param>
/// <param name="KvHeads">Hkv.</param>
/// <param name="HeadDim">Dh.</param>
/// <param name="Type">Element type (F32 in v1; F16 may come as a variant).</param>
public readonly record struct KvCacheLayout(int Layers, int Blocks, int BlockSize, int KvHeads, int HeadDim, DataType Type)
{
    /// <summary>Elements per cached row (Hkv·Dh).</summary>
    public int RowElements => KvHeads * HeadDim;

    /// <summary>Rows per layer (Blocks · BlockSize).</summary>
    public long SlotsPerLayer => (long)Blocks * BlockSize;

    /// <summary>Bytes of K (or of V) for all layers.</summary>
    public long BytesPerTensor => Type.RowBytes(RowElements) * SlotsPerLayer * Layers;
}

/// <summary>The K and V buffers of a paged cache and their layout.</summary>
/// <param name="K">Keys, <see cref="KvCacheLayout.BytesPerTensor"/> bytes.</param>
/// <param name="V">Values, same size.</param>
/// <param name="Layout">Their shape.</param>
public readonly record struct KvCacheView(IDeviceBuffer K, IDeviceBuffer V, KvCacheLayout Layout);

/// <summary>
/// Which cached keys each query row of an <see cref="IComputeStream.Attention"/> step sees. For query row t:
/// its sequence is row Sequence[t] of BlockTables, and it attends to that sequence's positions
/// 0..Positions[t] inclusive (causal), position p living in slot
/// BlockTables[seq, p / BlockSize] · BlockSize + p % BlockSize.
/// </summary>
/// <param name="Positions">I32 [1, T]: absolute position of each query row.</param>
/// <param name="Sequence">I32 [1, T]: row of BlockTables for each query row.</param>
/// <param name="BlockTables">I32 [S, MaxBlocksPerSequence]: block ids per sequence; unused entries are ignored.</param>
/// <param name="Heads">H: query heads (a multiple of Hkv).</param>
/// <param name="Scale">Logit scale, normally 1/sqrt(Dh).</param>
public readonly record struct AttentionBatch(TensorView Positions, TensorView Sequence, TensorView BlockTables, int Heads, float Scale);
