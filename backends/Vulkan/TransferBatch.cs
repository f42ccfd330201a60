using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan;

/// <summary>
/// Host-to-device transfers that do not wait: weights prepared on a device with its own memory, the accelerator's
/// Upload into device-only buffers, and the zero fill of new device-only buffers. The caller's bytes are copied into a
/// staging chunk at call time and a copy is recorded into the chunk's command buffer; a full chunk is submitted with
/// its fence and the next one is filled meanwhile, so loading a model overlaps the host's memcpy with the device's
/// copies and never waits per tensor. At most <see cref="MaxChunks"/> chunks exist: recording waits for the oldest
/// only when all are in flight. Whatever is recorded is submitted before any other submission on the queue
/// (<see cref="VulkanAccelerator.Submit"/> calls <see cref="SubmitPending"/>), and every batch ends with a barrier
/// from transfer writes to all later compute and transfer access, which queue submission order extends to later
/// submissions: a stream's ops see the finished transfers without a host wait. Chunks whose work has finished are
/// freed at the device's idle points (<see cref="Trim"/>), so staging memory does not outlive the load.
/// </summary>
internal sealed unsafe class TransferBatch : IDisposable
{
    /// <summary>Bytes of one staging chunk by default.</summary>
    public const long DefaultChunkBytes = 16L << 20;

    /// <summary>Chunks that may exist at once (recording or in flight).</summary>
    public const int MaxChunks = 4;

    private readonly VulkanAccelerator _device;
    private readonly Vk _vk;
    private readonly object _gate = new();
    private readonly CommandPool _pool;
    private readonly List<Chunk> _chunks = [];
    private readonly Queue<Chunk> _inFlight = new();
    private readonly Stack<Chunk> _idle = new();
    private readonly HashSet<VulkanBuffer> _written = [];
    private Chunk? _current;

