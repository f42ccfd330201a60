using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan;

/// <summary>
/// A stream on the device's compute queue. Ops are recorded into a command buffer and submitted once, at
/// <see cref="ComputeStream.Flush"/>, <see cref="ComputeStream.Synchronize"/> or a download; nothing waits per op. A
/// pipeline barrier is recorded only before an op that touches bytes an op since the last barrier wrote (or writes
/// bytes one read): <see cref="HazardTracker"/>. Descriptors are pushed (VK_KHR_push_descriptor) or allocated from
/// per-submission pools reset when the submission's fence signals. Uploads copy the caller's bytes into a per-
/// submission staging arena at call time and record vkCmdCopyBuffer. Timestamps are queries in a timestamp pool, read
/// when their submission's fence signals. Up to <see cref="MaxFramesInFlight"/> submissions run at once.
/// </summary>
internal sealed unsafe partial class VulkanStream : ComputeStream
{
    /// <summary>Submissions that may be in flight before recording waits for the oldest.</summary>
    public const int MaxFramesInFlight = 3;

    private const int TimestampCapacity = 512;
    private const int SetsPerPool = 256;

    private readonly VulkanAccelerator _device;
    private readonly Vk _vk;
    private readonly CommandPool _pool;
    private readonly List<Frame> _frames = [];
    private readonly Queue<Frame> _inFlight = new();
    private readonly Stack<Frame> _free = new();
    private readonly HazardTracker _tracker = new();
    private readonly Dictionary<int, ulong> _timestamps = [];
    private Frame? _current;
    private QueryPool _queries;
    private int _nextTimestamp;
    private int _unreadTimestamps;
    private VulkanBuffer? _readback;

    internal VulkanStream(VulkanAccelerator device, bool reproducible) : base(device, reproducible)
    {
        _device = device;
        _vk = device.Vk;
        var info = new CommandPoolCreateInfo
        {
            SType = StructureType.CommandPoolCreateInfo,
            QueueFamilyIndex = (uint)device.Facts.ComputeQueueFamily,
            Flags = CommandPoolCreateFlags.ResetCommandBufferBit,
        };
        CommandPool pool;
        device.Check(_vk.CreateCommandPool(device.Handle, &info, null, &pool), "create stream command pool");
        _pool = pool;
    }

    /// <summary>The device.</summary>
    internal VulkanAccelerator Accelerator => _device;

    /// <summary>Barriers recorded so far (tests check that independent ops get none).</summary>
    internal long Barriers => _tracker.Barriers;

    /// <summary>Dispatches recorded so far.</summary>
    internal long Dispatches { get; private set; }

    /// <summary>Submissions so far.</summary>
    internal long Submissions { get; private set; }

    /// <inheritdoc/>
    protected override void ThrowIfUnusable()
    {
        base.ThrowIfUnusable();
        _device.ThrowIfUnusable("stream");
    }

    // ---- Dispatch: the layer ops record through ----

