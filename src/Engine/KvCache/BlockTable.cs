namespace Serving.Engine.KvCache;

/// <summary>
/// The KV blocks of one sequence, in position order: position p lives in slot
/// <c>this[p / blockSize] · blockSize + p % blockSize</c>. Filled and emptied only by <see cref="KvBlockManager"/>.
/// </summary>
public sealed class BlockTable
{
    private readonly int[] _blocks; // [MaxBlocks] block ids; the first Count are in use

    /// <summary>Creates an empty table that can hold up to <paramref name="maxBlocks"/> blocks (a sequence's context length in blocks).</summary>
    public BlockTable(int maxBlocks)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxBlocks);
        _blocks = new int[maxBlocks];
    }

    /// <summary>Blocks held.</summary>
    public int Count { get; private set; }

    /// <summary>Most blocks this table can hold.</summary>
    public int MaxBlocks => _blocks.Length;

    /// <summary>Block id at index <paramref name="index"/> (0 ≤ index &lt; Count).</summary>
    public int this[int index] => (uint)index < (uint)Count ? _blocks[index] : throw new ArgumentOutOfRangeException(nameof(index));

    /// <summary>The held block ids, in position order. Valid until the table changes.</summary>
    public ReadOnlySpan<int> Blocks => _blocks.AsSpan(0, Count);

    /// <summary>Leading blocks whose chain hash is known (matched from the cache or committed after compute).</summary>
    internal int HashedBlocks { get; set; }

    /// <summary>Chain hash of block HashedBlocks-1 (zero when none): the parent of the next full block's hash.</summary>
    internal UInt128 LastHash { get; set; }

    internal void Append(int block)
    {
        if (Count == _blocks.Length) throw new InvalidOperationException($"Block table is full ({_blocks.Length} blocks).");
        _blocks[Count++] = block;
    }

    internal int RemoveLast() => _blocks[--Count];

    internal void ResetHashes()
    {
        HashedBlocks = 0;
        LastHash = UInt128.Zero;
    }
}