    public TransferBatch(VulkanAccelerator device)
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
        device.Check(_vk.CreateCommandPool(device.Handle, &info, null, &pool), "create transfer command pool");
        _pool = pool;
    }

    /// <summary>Bytes of a staging chunk created from now on (tests make it small to exercise the ring).</summary>
    public long ChunkBytes { get; set; } = DefaultChunkBytes;

    /// <summary>Batches submitted so far.</summary>
    public long Submitted { get; private set; }

    /// <summary>Times recording waited for a chunk to come back because all were in flight.</summary>
    public long Waits { get; private set; }

    /// <summary>Chunks that exist now (tests check that staging is freed after a load).</summary>
    public int Chunks
    {
        get { lock (_gate) return _chunks.Count; }
    }

    /// <summary>Records a copy of <paramref name="bytes"/> host bytes at <paramref name="source"/> into
    /// <paramref name="destination"/> at <paramref name="offset"/>; the host bytes are read before this returns.</summary>
    public void Copy(VulkanBuffer destination, long offset, byte* source, long bytes, string operation)
    {
        lock (_gate)
        {
            OrderAfterEarlierWrites(destination);
            long done = 0;
            while (done < bytes)
            {
                Chunk c = Current(operation);
                c.Staging ??= _device.CreateStaging(ChunkBytes, "transfer staging");
                long at = (c.Used + 15) & ~15L;
                long room = c.Staging.AllocatedBytes - at;
                if (room <= 0)
                {
                    SubmitCurrent(operation);
                    continue;
                }
                long n = Math.Min(room, bytes - done);
                System.Buffer.MemoryCopy(source + done, c.Staging.Mapped + at, n, n);
                var region = new BufferCopy { SrcOffset = (ulong)at, DstOffset = (ulong)(offset + done), Size = (ulong)n };
                _vk.CmdCopyBuffer(c.Cmd, c.Staging.Handle, destination.Handle, 1, &region);
                c.Used = at + n;
                c.Commands++;
                done += n;
            }
        }
    }

    /// <summary>Records a zero fill of the whole of <paramref name="destination"/>.</summary>
    public void Fill(VulkanBuffer destination, string operation)
    {
        lock (_gate)
        {
            OrderAfterEarlierWrites(destination);
            Chunk c = Current(operation);
            _vk.CmdFillBuffer(c.Cmd, destination.Handle, 0, Vk.WholeSize, 0);
            c.Commands++;
        }
    }

    /// <summary>Submits what is recorded, without waiting (called before every other submission on the queue).</summary>
    public void SubmitPending()
    {
        lock (_gate) SubmitCurrent("submit transfers");
    }

    /// <summary>Frees the chunks whose work has finished when nothing is being recorded (an idle point: the load is over).</summary>
    public void Trim()
    {
        lock (_gate)
        {
            if (_current is not null) return;
            while (_inFlight.Count > 0 && _vk.GetFenceStatus(_device.Handle, _inFlight.Peek().Fence) == Result.Success)
                _idle.Push(Recycle(_inFlight.Dequeue()));
            while (_idle.Count > 0) Destroy(_idle.Pop());
        }
    }

    /// <summary>Two transfer writes to one buffer in one batch are ordered by a barrier (a zero fill, then an upload).</summary>
    private void OrderAfterEarlierWrites(VulkanBuffer destination)
    {
        if (_current is null || _written.Add(destination)) return;
        _device.FullBarrier(_current.Cmd);
        _written.Clear();
        _written.Add(destination);
    }

    private Chunk Current(string operation)
    {
        if (_current is not null) return _current;
        Chunk c;
        if (_idle.Count > 0) c = _idle.Pop();
        else if (_chunks.Count < MaxChunks)
        {
            c = new Chunk { Cmd = _device.AllocateCommandBuffer(_pool), Fence = _device.CreateFence() };
            _chunks.Add(c);
        }
        else
        {
            c = _inFlight.Dequeue();
            Waits++;
            _device.Wait(c.Fence, operation);
            Recycle(c);
        }
        var begin = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
        _device.Check(_vk.BeginCommandBuffer(c.Cmd, &begin), operation);
        _current = c;
        return c;
    }

    private void SubmitCurrent(string operation)
    {
        Chunk? c = _current;
        if (c is null) return;
        _current = null;
        _written.Clear();
        if (c.Commands == 0)
        {
            _device.Check(_vk.EndCommandBuffer(c.Cmd), operation);
            _idle.Push(Recycle(c));
            return;
        }
        _device.FullBarrier(c.Cmd);
        _device.Check(_vk.EndCommandBuffer(c.Cmd), operation);
        _device.SubmitAlone(c.Cmd, c.Fence, operation);
        _inFlight.Enqueue(c);
        Submitted++;
    }

    private Chunk Recycle(Chunk c)
    {
        Fence fence = c.Fence;
        if (c.Commands > 0) _device.Check(_vk.ResetFences(_device.Handle, 1, &fence), "reset transfer fence");
        _device.Check(_vk.ResetCommandBuffer(c.Cmd, 0), "reset transfer command buffer");
        c.Used = 0;
        c.Commands = 0;
        return c;
    }

    private void Destroy(Chunk c)
    {
        c.Staging?.Destroy();
        _vk.DestroyFence(_device.Handle, c.Fence, null);
        CommandBuffer cmd = c.Cmd;
        _vk.FreeCommandBuffers(_device.Handle, _pool, 1, &cmd);
        _chunks.Remove(c);
    }

    /// <summary>Destroys everything (the device has waited for the queue to go idle).</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            foreach (Chunk c in _chunks)
            {
                c.Staging?.Destroy();
                _vk.DestroyFence(_device.Handle, c.Fence, null);
            }
            _chunks.Clear();
            _inFlight.Clear();
            _idle.Clear();
            _current = null;
            _vk.DestroyCommandPool(_device.Handle, _pool, null);
        }
    }

    private sealed class Chunk
    {
        public CommandBuffer Cmd;
        public Fence Fence;
        public VulkanBuffer? Staging;
        public long Used;
        public int Commands;
    }
}
