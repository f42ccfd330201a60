namespace Serving.Engine.KvCache;

/// <summary>Cumulative prefix-cache counters of a <see cref="KvBlockManager"/>.</summary>
/// <param name="HitBlocks">Full prompt blocks found in the cache by <see cref="KvBlockManager.MatchPrefix"/> (one count per lookup).</param>
/// <param name="MissBlocks">Full blocks looked up and not found (they are computed instead).</param>
/// <param name="Evictions">Cached blocks whose content was dropped to make room for a new allocation.</param>
/// <param name="ReusedTokens">Tokens covered by hit blocks: prefill work not redone.</param>
public readonly record struct KvCacheCounters(long HitBlocks, long MissBlocks, long Evictions, long ReusedTokens);
