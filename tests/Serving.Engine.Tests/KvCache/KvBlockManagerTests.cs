using Serving.Engine.KvCache;

namespace Serving.Engine.Tests.KvCache;

public class KvBlockManagerTests
{
    private static int[] Tokens(int start, int count) => [.. Enumerable.Range(start, count)];

    /// <summary>A sequence that computed <paramref name="tokens"/>: reserve, then commit the full blocks.</summary>
    private static BlockTable Computed(KvBlockManager kv, int[] tokens)
    {
        var table = new BlockTable(16);
        Assert.True(kv.TryReserve(table, tokens.Length));
        kv.CommitFullBlocks(table, tokens);
        return table;
    }

    [Fact]
    public void Reserve_is_all_or_nothing_and_release_frees()
    {
        var kv = new KvBlockManager(blockCount: 4, blockSize: 4);
        var a = new BlockTable(8);
        Assert.True(kv.TryReserve(a, 9)); // 3 blocks
        Assert.Equal(3, a.Count);
        Assert.Equal(1, kv.FreeBlockCount);
        var b = new BlockTable(8);
        Assert.False(kv.TryReserve(b, 5)); // needs 2
        Assert.Equal(0, b.Count);
        Assert.Equal(1, kv.FreeBlockCount);
        Assert.Equal(0, kv.BlocksNeeded(a, 12));
        Assert.True(kv.TryReserve(a, 12)); // fits in what it has
        kv.Release(a);
        Assert.Equal(0, a.Count);
        Assert.Equal(4, kv.FreeBlockCount);
        Assert.Equal(0, kv.UsedBlockCount);
    }

    [Fact]
    public void Trim_frees_trailing_blocks_and_keeps_committed_ones()
    {
        // Speculative decoding's rollback: a sequence reserved room for drafts, then kept fewer tokens.
        var kv = new KvBlockManager(blockCount: 8, blockSize: 4);
        var table = new BlockTable(8);
        Assert.True(kv.TryReserve(table, 17)); // 5 blocks
        int[] tokens = Tokens(0, 8);
        kv.CommitFullBlocks(table, tokens);    // blocks 0 and 1 enter the prefix cache
        kv.Trim(table, 9);                     // 9 tokens need 3 blocks: 2 go back
        Assert.Equal(3, table.Count);
        Assert.Equal(5, kv.FreeBlockCount);
        kv.Trim(table, 12);                    // still 3: nothing changes
        Assert.Equal(3, table.Count);
        Assert.Throws<InvalidOperationException>(() => kv.Trim(table, 4)); // would cut a committed block
        kv.Release(table);
        Assert.Equal(0, kv.UsedBlockCount);
        // The committed prefix is still matched afterwards: trimming did not disturb the cache.
        var again = new BlockTable(8);
        Assert.Equal(8, kv.MatchPrefix(again, Tokens(0, 9)));
    }

    [Fact]
    public void Table_capacity_overflow_is_misuse()
    {
        var kv = new KvBlockManager(8, 4);
        Assert.Throws<ArgumentOutOfRangeException>(() => kv.TryReserve(new BlockTable(2), 9));
    }

    [Fact]
    public void Repeated_prefix_reuses_the_same_blocks()
    {
        var kv = new KvBlockManager(16, 4);
        int[] prompt = Tokens(100, 10);
        BlockTable first = Computed(kv, prompt);
        int[] firstBlocks = first.Blocks.ToArray();
        kv.Release(first);
        Assert.Equal(2, kv.CachedBlockCount); // the third block is partial: never cached

        var second = new BlockTable(16);
        Assert.Equal(8, kv.MatchPrefix(second, prompt.AsSpan(0, 9)));
        Assert.Equal(firstBlocks[..2], second.Blocks.ToArray());
        Assert.Equal(new KvCacheCounters(2, 0, 0, 8), kv.Counters);
        Assert.Equal(2, kv.UsedBlockCount);
    }

    [Fact]
    public void Shared_blocks_are_reference_counted()
    {
        var kv = new KvBlockManager(16, 4);
        int[] prompt = Tokens(0, 8);
        BlockTable owner = Computed(kv, prompt);
        var sharer = new BlockTable(16);
        Assert.Equal(4, kv.MatchPrefix(sharer, prompt.AsSpan(0, 7)));
        Assert.Equal(2, kv.ReferenceCount(sharer[0]));
        kv.Release(owner);
        Assert.Equal(1, kv.ReferenceCount(sharer[0]));
        Assert.Equal(1, kv.UsedBlockCount);
        kv.Release(sharer);
        Assert.Equal(0, kv.UsedBlockCount);
    }

    [Fact]
    public void Hash_chain_names_the_whole_prefix_not_just_the_block()
    {
        var kv = new KvBlockManager(16, 4);
        kv.Release(Computed(kv, [1, 2, 3, 4, 5, 6, 7, 8]));
        var other = new BlockTable(16);
        // Same second block, different first block: nothing matches.
        Assert.Equal(0, kv.MatchPrefix(other, [9, 2, 3, 4, 5, 6, 7, 8, 0]));
        Assert.Equal(2, kv.Counters.MissBlocks);
    }

    [Fact]
    public void Free_blocks_are_used_before_cached_ones_and_eviction_is_least_recently_released()
    {
        var kv = new KvBlockManager(6, 4);
        int[] p = Tokens(0, 8), q = Tokens(50, 8);
        kv.Release(Computed(kv, p)); // cached, released first
        kv.Release(Computed(kv, q)); // cached, released later
        Assert.Equal(4, kv.CachedBlockCount);

        var filler = new BlockTable(16);
        Assert.True(kv.TryReserve(filler, 8)); // the two never-cached blocks
        Assert.Equal(0, kv.Counters.Evictions);
        Assert.True(kv.TryReserve(filler, 12)); // one eviction: p's last block (released before p's first)
        Assert.Equal(1, kv.Counters.Evictions);

        var pAgain = new BlockTable(16);
        Assert.Equal(4, kv.MatchPrefix(pAgain, p));
        var qAgain = new BlockTable(16);
        Assert.Equal(8, kv.MatchPrefix(qAgain, [.. q, 0]));
    }

    [Fact]
    public void Identical_content_computed_twice_is_cached_once()
    {
        var kv = new KvBlockManager(8, 4);
        int[] prompt = Tokens(0, 8);
        BlockTable a = Computed(kv, prompt), b = Computed(kv, prompt);
        Assert.Equal(2, kv.CachedBlockCount);
        kv.Release(a);
        kv.Release(b);
        Assert.Equal(8, kv.FreeBlockCount);
        Assert.Equal(2, kv.CachedBlockCount);
    }

    [Fact]
    public void Disabled_prefix_caching_never_matches()
    {
        var kv = new KvBlockManager(8, 4, enablePrefixCaching: false);
        int[] prompt = Tokens(0, 8);
        kv.Release(Computed(kv, prompt));
        Assert.Equal(0, kv.CachedBlockCount);
        Assert.Equal(0, kv.MatchPrefix(new BlockTable(4), prompt));
    }

    [Fact]
    public void Releasing_an_empty_table_twice_is_harmless_and_bad_sizes_throw()
    {
        var kv = new KvBlockManager(2, 4);
        var t = new BlockTable(2);
        Assert.True(kv.TryReserve(t, 4));
        kv.Release(t);
        kv.Release(t);
        Assert.Equal(2, kv.FreeBlockCount);
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvBlockManager(0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvBlockManager(4, 0));
    }
}
