using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Serving.Engine.KvCache;

/// <summary>
/// Hands out the blocks of a paged KV cache (ids 0..BlockCount-1) with reference counts, and caches full blocks
/// by content so a repeated prompt prefix (a system prompt) is not recomputed.
/// <para>
/// Prefix caching: a full block is named by a chain hash, SHA-256 (truncated to 128 bits) of its parent's chain
/// hash and its token ids, so one hash names the whole prefix up to and including that block. A block is entered
/// in the cache only after its KV has been computed (<see cref="CommitFullBlocks"/>). When its last reference goes
/// away it keeps its content and waits in an LRU list; a later allocation takes never-cached free blocks first,
/// then evicts the least recently released cached block. Shared blocks are always full and never written again,
/// so no copy-on-write is needed.
/// </para>
/// Not thread-safe: one owner (the scheduler loop) drives it. Expected shortages are values (false), misuse throws.
/// </summary>
public sealed class KvBlockManager
{
    private const int None = -1;

    private readonly int[] _refCount;        // [BlockCount]
    private readonly bool[] _cached;         // [BlockCount] entered in _byHash
    private readonly UInt128[] _hash;        // [BlockCount] chain hash when _cached
    private readonly int[] _lruPrev, _lruNext; // [BlockCount] intrusive LRU list of cached blocks with refcount 0
    private readonly int[] _freeStack;       // [BlockCount] uncached blocks with refcount 0
    private readonly Dictionary<UInt128, int> _byHash = new();
    private readonly byte[] _hashInput;      // [16 + BlockSize·4] parent hash ‖ token ids (little endian)
    private int _freeCount, _lruHead = None, _lruTail = None, _lruCount;
    private long _hits, _misses, _evictions, _reusedTokens;