    /// <summary>
    /// Records one dispatch of <paramref name="spec"/> specialized with <paramref name="constants"/> over
    /// <paramref name="ranges"/> (bindings 0..n-1) with the op's push constants <paramref name="push"/> (exactly
    /// <see cref="KernelSpec.PushBytes"/> bytes), as <paramref name="x"/>·<paramref name="y"/>·<paramref name="z"/> workgroups.
    /// </summary>
    internal void Dispatch<TPush>(KernelSpec spec, ReadOnlySpan<uint> constants, ReadOnlySpan<BufferRange> ranges, in TPush push, uint x, uint y = 1, uint z = 1)
        where TPush : unmanaged
    {
        if (sizeof(TPush) != spec.PushBytes)
            throw new InvalidOperationException($"{spec.Shader}: push constants are {sizeof(TPush)} bytes, the spec says {spec.PushBytes}");
        if (ranges.Length != spec.Bindings)
            throw new InvalidOperationException($"{spec.Shader}: {ranges.Length} bindings passed, the spec says {spec.Bindings}");
        if (x == 0 || y == 0 || z == 0) return;
        Kernel kernel = _device.Kernels.Get(spec, constants);
        Frame f = Begin();
        if (_tracker.Access(ranges)) _device.FullBarrier(f.Cmd);
        Written(ranges);
        _vk.CmdBindPipeline(f.Cmd, PipelineBindPoint.Compute, kernel.Pipeline);

        int n = ranges.Length;
        byte* pc = stackalloc byte[Math.Max(spec.TotalPushBytes, 4)];
        var infos = stackalloc DescriptorBufferInfo[Math.Max(n, 1)];
        for (int i = 0; i < n; i++)
        {
            Bind(spec.Shader, i, ranges[i], out infos[i], out uint wordOffset);
            ((uint*)pc)[i] = wordOffset;
        }
        TPush copy = push;
        System.Buffer.MemoryCopy(&copy, pc + 4 * n, spec.PushBytes, spec.PushBytes);

        var writes = stackalloc WriteDescriptorSet[Math.Max(n, 1)];
        for (int i = 0; i < n; i++)
            writes[i] = new WriteDescriptorSet
            {
                SType = StructureType.WriteDescriptorSet,
                DstBinding = (uint)i,
                DescriptorCount = 1,
                DescriptorType = DescriptorType.StorageBuffer,
                PBufferInfo = &infos[i],
            };
        if (kernel.PushDescriptors)
        {
            _device.PushDescriptorSet(f.Cmd, PipelineBindPoint.Compute, kernel.Layout, 0, (uint)n, writes);
        }
        else
        {
            DescriptorSet set = AllocateSet(f, kernel.SetLayout);
            for (int i = 0; i < n; i++) writes[i].DstSet = set;
            _vk.UpdateDescriptorSets(_device.Handle, (uint)n, writes, 0, null);
            _vk.CmdBindDescriptorSets(f.Cmd, PipelineBindPoint.Compute, kernel.Layout, 0, 1, &set, 0, null);
        }
        if (spec.TotalPushBytes > 0)
            _vk.CmdPushConstants(f.Cmd, kernel.Layout, ShaderStageFlags.ComputeBit, 0, (uint)spec.TotalPushBytes, pc);
        _vk.CmdDispatch(f.Cmd, x, y, z);
        f.Commands++;
        Dispatches++;
    }

    /// <summary>Splits <paramref name="groups"/> workgroups into an x·y grid within the guaranteed 65535 per dimension
    /// (shaders index groups as gl_WorkGroupID.y · gl_NumWorkGroups.x + gl_WorkGroupID.x and skip those past the end).</summary>
    internal static (uint X, uint Y) Grid(long groups)
    {
        const long max = 65535;
        if (groups <= max) return ((uint)Math.Max(groups, 1), 1);
        long y = (groups + max - 1) / max;
        long x = (groups + y - 1) / y;
        return ((uint)x, (uint)y);
    }

    private void Bind(string shader, int index, in BufferRange range, out DescriptorBufferInfo info, out uint wordOffset)
    {
        VulkanBuffer buffer = range.Buffer;
        buffer.ThrowIfDisposed();
        long maxRange = _device.MaxBindingBytes;
        if (range.Bytes == 0)
        {
            info = new DescriptorBufferInfo { Buffer = buffer.Handle, Offset = 0, Range = (ulong)Math.Min(buffer.AllocatedBytes, maxRange) };
            wordOffset = 0;
            return;
        }
        long alignment = Math.Max(4, (long)_device.Facts.Limits.MinStorageBufferOffsetAlignment);
        long aligned = range.Offset / alignment * alignment;
        long delta = range.Offset - aligned;
        if (delta % 4 != 0)
            throw new ArgumentException($"{shader}: binding {index} starts at byte {range.Offset}; the Vulkan backend binds views that start on a 4-byte boundary");
        long bytes = Math.Min((delta + range.Bytes + 3) & ~3L, buffer.AllocatedBytes - aligned);
        if (bytes > maxRange)
            throw new AcceleratorException(_device.Id, shader, 0,
                $"binding {index} spans {bytes} bytes, more than the device's maxStorageBufferRange ({maxRange}); the op must split it");
        info = new DescriptorBufferInfo { Buffer = buffer.Handle, Offset = (ulong)aligned, Range = (ulong)bytes };
        wordOffset = (uint)(delta / 4);
    }

    private DescriptorSet AllocateSet(Frame f, DescriptorSetLayout layout)
    {
        while (true)
        {
            if (f.PoolIndex == f.Pools.Count) f.Pools.Add(CreateDescriptorPool());
            DescriptorPool pool = f.Pools[f.PoolIndex];
            var info = new DescriptorSetAllocateInfo { SType = StructureType.DescriptorSetAllocateInfo, DescriptorPool = pool, DescriptorSetCount = 1, PSetLayouts = &layout };
            DescriptorSet set;
            Result r = _vk.AllocateDescriptorSets(_device.Handle, &info, &set);
            if (r == Result.Success) return set;
            if (r is not (Result.ErrorOutOfPoolMemory or Result.ErrorFragmentedPool))
                _device.Check(r, "allocate descriptor set");
            f.PoolIndex++;
        }
    }

