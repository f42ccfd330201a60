using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan;

/// <summary>
/// The stream's scratch memory for intermediate results that are not the caller's tensors (x quantized to int8 for
/// MatMul): one device buffer used as a ring. A region handed out is written and read by ops recorded after it; when
/// the ring wraps, the hazard tracker sees the new write over bytes an earlier op read and records the barrier. A ring
/// too small for a request is replaced by a larger one; the old one is kept until the stream has synchronized.
/// </summary>
internal sealed partial class VulkanStream
{
    private const long ScratchAlignment = 256;
    private const long MinScratchBytes = 4L << 20;

    private VulkanBuffer? _scratch;
    private long _scratchHead;
    private readonly List<VulkanBuffer> _retiredScratch = [];
    private readonly List<(BufferRange Source, BufferRange Result)> _quantized = [];

    /// <summary><paramref name="bytes"/> of scratch (a write range) for ops recorded from now on.</summary>
    internal BufferRange Scratch(long bytes)
    {
        bytes = Math.Max(ScratchAlignment, (bytes + ScratchAlignment - 1) / ScratchAlignment * ScratchAlignment);
        if (_scratch is null || bytes > _scratch.AllocatedBytes)
        {
            if (_scratch is not null) _retiredScratch.Add(_scratch);
            long size = Math.Max(MinScratchBytes, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)(2 * bytes)));
            _scratch = _device.CreateBuffer(size, "stream scratch (int8 activations)");
            _scratchHead = 0;
            _quantized.Clear();
        }
        if (_scratchHead + bytes > _scratch.AllocatedBytes) _scratchHead = 0;
        var range = new BufferRange(_scratch, _scratchHead, bytes, true);
        _scratchHead += bytes;
        // Results whose bytes this region reuses are gone.
        _quantized.RemoveAll(q => q.Result.Overlaps(range));
        return range;
    }

    /// <summary>x quantized earlier in this submission from exactly <paramref name="source"/>, not written since; else null.</summary>
    internal BufferRange? FindQuantized(in BufferRange source)
    {
        foreach (var (s, result) in _quantized)
            if (ReferenceEquals(s.Buffer, source.Buffer) && s.Offset == source.Offset && s.Bytes == source.Bytes)
                return result;
        return null;
    }

    /// <summary>Remembers that <paramref name="result"/> holds <paramref name="source"/> quantized.</summary>
    internal void RememberQuantized(in BufferRange source, in BufferRange result) => _quantized.Add((source, result));

    /// <summary>Called for every range an op writes: quantized copies of those bytes are stale.</summary>
    private void Written(ReadOnlySpan<BufferRange> ranges)
    {
        if (_quantized.Count == 0) return;
        foreach (BufferRange r in ranges)
            if (r.Writes)
            {
                BufferRange written = r;
                _quantized.RemoveAll(q => q.Source.Overlaps(written));
            }
    }

    /// <summary>At a submission: other streams and the host may write memory from now on, so nothing is reused.</summary>
    private void ForgetQuantized() => _quantized.Clear();

    /// <summary>After a synchronize: replaced rings are no longer in use.</summary>
    private void ReleaseRetiredScratch()
    {
        foreach (VulkanBuffer b in _retiredScratch) b.Dispose();
        _retiredScratch.Clear();
    }

    private void DisposeScratch()
    {
        ReleaseRetiredScratch();
        _scratch?.Dispose();
        _scratch = null;
    }
}
