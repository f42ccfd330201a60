namespace Serving.Abstractions;

/// <summary>
/// What the engine asks for when it creates a paged KV cache (<see cref="IAccelerator.CreateKvCache"/>): per layer,
/// <see cref="Blocks"/> pages of <see cref="BlockSize"/> token slots, each slot holding one k row and one v row of
/// <see cref="KvHeads"/>·<see cref="HeadDim"/> elements. Slot s = block · BlockSize + offset in block.
/// </summary>
/// <param name="Layers">Transformer layers.</param>
/// <param name="Blocks">Blocks (pages) per layer.</param>
/// <param name="BlockSize">Token slots per block.</param>
/// <param name="KvHeads">Hkv.</param>
/// <param name="HeadDim">Dh.</param>
/// <param name="PreferredType">F16 (the default: half the bytes attention reads) or F32. A device that cannot store
/// the preferred type picks the other one; <see cref="IKvCache.Layout"/> says which it chose.</param>
public readonly record struct KvCacheSpec(int Layers, int Blocks, int BlockSize, int KvHeads, int HeadDim, DataType PreferredType = DataType.F16)
{
    /// <summary>Elements per cached row (Hkv·Dh).</summary>
    public int RowElements => KvHeads * HeadDim;

    /// <summary>Slots per layer (Blocks · BlockSize).</summary>
    public long SlotsPerLayer => (long)Blocks * BlockSize;

    /// <summary>Bytes of K plus V for all layers when stored as <paramref name="type"/>.</summary>
    public long Bytes(DataType type) => 2 * type.RowBytes(RowElements) * SlotsPerLayer * Layers;

    /// <summary>Throws <see cref="ArgumentException"/> unless every dimension is positive, the type is F16 or F32 and the size fits a long.</summary>
    public void Validate()
    {
        if (Layers <= 0 || Blocks <= 0 || BlockSize <= 0 || KvHeads <= 0 || HeadDim <= 0)
            throw new ArgumentOutOfRangeException(nameof(Layers), $"CreateKvCache: every dimension must be > 0, got {this}");
        if (PreferredType is not (DataType.F16 or DataType.F32))
            throw new ArgumentException($"CreateKvCache: the cache type must be f16 or f32, got {PreferredType.Name()}", nameof(PreferredType));
        try
        {
            _ = checked(2 * DataType.F32.RowBytes(checked(KvHeads * HeadDim)) * SlotsPerLayer * Layers);
        }
        catch (OverflowException)
        {
            throw new ArgumentOutOfRangeException(nameof(Blocks), $"CreateKvCache: {this} is too large");
        }
    }
}

/// <summary>
/// The layout a backend chose for a KV cache: the spec's dimensions and the element type it stores. How the rows are
/// placed in memory is the backend's own; ops see the cache only through <see cref="IComputeStream.KvWrite"/> and
/// <see cref="IComputeStream.Attention"/>.
/// </summary>
/// <param name="Layers">Transformer layers.</param>
/// <param name="Blocks">Blocks per layer.</param>
/// <param name="BlockSize">Slots per block.</param>
/// <param name="KvHeads">Hkv.</param>
/// <param name="HeadDim">Dh.</param>
/// <param name="Type">F16 or F32: what a cached element is rounded to.</param>
public readonly record struct KvCacheLayout(int Layers, int Blocks, int BlockSize, int KvHeads, int HeadDim, DataType Type)
{
    /// <summary>Elements per cached row (Hkv·Dh).</summary>
    public int RowElements => KvHeads * HeadDim;

    /// <summary>Slots per layer (Blocks · BlockSize).</summary>
    public long SlotsPerLayer => (long)Blocks * BlockSize;

    /// <summary>Bytes of K plus V for all layers.</summary>
    public long Bytes => 2 * Type.RowBytes(RowElements) * SlotsPerLayer * Layers;
}

/// <summary>
/// A paged KV cache in device memory, created by <see cref="IAccelerator.CreateKvCache"/> (zero-filled) and disposed by
/// its creator. Disposing twice is harmless; using a disposed cache throws <see cref="ObjectDisposedException"/>.
/// </summary>
public interface IKvCache : IDisposable
{
    /// <summary>The device that owns it.</summary>
    IAccelerator Device { get; }

    /// <summary>Its dimensions and element type.</summary>
    KvCacheLayout Layout { get; }

    /// <summary>True once disposed.</summary>
    bool IsDisposed { get; }
}

/// <summary>
/// Which cached keys each query row of an <see cref="IComputeStream.Attention"/> step sees, plus facts the host knows
/// so a GPU can size its launch without reading anything back. For query row t: its sequence is row Sequence[t] of
/// BlockTables, and it attends to that sequence's positions 0..Positions[t] inclusive (causal), position p living in
/// slot BlockTables[seq, p / BlockSize] · BlockSize + p % BlockSize.
/// </summary>
/// <param name="Positions">I32 [1, T]: absolute position of each query row.</param>
/// <param name="Sequence">I32 [1, T]: row of BlockTables for each query row.</param>
/// <param name="BlockTables">I32 [S, MaxBlocksPerSequence]: block ids per sequence; unused entries are ignored.</param>
/// <param name="Heads">H: query heads (a multiple of Hkv).</param>
/// <param name="Scale">Logit scale, normally 1/sqrt(Dh).</param>
/// <param name="MaxPosition">The largest value in Positions (host fact; the front end checks it against the block table
/// width, the engine guarantees it matches the data). Backends size scratch and workgroups from it.</param>
/// <param name="ContiguousSequences">True when each sequence's query rows are adjacent in the step and in increasing
/// position order (the engine's batches always are): a backend may then process a sequence's rows together.</param>
public readonly record struct AttentionBatch(
    TensorView Positions, TensorView Sequence, TensorView BlockTables, int Heads, float Scale, int MaxPosition, bool ContiguousSequences);