    private DescriptorPool CreateDescriptorPool()
    {
        var size = new DescriptorPoolSize { Type = DescriptorType.StorageBuffer, DescriptorCount = SetsPerPool * 8 };
        var info = new DescriptorPoolCreateInfo { SType = StructureType.DescriptorPoolCreateInfo, MaxSets = SetsPerPool, PoolSizeCount = 1, PPoolSizes = &size };
        DescriptorPool pool;
        _device.Check(_vk.CreateDescriptorPool(_device.Handle, &info, null, &pool), "create descriptor pool");
        return pool;
    }

    /// <summary>Records a buffer-to-buffer copy, ordered with the ops around it (Copy's fallback, uploads).</summary>
    internal void RecordCopy(VulkanBuffer source, long sourceOffset, VulkanBuffer destination, long destinationOffset, long bytes, bool trackSource = true)
    {
        Frame f = Begin();
        var dst = new BufferRange(destination, destinationOffset, bytes, true);
        bool barrier = trackSource
            ? _tracker.Access([new BufferRange(source, sourceOffset, bytes, false), dst])
            : _tracker.Access([dst]);
        if (barrier) _device.FullBarrier(f.Cmd);
        Written([dst]);
        var region = new BufferCopy { SrcOffset = (ulong)sourceOffset, DstOffset = (ulong)destinationOffset, Size = (ulong)bytes };
        _vk.CmdCopyBuffer(f.Cmd, source.Handle, destination.Handle, 1, &region);
        f.Commands++;
    }

    // ---- Frames: command buffer, fence, descriptor pools, staging, timestamps of one submission ----

    private sealed class Frame
    {
        public CommandBuffer Cmd;
        public Fence Fence;
        public int Commands;
        public readonly List<DescriptorPool> Pools = [];
        public int PoolIndex;
        public readonly List<VulkanBuffer> Staging = [];
        public long StagingUsed;
        public readonly List<(int Query, int Id)> Timestamps = [];
    }

    private Frame Begin()
    {
        if (_current is not null) return _current;
        Frame f;
        if (_free.Count > 0) f = _free.Pop();
        else if (_inFlight.Count >= MaxFramesInFlight)
        {
            f = _inFlight.Dequeue();
            _device.Wait(f.Fence, "wait for an earlier submission");
            Recycle(f);
        }
        else
        {
            f = new Frame { Cmd = _device.AllocateCommandBuffer(_pool), Fence = _device.CreateFence() };
            _frames.Add(f);
        }
        var begin = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
        _device.Check(_vk.BeginCommandBuffer(f.Cmd, &begin), "begin command buffer");
        _current = f;
        return f;
    }

    private void Recycle(Frame f)
    {
        if (f.Timestamps.Count > 0)
        {
            foreach (var (query, id) in f.Timestamps)
            {
                ulong value;
                _device.Check(_vk.GetQueryPoolResults(_device.Handle, _queries, (uint)query, 1, sizeof(ulong), &value, sizeof(ulong),
                    QueryResultFlags.Result64Bit | QueryResultFlags.ResultWaitBit), "read timestamps");
                ulong mask = _device.Facts.TimestampValidBits >= 64 ? ulong.MaxValue : (1UL << (int)_device.Facts.TimestampValidBits) - 1;
                _timestamps[id] = value & mask;
            }
            _unreadTimestamps -= f.Timestamps.Count;
            f.Timestamps.Clear();
            // Keep the results of the latest timestamps only.
            if (_timestamps.Count > 4 * TimestampCapacity)
                foreach (int old in _timestamps.Keys.Where(k => k < _nextTimestamp - 2 * TimestampCapacity).ToList())
                    _timestamps.Remove(old);
        }
        for (int i = 0; i < Math.Min(f.PoolIndex + 1, f.Pools.Count); i++)
            _device.Check(_vk.ResetDescriptorPool(_device.Handle, f.Pools[i], 0), "reset descriptor pool");
        f.PoolIndex = 0;
        // Keep the largest staging chunk for the next submission.
        if (f.Staging.Count > 1)
        {
            VulkanBuffer keep = f.Staging.MaxBy(b => b.AllocatedBytes)!;
            foreach (VulkanBuffer b in f.Staging)
                if (!ReferenceEquals(b, keep)) b.Destroy();
            f.Staging.Clear();
            f.Staging.Add(keep);
        }
        f.StagingUsed = 0;
        f.Commands = 0;
        Fence fence = f.Fence;
        _device.Check(_vk.ResetFences(_device.Handle, 1, &fence), "reset fence");
        _device.Check(_vk.ResetCommandBuffer(f.Cmd, 0), "reset command buffer");
    }