    /// <summary>Creates a manager for <paramref name="blockCount"/> blocks of <paramref name="blockSize"/> token slots.</summary>
    public KvBlockManager(int blockCount, int blockSize, bool enablePrefixCaching = true)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockCount);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(blockSize);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(blockSize, 1 << 20);
        BlockCount = blockCount;
        BlockSize = blockSize;
        PrefixCachingEnabled = enablePrefixCaching;
        _refCount = new int[blockCount];
        _cached = new bool[blockCount];
        _hash = new UInt128[blockCount];
        _lruPrev = new int[blockCount];
        _lruNext = new int[blockCount];
        _freeStack = new int[blockCount];
        // Pushed in reverse so block 0 is handed out first (easier to read in tests and dumps).
        for (int b = blockCount - 1; b >= 0; b--) _freeStack[_freeCount++] = b;
        _hashInput = new byte[16 + blockSize * sizeof(int)];
    }

    /// <summary>Blocks in the cache.</summary>
    public int BlockCount { get; }

    /// <summary>Token slots per block.</summary>
    public int BlockSize { get; }

    /// <summary>Whether full blocks are cached and matched by content.</summary>
    public bool PrefixCachingEnabled { get; }

    /// <summary>Blocks an allocation can take now: never-cached free blocks plus evictable cached ones.</summary>
    public int FreeBlockCount => _freeCount + _lruCount;

    /// <summary>Blocks referenced by at least one sequence.</summary>
    public int UsedBlockCount => BlockCount - FreeBlockCount;

    /// <summary>Blocks whose content is in the prefix cache (referenced or waiting for eviction).</summary>
    public int CachedBlockCount => _byHash.Count;

    /// <summary>Cumulative hit/miss/eviction counters.</summary>
    public KvCacheCounters Counters => new(_hits, _misses, _evictions, _reusedTokens);

    /// <summary>Extra blocks <paramref name="table"/> needs to hold <paramref name="tokenCount"/> tokens in all (0 if it already can).</summary>
    public int BlocksNeeded(BlockTable table, int tokenCount)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        int blocks = (int)(((long)tokenCount + BlockSize - 1) / BlockSize);
        return Math.Max(0, blocks - table.Count);
    }

    /// <summary>
    /// Grows <paramref name="table"/> so it holds <paramref name="tokenCount"/> tokens in all. All or nothing:
    /// false (and no change) when not enough blocks are free. Throws when the table's own capacity is exceeded.
    /// </summary>
    public bool TryReserve(BlockTable table, int tokenCount)
    {
        int need = BlocksNeeded(table, tokenCount);
        if (need == 0) return true;
        if (table.Count + need > table.MaxBlocks)
            throw new ArgumentOutOfRangeException(nameof(tokenCount), $"{tokenCount} tokens need {table.Count + need} blocks; the table holds at most {table.MaxBlocks}.");
        if (need > FreeBlockCount) return false;
        for (int i = 0; i < need; i++) table.Append(TakeFreeBlock());
        return true;
    }

    /// <summary>
    /// For an empty <paramref name="table"/>, finds the longest run of leading full blocks of
    /// <paramref name="tokens"/> that are in the cache and appends them (shared, reference counted). Returns the
    /// tokens covered (a multiple of BlockSize). Pass at most all-but-one prompt token: the last one must be
    /// computed to get logits.
    /// </summary>
    public int MatchPrefix(BlockTable table, ReadOnlySpan<int> tokens)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (table.Count != 0) throw new InvalidOperationException("MatchPrefix needs an empty block table.");
        table.ResetHashes();
        if (!PrefixCachingEnabled) return 0;

        int fullBlocks = Math.Min(tokens.Length / BlockSize, table.MaxBlocks);
        UInt128 parent = UInt128.Zero;
        int matched = 0;
        for (; matched < fullBlocks; matched++)
        {
            UInt128 h = ChainHash(parent, tokens.Slice(matched * BlockSize, BlockSize));
            if (!_byHash.TryGetValue(h, out int block)) break;
            if (_refCount[block] == 0) LruRemove(block);
            _refCount[block]++;
            table.Append(block);
            parent = h;
        }
        table.HashedBlocks = matched;
        table.LastHash = parent;
        _hits += matched;
        _misses += fullBlocks - matched;
        _reusedTokens += (long)matched * BlockSize;
        return matched * BlockSize;
    }

    /// <summary>
    /// Enters into the cache every full block of <paramref name="table"/> covered by
    /// <paramref name="computedTokens"/> (the sequence's tokens whose KV is now written, from position 0) that is
    /// not in it yet. When identical content is already cached under another block, that entry is kept and this
    /// block stays private (it is freed normally).
    /// </summary>
    public void CommitFullBlocks(BlockTable table, ReadOnlySpan<int> computedTokens)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (!PrefixCachingEnabled) return;
        int fullBlocks = Math.Min(computedTokens.Length / BlockSize, table.Count);
        UInt128 parent = table.LastHash;
        for (int b = table.HashedBlocks; b < fullBlocks; b++)
        {
            UInt128 h = ChainHash(parent, computedTokens.Slice(b * BlockSize, BlockSize));
            int block = table[b];
            if (!_cached[block] && _byHash.TryAdd(h, block))
            {
                _cached[block] = true;
                _hash[block] = h;
            }
            parent = h;
            table.HashedBlocks = b + 1;
            table.LastHash = h;
        }
    }

    /// <summary>
    /// Drops the table's references (the table ends empty). Blocks nobody else uses become free; cached ones keep
    /// their content until evicted. Released last block first, so a prefix's first blocks are evicted last.
    /// </summary>
    public void Release(BlockTable table)
    {
        ArgumentNullException.ThrowIfNull(table);
        while (table.Count > 0)
        {
            int block = table.RemoveLast();
            if (_refCount[block] <= 0) throw new InvalidOperationException($"KV block {block} released more often than referenced.");
            if (--_refCount[block] > 0) continue;
            if (_cached[block]) LruAppend(block);
            else _freeStack[_freeCount++] = block;
        }
        table.ResetHashes();
    }

    /// <summary>
    /// Shrinks <paramref name="table"/> to the blocks <paramref name="tokenCount"/> tokens need, dropping its references
    /// to the blocks after them (last first, as <see cref="Release"/> does). Speculative decoding rolls back this way:
    /// the KV of rejected draft tokens is past the sequence's valid length, and whole blocks holding only such KV go
    /// back to the free list. Throws when it would cut a block already entered in the prefix cache for this table.
    /// </summary>
    public void Trim(BlockTable table, int tokenCount)
    {
        ArgumentNullException.ThrowIfNull(table);
        ArgumentOutOfRangeException.ThrowIfNegative(tokenCount);
        int keep = (int)(((long)tokenCount + BlockSize - 1) / BlockSize);
        if (keep < table.HashedBlocks)
            throw new InvalidOperationException($"Trimming to {tokenCount} tokens would cut {table.HashedBlocks - keep} blocks committed to the prefix cache.");
        while (table.Count > keep)
        {
            int block = table.RemoveLast();
            if (_refCount[block] <= 0) throw new InvalidOperationException($"KV block {block} released more often than referenced.");
            if (--_refCount[block] > 0) continue;
            if (_cached[block]) LruAppend(block);
            else _freeStack[_freeCount++] = block;
        }
    }

    /// <summary>
    /// The block the (<paramref name="depth"/> + 1)-th allocation from now would take: a never-cached free block first,
    /// then the least recently released cached block (which it would evict); −1 when none would be left. Changes
    /// nothing: the scheduler plans the next step with it while the current one runs, and makes the real reservations
    /// (<see cref="TryReserve"/>) once the step's outcome confirms the plan.
    /// </summary>
    public int PeekFreeBlock(int depth)
    {
        if (depth < 0 || depth >= FreeBlockCount) return None;
        if (depth < _freeCount) return _freeStack[_freeCount - 1 - depth];
        int block = _lruHead;
        for (int i = _freeCount; i < depth; i++) block = _lruNext[block];
        return block;
    }

    /// <summary>Reference count of <paramref name="block"/> (for diagnostics and tests).</summary>
    public int ReferenceCount(int block) => _refCount[block];

    private int TakeFreeBlock()
    {
        int block;
        if (_freeCount > 0) block = _freeStack[--_freeCount];
        else
        {
            block = _lruHead;
            LruRemove(block);
            _byHash.Remove(_hash[block]);
            _cached[block] = false;
            _evictions++;
        }
        _refCount[block] = 1;
        return block;
    }

    private UInt128 ChainHash(UInt128 parent, ReadOnlySpan<int> blockTokens)
    {
        Span<byte> input = _hashInput;
        BinaryPrimitives.WriteUInt64LittleEndian(input, (ulong)parent);
        BinaryPrimitives.WriteUInt64LittleEndian(input[8..], (ulong)(parent >> 64));
        for (int i = 0; i < blockTokens.Length; i++)
            BinaryPrimitives.WriteInt32LittleEndian(input[(16 + i * sizeof(int))..], blockTokens[i]);
        Span<byte> digest = stackalloc byte[32];
        SHA256.HashData(input, digest);
        // Never zero: zero is the "no parent" value of the first block.
        UInt128 h = new(BinaryPrimitives.ReadUInt64LittleEndian(digest[8..]), BinaryPrimitives.ReadUInt64LittleEndian(digest));
        return h == UInt128.Zero ? UInt128.One : h;
    }

    private void LruAppend(int block)
    {
        _lruPrev[block] = _lruTail;
        _lruNext[block] = None;
        if (_lruTail != None) _lruNext[_lruTail] = block; else _lruHead = block;
        _lruTail = block;
        _lruCount++;
    }

    private void LruRemove(int block)
    {
        int prev = _lruPrev[block], next = _lruNext[block];
        if (prev != None) _lruNext[prev] = next; else _lruHead = next;
        if (next != None) _lruPrev[next] = prev; else _lruTail = prev;
        _lruCount--;
    }
}