    /// <summary>Room for <paramref name="bytes"/> in the current submission's staging arena (host-visible, mapped).</summary>
    private (VulkanBuffer Buffer, long Offset) Stage(Frame f, long bytes)
    {
        long aligned = (f.StagingUsed + 15) & ~15L;
        VulkanBuffer? last = f.Staging.Count > 0 ? f.Staging[^1] : null;
        if (last is null || aligned + bytes > last.AllocatedBytes)
        {
            long size = Math.Max(1L << 20, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)bytes));
            VulkanBuffer chunk = _device.CreateStaging(size, "upload staging");
            f.Staging.Add(chunk);
            aligned = 0;
            last = chunk;
        }
        f.StagingUsed = aligned + bytes;
        return (last, aligned);
    }

    /// <inheritdoc/>
    protected override void FlushCore()
    {
        ForgetQuantized();
        Frame? f = _current;
        if (f is null || f.Commands == 0) return;
        _device.FullBarrier(f.Cmd, toHost: true);
        _device.Check(_vk.EndCommandBuffer(f.Cmd), "end command buffer");
        _current = null;
        _device.Submit(f.Cmd, f.Fence, "submit");
        _inFlight.Enqueue(f);
        Submissions++;
    }

    /// <inheritdoc/>
    protected override void SynchronizeCore()
    {
        FlushCore();
        while (_inFlight.Count > 0)
        {
            Frame f = _inFlight.Peek();
            _device.Wait(f.Fence, "synchronize");
            _inFlight.Dequeue();
            Recycle(f);
            _free.Push(f);
        }
        _tracker.Reset();
        _device.Transfers.Trim(); // an idle point: staging left from a load is freed once its copies are done
        ReleaseRetiredScratch();
        // Whatever the validation layer said about this work fails this call, not a later one.
        _device.Validation?.ThrowIfAny(_device.Id, "synchronize");
    }

    /// <summary>The accelerator's host transfers: flush and wait (no validation check: that is the caller's call).</summary>
    internal void SynchronizeForHost()
    {
        if (IsDisposed) return;
        SynchronizeCore();
    }

    // ---- Host transfers ----

    /// <inheritdoc/>
    protected override void UploadCore(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        var dst = (VulkanBuffer)destination;
        Frame f = Begin();
        var (staging, at) = Stage(f, source.Length);
        source.CopyTo(new Span<byte>(staging.Mapped + at, source.Length));
        RecordCopy(staging, at, dst, offset, source.Length, trackSource: false);
    }

    /// <inheritdoc/>
    protected override void DownloadCore(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        var src = (VulkanBuffer)source;
        if (src.Mapped is not null || destination.Length == 0)
        {
            SynchronizeCore();
            if (destination.Length > 0)
                new ReadOnlySpan<byte>(src.Mapped + offset, destination.Length).CopyTo(destination);
            return;
        }
        if (_readback is null || _readback.AllocatedBytes < destination.Length)
        {
            SynchronizeCore(); // the old readback buffer may be in use
            _readback?.Destroy();
            _readback = null;
            _readback = _device.CreateStaging(Math.Max(1L << 20, (long)System.Numerics.BitOperations.RoundUpToPowerOf2((ulong)destination.Length)), "download staging");
        }
        RecordCopy(src, offset, _readback, 0, destination.Length);
        SynchronizeCore();
        new ReadOnlySpan<byte>(_readback.Mapped, destination.Length).CopyTo(destination);
    }

    // ---- Timestamps ----

    /// <inheritdoc/>
    protected override int RecordTimestampCore()
    {
        if (_device.Facts.TimestampValidBits == 0)
            throw new NotSupportedException($"{_device.Id}: the compute queue has no timestamps (timestampValidBits = 0)");
        if (_queries.Handle == 0)
        {
            var info = new QueryPoolCreateInfo { SType = StructureType.QueryPoolCreateInfo, QueryType = QueryType.Timestamp, QueryCount = TimestampCapacity };
            QueryPool pool;
            _device.Check(_vk.CreateQueryPool(_device.Handle, &info, null, &pool), "create timestamp pool");
            _queries = pool;
        }
        if (_unreadTimestamps >= TimestampCapacity) SynchronizeCore();
        Frame f = Begin();
        int id = _nextTimestamp++;
        int query = id % TimestampCapacity;
        _vk.CmdResetQueryPool(f.Cmd, _queries, (uint)query, 1);
        _vk.CmdWriteTimestamp(f.Cmd, PipelineStageFlags.BottomOfPipeBit, _queries, (uint)query);
        f.Timestamps.Add((query, id));
        f.Commands++;
        _unreadTimestamps++;
        return id;
    }

    /// <inheritdoc/>
    protected override TimeSpan ElapsedCore(int start, int end)
    {
        if (!_timestamps.TryGetValue(start, out ulong a) || !_timestamps.TryGetValue(end, out ulong b))
            throw new InvalidOperationException("Elapsed: the timestamps are not read yet; call Synchronize after recording both");
        double ns = ((long)b - (long)a) * (double)_device.Facts.Limits.TimestampPeriod;
        return TimeSpan.FromTicks((long)Math.Round(ns / 100.0));
    }

    // ---- Ops ----

    /// <inheritdoc/>
    protected override void EmbedCore(IDeviceWeight table, in TensorView tokenIds, in TensorView output, KernelVariant variant)
        => Ops.Embed.Record(this, (VulkanWeight)table, tokenIds, output, variant);

    /// <inheritdoc/>
    protected override void RmsNormCore(in TensorView x, in TensorView weight, in TensorView y, float eps, KernelVariant variant)
        => Ops.RmsNorm.Record(this, x, weight, y, eps, variant);

    /// <inheritdoc/>
    protected override void MatMulCore(in TensorView x, IDeviceWeight weight, in TensorView y, KernelVariant variant)
        => Ops.MatMul.Record(this, x, (VulkanWeight)weight, y, variant);

    /// <inheritdoc/>
    protected override void RopeCore(in TensorView x, in TensorView positions, in RopeConfig config, KernelVariant variant)
        => Ops.Rope.Record(this, x, positions, config, variant);

    /// <inheritdoc/>
    protected override void KvWriteCore(in TensorView k, in TensorView v, IKvCache cache, int layer, in TensorView slots, KernelVariant variant)
        => Ops.KvWrite.Record(this, k, v, (VulkanKvCache)cache, layer, slots, variant);

    /// <inheritdoc/>
    protected override void AttentionCore(in TensorView q, IKvCache cache, int layer, in AttentionBatch batch, in TensorView output, KernelVariant variant)
        => Ops.Attention.Record(this, q, (VulkanKvCache)cache, layer, batch, output, variant);

    /// <inheritdoc/>
    protected override void SwiGluCore(in TensorView gate, in TensorView up, in TensorView output, KernelVariant variant)
        => Ops.SwiGlu.Record(this, gate, up, output, variant);

    /// <inheritdoc/>
    protected override void AddCore(in TensorView a, in TensorView b, in TensorView output, KernelVariant variant)
        => Ops.Add.Record(this, a, b, output, variant);

    /// <inheritdoc/>
    protected override void CopyCore(in TensorView source, in TensorView destination, KernelVariant variant)
        => Ops.Copy.Record(this, source, destination, variant);

    /// <inheritdoc/>
    protected override void ArgmaxCore(in TensorView logits, in TensorView output, KernelVariant variant)
        => Ops.Argmax.Record(this, logits, output, variant);

    /// <inheritdoc/>
    protected override void GatherCore(in TensorView source, in TensorView rows, in TensorView output, KernelVariant variant)
        => Ops.Gather.Record(this, source, rows, output, variant);

    // ---- Lifetime ----

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        try
        {
            foreach (Frame f in _inFlight)
            {
                Fence fence = f.Fence;
                _ = _vk.WaitForFences(_device.Handle, 1, &fence, true, ulong.MaxValue);
            }
        }
        finally
        {
            _inFlight.Clear();
            foreach (Frame f in _frames)
            {
                _vk.DestroyFence(_device.Handle, f.Fence, null);
                foreach (DescriptorPool p in f.Pools) _vk.DestroyDescriptorPool(_device.Handle, p, null);
                foreach (VulkanBuffer b in f.Staging) b.Destroy();
            }
            _frames.Clear();
            DisposeScratch();
            _readback?.Destroy();
            if (_queries.Handle != 0) _vk.DestroyQueryPool(_device.Handle, _queries, null);
            _vk.DestroyCommandPool(_device.Handle, _pool, null);
            _device.Forget(this);
        }
    }
}
