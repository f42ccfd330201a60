using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;
using Serving.Backends.Vulkan.Ops;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan;

/// <summary>
/// One opened Vulkan device: a VkDevice with one compute queue, every optional feature it has enabled (each with a
/// fallback), buffers in unified memory (integrated GPUs, lavapipe: device-local and host-visible, written in place)
/// or device-local memory with staging copies that do not wait (discrete GPUs: <see cref="TransferBatch"/>), prepared
/// weights (read in place from a mapped file where the device imports host memory: <see cref="Vulkan.HostImports"/>),
/// KV caches, streams and the kernel cache. Thread-safe for allocation, preparation and queries. Out of memory, a failed submit and a lost device are
/// <see cref="AcceleratorException"/>s; with validation on, every message of the Khronos layer becomes one, thrown from
/// the next call.
/// </summary>
internal sealed unsafe partial class VulkanAccelerator : IAccelerator
{
    /// <summary>Set to 1 to use pooled descriptor sets even where VK_KHR_push_descriptor exists (tests the fallback).</summary>
    public const string NoPushDescriptorsVariable = "SERVING_VULKAN_NO_PUSH_DESCRIPTORS";

    /// <summary>Set to 1 to treat a unified-memory device like a discrete GPU: buffers unmapped, every host transfer
    /// through staging (tests the discrete path on lavapipe).</summary>
    public const string ForceStagingVariable = "SERVING_VULKAN_FORCE_STAGING";

    private readonly VulkanInstance _instance;
    private readonly object _gate = new();
    private readonly object _queueGate = new();
    private readonly HashSet<VulkanBuffer> _buffers = [];
    private readonly HashSet<VulkanStream> _streams = [];
    private readonly CommandPool _immediatePool;
    private readonly CommandBuffer _immediate;
    private readonly Fence _immediateFence;
    private readonly delegate* unmanaged<CommandBuffer, PipelineBindPoint, PipelineLayout, uint, uint, WriteDescriptorSet*, void> _pushDescriptorSet;
    private readonly TransferBatch _transfers;
    private readonly HostImports? _imports;
    private long _allocatedBytes;
    private volatile bool _lost;
    private bool _disposed;

    private VulkanAccelerator(VulkanInstance instance, DeviceFacts facts, DeviceDescriptor descriptor, Device device, Queue queue, DeviceOptions options, bool pushDescriptors, bool forceStaging)
    {
        _instance = instance;
        Facts = facts;
        Descriptor = descriptor;
        Handle = device;
        Queue = queue;
        Options = options;
        MaxBindingBytes = facts.Limits.MaxStorageBufferRange;
        EnergyMeter = HwmonEnergyMeter.TryOpen("/sys", facts.PciAddress);
        Unified = facts.UnifiedMemory && !forceStaging && Environment.GetEnvironmentVariable(ForceStagingVariable) != "1";
        if (pushDescriptors)
            _pushDescriptorSet = (delegate* unmanaged<CommandBuffer, PipelineBindPoint, PipelineLayout, uint, uint, WriteDescriptorSet*, void>)
                Vk.GetDeviceProcAddr(device, "vkCmdPushDescriptorSetKHR").Handle;
        Kernels = new KernelCache(this, _pushDescriptorSet is not null);
        var poolInfo = new CommandPoolCreateInfo
        {
            SType = StructureType.CommandPoolCreateInfo,
            QueueFamilyIndex = (uint)facts.ComputeQueueFamily,
            Flags = CommandPoolCreateFlags.ResetCommandBufferBit,
        };
        CommandPool pool;
        Check(Vk.CreateCommandPool(device, &poolInfo, null, &pool), "create command pool");
        _immediatePool = pool;
        _immediate = AllocateCommandBuffer(pool);
        _immediateFence = CreateFence();
        _transfers = new TransferBatch(this);
        _imports = HostImports.TryCreate(this, out string why);
        HostImportStatus = _imports is null ? $"weights copied: {why}" : "weights read in place from mapped files (host memory import)";
        HostImportEnabled = _imports is not null;
    }

    /// <summary>The API.</summary>
    internal Vk Vk => _instance.Vk;

    /// <summary>The device.</summary>
    internal Device Handle { get; }

    /// <summary>The compute queue (submit under <see cref="Submit"/>).</summary>
    internal Queue Queue { get; }

    /// <summary>What the device offers.</summary>
    internal DeviceFacts Facts { get; }

    /// <summary>How it was opened.</summary>
    internal DeviceOptions Options { get; }

    /// <summary>True when buffers live in device-local host-visible memory (no staging).</summary>
    internal bool Unified { get; }

    /// <summary>The most bytes one storage-buffer binding may span (maxStorageBufferRange; tests lower it to exercise
    /// the ops that split large buffers into windows).</summary>
    internal long MaxBindingBytes { get; set; }

    /// <summary>The pipelines.</summary>
    internal KernelCache Kernels { get; }

    /// <summary>The transfers that do not wait (staging uploads, fills of device-only buffers).</summary>
    internal TransferBatch Transfers => _transfers;

    /// <summary>The host-memory importer, or null where weights are always copied.</summary>
    internal HostImports? HostImports => _imports;

    /// <summary>Whether PrepareWeight imports persistent sources (tests turn it off to compare with the copy path).</summary>
    internal bool HostImportEnabled { get; set; }

    /// <summary>Why weights are or are not read in place on this device (a sentence).</summary>
    internal string HostImportStatus { get; }

    /// <summary>vkCmdPushDescriptorSetKHR, or null when descriptor sets come from pools.</summary>
    internal delegate* unmanaged<CommandBuffer, PipelineBindPoint, PipelineLayout, uint, uint, WriteDescriptorSet*, void> PushDescriptorSet => _pushDescriptorSet;

    /// <summary>"vulkan:N".</summary>
    internal string Id => Descriptor.Id;

    /// <inheritdoc/>
    public DeviceDescriptor Descriptor { get; }

    /// <inheritdoc/>
    public IEnergyMeter? EnergyMeter { get; }

    /// <summary>Opens device <paramref name="index"/> of the backend's numbering (VulkanInstance.OrderedDevices);
    /// <paramref name="forceStaging"/> as <see cref="ForceStagingVariable"/> (tests).</summary>
    internal static VulkanAccelerator Open(int index, DeviceOptions options, bool forceStaging = false)
    {
        VulkanInstance instance = VulkanInstance.TryCreate(options.Validation, out string error)
            ?? throw new AcceleratorException($"vulkan:{index}", "create instance", 0, error);
        try
        {
            PhysicalDevice[] devices = instance.OrderedDevices();
            if ((uint)index >= (uint)devices.Length)
                throw new ArgumentOutOfRangeException(nameof(index), $"the vulkan backend has {devices.Length} device(s), not {index}");
            DeviceFacts facts = DeviceFacts.Read(instance.Vk, devices[index]);
            DeviceDescriptor descriptor = facts.Describe(index);
            if (facts.Unusable is { } why)
                throw new AcceleratorException(descriptor.Id, "open device", 0, $"{facts.Name} cannot run compute: {why}");
            bool push = facts.PushDescriptors && Environment.GetEnvironmentVariable(NoPushDescriptorsVariable) != "1";
            Device device = CreateLogicalDevice(instance.Vk, facts, push, descriptor.Id);
            instance.Vk.GetDeviceQueue(device, (uint)facts.ComputeQueueFamily, 0, out Queue queue);
            return new VulkanAccelerator(instance, facts, descriptor, device, queue, options, push, forceStaging);
        }
        catch
        {
            instance.Dispose();
            throw;
        }
    }

    private static Device CreateLogicalDevice(Vk vk, DeviceFacts facts, bool pushDescriptors, string id)
    {
        using FeatureChain features = FeatureChain.Query(vk, facts.Device, facts.ApiVersion, facts.Extensions);
        features.Mask(facts.Disabled);
        var extensions = new List<string>(features.Extensions);
        if (facts.MemoryBudget) extensions.Add(DeviceFacts.MemoryBudgetExtension);
        if (pushDescriptors) extensions.Add(DeviceFacts.PushDescriptorExtension);
        if (facts.HostImport) extensions.Add(DeviceFacts.HostImportExtension);
        if (facts.Extensions.Contains("VK_KHR_portability_subset")) extensions.Add("VK_KHR_portability_subset"); // MoltenVK requires it
        float priority = 1f;
        var queueInfo = new DeviceQueueCreateInfo
        {
            SType = StructureType.DeviceQueueCreateInfo,
            QueueFamilyIndex = (uint)facts.ComputeQueueFamily,
            QueueCount = 1,
            PQueuePriorities = &priority,
        };
        byte** names = VulkanApi.Utf8Array(extensions);
        try
        {
            var info = new DeviceCreateInfo
            {
                SType = StructureType.DeviceCreateInfo,
                PNext = features.Root,
                QueueCreateInfoCount = 1,
                PQueueCreateInfos = &queueInfo,
                EnabledExtensionCount = (uint)extensions.Count,
                PpEnabledExtensionNames = names,
            };
            Device device;
            Result r = vk.CreateDevice(facts.Device, &info, null, &device);
            if (r != Result.Success)
                throw new AcceleratorException(id, "vkCreateDevice", (long)r, $"could not open {facts.Name}: {r}", deviceLost: r == Result.ErrorDeviceLost);
            return device;
        }
        finally
        {
            VulkanApi.Free(names, extensions.Count);
        }
    }

    // ---- Errors ----

    /// <summary>Throws the contract's exception for a failed <paramref name="result"/> (device lost marks the device failed).</summary>
    internal void Check(Result result, string operation)
    {
        if (result == Result.Success) return;
        throw Fault(result, operation);
    }

    /// <summary>The exception for <paramref name="result"/>.</summary>
    internal AcceleratorException Fault(Result result, string operation)
    {
        if (result == Result.ErrorDeviceLost)
        {
            _lost = true;
            return new AcceleratorException(Id, operation, (long)result, "the Vulkan device was lost (VK_ERROR_DEVICE_LOST); it cannot be used again", deviceLost: true);
        }
        string message = result switch
        {
            Result.ErrorOutOfDeviceMemory => "out of device memory",
            Result.ErrorOutOfHostMemory => "out of host memory",
            Result.ErrorTooManyObjects => "too many objects (allocation count limit)",
            _ => result.ToString(),
        };
        return new AcceleratorException(Id, operation, (long)result, message);
    }

    /// <summary>Throws when the device is disposed, lost, or the validation layer has reported something since the last call.</summary>
    internal void ThrowIfUnusable(string operation)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_lost)
            throw new AcceleratorException(Id, operation, (long)Result.ErrorDeviceLost, "the Vulkan device was lost earlier; it cannot be used again", deviceLost: true);
        _instance.Validation?.ThrowIfAny(Id, operation);
    }

    /// <summary>The validation sink, or null without validation (tests read it).</summary>
    internal Validation.ValidationSink? Validation => _instance.Validation;

    // ---- Memory ----

    /// <inheritdoc/>
    public long FreeMemoryBytes
    {
        get
        {
            int heap = DeviceHeap();
            if (Facts.MemoryBudget)
            {
                var budget = new PhysicalDeviceMemoryBudgetPropertiesEXT { SType = StructureType.PhysicalDeviceMemoryBudgetPropertiesExt };
                var props = new PhysicalDeviceMemoryProperties2 { SType = StructureType.PhysicalDeviceMemoryProperties2, PNext = &budget };
                Vk.GetPhysicalDeviceMemoryProperties2(Facts.Device, &props);
                return Math.Max(0, (long)budget.HeapBudget[heap] - (long)budget.HeapUsage[heap]);
            }
            long free = Math.Max(0, (long)Facts.Memory.MemoryHeaps[heap].Size - Interlocked.Read(ref _allocatedBytes));
            // A CPU implementation allocates from system memory, which may be overcommitted: never report more than the system has.
            if (Facts.Kind == DeviceKind.Cpu && SystemAvailableBytes() is long available) free = Math.Min(free, available);
            return free;
        }
    }

    private int DeviceHeap()
    {
        MemoryPropertyFlags flags = Unified ? MemoryPropertyFlags.DeviceLocalBit | MemoryPropertyFlags.HostVisibleBit : MemoryPropertyFlags.DeviceLocalBit;
        int type = Facts.FindType(~0u, flags);
        return type < 0 ? 0 : (int)Facts.Memory.MemoryTypes[type].HeapIndex;
    }

    private static long? SystemAvailableBytes()
    {
        try
        {
            foreach (string line in File.ReadLines("/proc/meminfo"))
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal)
                    && long.TryParse(line.AsSpan(13).Trim().TrimEnd("kB").Trim(), out long kb))
                    return kb * 1024;
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <inheritdoc/>
    public IDeviceBuffer Allocate(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        ThrowIfUnusable("allocate");
        return CreateBuffer(bytes, $"allocate {bytes} bytes");
    }

    /// <summary>A device buffer (unified: mapped; discrete: device-local), zero-filled unless the caller overwrites it
    /// all (<paramref name="clear"/> false), tracked for Dispose. The fill of a device-only buffer is recorded, not waited for.</summary>
    internal VulkanBuffer CreateBuffer(long bytes, string what, bool clear = true)
    {
        CheckFits(bytes, what);
        VulkanBuffer buffer = Unified
            ? VulkanBuffer.Create(this, bytes, MemoryPropertyFlags.DeviceLocalBit | MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCoherentBit, 0, what)
            : VulkanBuffer.Create(this, bytes, MemoryPropertyFlags.DeviceLocalBit, 0, what, map: false);
        try
        {
            if (clear && buffer.Mapped is not null)
                System.Runtime.InteropServices.NativeMemory.Clear(buffer.Mapped, (nuint)buffer.AllocatedBytes);
            else if (clear)
                _transfers.Fill(buffer, what);
        }
        catch
        {
            buffer.Destroy();
            throw;
        }
        Track(buffer, what);
        return buffer;
    }

    /// <summary>Tracks <paramref name="buffer"/> for Dispose (and counts its bytes, unless it is imported host memory).</summary>
    private void Track(VulkanBuffer buffer, string what)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                buffer.Destroy();
                throw new ObjectDisposedException(nameof(VulkanAccelerator), $"{what}: the device is disposed");
            }
            _buffers.Add(buffer);
        }
        if (!buffer.IsImported) Interlocked.Add(ref _allocatedBytes, buffer.AllocatedBytes);
    }

    /// <summary>A host-visible coherent buffer for staging (not zero-filled, not counted as device memory).</summary>
    internal VulkanBuffer CreateStaging(long bytes, string what)
    {
        if ((ulong)bytes > Facts.MaxAllocationBytes)
            throw new AcceleratorException(Id, what, (long)Result.ErrorOutOfDeviceMemory, $"{bytes} bytes exceed the largest allocation the device makes ({Facts.MaxAllocationBytes})");
        return VulkanBuffer.Create(this, bytes, MemoryPropertyFlags.HostVisibleBit | MemoryPropertyFlags.HostCoherentBit, MemoryPropertyFlags.HostCachedBit, what);
    }

    private void CheckFits(long bytes, string what)
    {
        if ((ulong)bytes > Facts.MaxAllocationBytes)
            throw new AcceleratorException(Id, what, (long)Result.ErrorOutOfDeviceMemory,
                $"{bytes} bytes exceed the largest single allocation the device makes ({Facts.MaxAllocationBytes} bytes, maxMemoryAllocationSize)");
        long free = FreeMemoryBytes;
        if (bytes > free)
            throw new AcceleratorException(Id, what, (long)Result.ErrorOutOfDeviceMemory, $"out of device memory: {bytes} bytes requested, {free} free");
    }

    /// <summary>Called by <see cref="VulkanBuffer.Dispose"/>: waits until no submitted work can use it, then destroys it.</summary>
    internal void Release(VulkanBuffer buffer)
    {
        lock (_gate)
        {
            if (!_buffers.Remove(buffer)) return; // destroyed by Dispose already, or a staging buffer
        }
        WaitQueueIdle();
        buffer.Destroy();
        if (!buffer.IsImported) Interlocked.Add(ref _allocatedBytes, -buffer.AllocatedBytes);
    }

    private void WaitQueueIdle()
    {
        if (_lost) return;
        _transfers.SubmitPending();
        lock (_queueGate)
        {
            Result r = Vk.QueueWaitIdle(Queue);
            if (r == Result.ErrorDeviceLost) _lost = true;
        }
    }

    // ---- Submission ----

    /// <summary>Submits one command buffer with a fence, serialized on the queue, after the transfers recorded so far
    /// (so it sees them finished: each transfer batch ends with a barrier that covers later submissions).</summary>
    internal void Submit(CommandBuffer cmd, Fence fence, string operation)
    {
        _transfers.SubmitPending();
        SubmitAlone(cmd, fence, operation);
    }

    /// <summary>Submits one command buffer with a fence, serialized on the queue (the transfer batch's own submit).</summary>
    internal void SubmitAlone(CommandBuffer cmd, Fence fence, string operation)
    {
        var info = new SubmitInfo { SType = StructureType.SubmitInfo, CommandBufferCount = 1, PCommandBuffers = &cmd };
        Result r;
        lock (_queueGate) r = Vk.QueueSubmit(Queue, 1, &info, fence);
        Check(r, operation);
    }

    /// <summary>Waits for <paramref name="fence"/> (device lost and timeouts become exceptions).</summary>
    internal void Wait(Fence fence, string operation)
    {
        Result r = Vk.WaitForFences(Handle, 1, &fence, true, ulong.MaxValue);
        Check(r, operation);
    }

    /// <summary>Records <paramref name="record"/> into a one-off command buffer, submits it and waits.</summary>
    internal void Immediate(Action<CommandBuffer> record, string operation)
    {
        lock (_gate)
        {
            Check(Vk.ResetCommandBuffer(_immediate, 0), operation);
            var begin = new CommandBufferBeginInfo { SType = StructureType.CommandBufferBeginInfo, Flags = CommandBufferUsageFlags.OneTimeSubmitBit };
            Check(Vk.BeginCommandBuffer(_immediate, &begin), operation);
            record(_immediate);
            FullBarrier(_immediate, toHost: true);
            Check(Vk.EndCommandBuffer(_immediate), operation);
            Fence fence = _immediateFence;
            Check(Vk.ResetFences(Handle, 1, &fence), operation);
            Submit(_immediate, fence, operation);
            Wait(fence, operation);
        }
        _transfers.Trim();
    }

    /// <summary>A barrier making every earlier shader/transfer write visible to later shader/transfer access (and to the host).</summary>
    internal void FullBarrier(CommandBuffer cmd, bool toHost = false)
    {
        var barrier = new MemoryBarrier
        {
            SType = StructureType.MemoryBarrier,
            SrcAccessMask = AccessFlags.ShaderWriteBit | AccessFlags.TransferWriteBit,
            DstAccessMask = toHost ? AccessFlags.HostReadBit : AccessFlags.ShaderReadBit | AccessFlags.ShaderWriteBit | AccessFlags.TransferReadBit | AccessFlags.TransferWriteBit,
        };
        Vk.CmdPipelineBarrier(cmd, PipelineStageFlags.ComputeShaderBit | PipelineStageFlags.TransferBit,
            toHost ? PipelineStageFlags.HostBit : PipelineStageFlags.ComputeShaderBit | PipelineStageFlags.TransferBit,
            0, 1, &barrier, 0, null, 0, null);
    }

    internal CommandBuffer AllocateCommandBuffer(CommandPool pool)
    {
        var info = new CommandBufferAllocateInfo { SType = StructureType.CommandBufferAllocateInfo, CommandPool = pool, Level = CommandBufferLevel.Primary, CommandBufferCount = 1 };
        CommandBuffer cmd;
        Check(Vk.AllocateCommandBuffers(Handle, &info, &cmd), "allocate command buffer");
        return cmd;
    }

    internal Fence CreateFence()
    {
        var info = new FenceCreateInfo { SType = StructureType.FenceCreateInfo };
        Fence fence;
        Check(Vk.CreateFence(Handle, &info, null, &fence), "create fence");
        return fence;
    }

    // ---- Host transfers ----

    /// <summary>Flushes and waits for every stream (the accelerator's host transfers come after all recorded work).</summary>
    private void SynchronizeStreams()
    {
        VulkanStream[] streams;
        lock (_gate) streams = [.. _streams];
        foreach (VulkanStream s in streams) s.SynchronizeForHost();
    }

    private static VulkanBuffer Own(IDeviceBuffer buffer, VulkanAccelerator device, string op)
    {
        if (buffer is not VulkanBuffer vb || !ReferenceEquals(vb.Owner, device))
            throw new ArgumentException($"{op}: the buffer belongs to another device ({buffer?.Device?.Descriptor.Id})", nameof(buffer));
        vb.ThrowIfDisposed();
        return vb;
    }

    /// <inheritdoc/>
    public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        ArgumentNullException.ThrowIfNull(destination);
        ThrowIfUnusable("upload");
        VulkanBuffer dst = Own(destination, this, "Upload");
        if (offset < 0 || offset > dst.Length || source.Length > dst.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Upload: {source.Length} bytes at offset {offset} do not fit in a buffer of {dst.Length} bytes");
        if (source.Length == 0) return;
        SynchronizeStreams();
        WriteHost(dst, offset, source, "upload");
    }

    /// <summary>Copies host bytes into <paramref name="dst"/> (mapped: memcpy now; else into staging now, and a copy
    /// recorded that later submissions see finished: <see cref="TransferBatch"/>).</summary>
    internal void WriteHost(VulkanBuffer dst, long offset, ReadOnlySpan<byte> source, string operation)
    {
        fixed (byte* p = source) WriteHost(dst, offset, p, source.Length, operation);
    }

    /// <summary>As <see cref="WriteHost(VulkanBuffer, long, ReadOnlySpan{byte}, string)"/>, for a source of any length.</summary>
    internal void WriteHost(VulkanBuffer dst, long offset, byte* source, long bytes, string operation)
    {
        if (bytes == 0) return;
        if (dst.Mapped is not null)
            System.Buffer.MemoryCopy(source, dst.Mapped + offset, dst.AllocatedBytes - offset, bytes);
        else
            _transfers.Copy(dst, offset, source, bytes, operation);
    }

    /// <inheritdoc/>
    public void Download(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(source);
        ThrowIfUnusable("download");
        VulkanBuffer src = Own(source, this, "Download");
        if (offset < 0 || offset > src.Length || destination.Length > src.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"Download: {destination.Length} bytes at offset {offset} do not fit in a buffer of {src.Length} bytes");
        SynchronizeStreams();
        if (destination.Length == 0) return;
        ReadHost(src, offset, destination, "download");
    }

    /// <summary>Copies bytes from <paramref name="src"/> to the host now (mapped: memcpy; else a staging copy and a wait).</summary>
    internal void ReadHost(VulkanBuffer src, long offset, Span<byte> destination, string operation)
    {
        if (src.Mapped is not null)
        {
            new ReadOnlySpan<byte>(src.Mapped + offset, destination.Length).CopyTo(destination);
            return;
        }
        const long chunk = 64L << 20;
        using var staging = new StagingLease(this, Math.Min(chunk, destination.Length), operation);
        for (long done = 0; done < destination.Length; done += chunk)
        {
            int n = (int)Math.Min(chunk, destination.Length - done);
            long at = offset + done;
            Immediate(cmd =>
            {
                var region = new BufferCopy { SrcOffset = (ulong)at, DstOffset = 0, Size = (ulong)n };
                Vk.CmdCopyBuffer(cmd, src.Handle, staging.Buffer.Handle, 1, &region);
            }, operation);
            new ReadOnlySpan<byte>(staging.Buffer.Mapped, n).CopyTo(destination.Slice((int)done, n));
        }
    }

    /// <summary>A staging buffer for one host transfer, destroyed after it.</summary>
    private readonly struct StagingLease(VulkanAccelerator device, long bytes, string operation) : IDisposable
    {
        public VulkanBuffer Buffer { get; } = device.CreateStaging(bytes, operation);

        public void Dispose() => Buffer.Destroy();
    }

    // ---- Weights, caches, streams ----

    /// <inheritdoc/>
    public IDeviceWeight PrepareWeight(in WeightSource source)
    {
        source.Validate();
        ThrowIfUnusable($"prepare {source.Name}");
        OpSupport matMul = OpTable.Supports(this, new OpQuery(OpKind.MatMul, source.Type, source.Rows, source.Cols));
        OpSupport embed = OpTable.Supports(this, new OpQuery(OpKind.Embed, source.Type, source.Rows, source.Cols));
        if (!matMul.Supported && !embed.Supported)
            throw new ArgumentException($"PrepareWeight: {source}: {Id} runs neither MatMul ({matMul.Reason}) nor Embed ({embed.Reason}) for it", nameof(source));
        string what = $"prepare {source}";
        // Zero copy: a mapped file's pages imported as device memory, the weight bound at the tensor's offset.
        if (HostImportEnabled && _imports?.TryImport(source, what, out long offset) is { } imported)
        {
            Track(imported, what);
            return new VulkanWeight(this, imported, offset, source);
        }
        // A copy: written in place (unified memory), or staged and copied without a wait (device memory).
        VulkanBuffer buffer = CreateBuffer(source.Bytes, what, clear: false);
        try
        {
            WriteHost(buffer, 0, (byte*)source.Pointer, source.Bytes, what);
        }
        catch
        {
            buffer.Dispose();
            throw;
        }
        return new VulkanWeight(this, buffer, 0, source);
    }

    /// <inheritdoc/>
    public IKvCache CreateKvCache(in KvCacheSpec spec)
    {
        spec.Validate();
        ThrowIfUnusable("create KV cache");
        var layout = new KvCacheLayout(spec.Layers, spec.Blocks, spec.BlockSize, spec.KvHeads, spec.HeadDim, spec.PreferredType);
        // KvWrite and Attention bind one layer's K (and V) plane whole: refuse here, when the model loads, a cache whose
        // plane no binding can span, rather than at the first step.
        long plane = layout.SlotsPerLayer * VulkanKvCache.WordsPerRow(layout) * 4;
        if (plane > MaxBindingBytes)
        {
            long maxBlocks = MaxBindingBytes / (layout.BlockSize * VulkanKvCache.WordsPerRow(layout) * 4);
            throw new ArgumentException($"{Id}: a KV cache of {spec.Blocks} blocks of {spec.BlockSize} tokens needs {plane} bytes per layer's K (and V) plane, " +
                $"more than one storage-buffer binding spans here ({MaxBindingBytes} bytes, maxStorageBufferRange): at most {maxBlocks} blocks " +
                $"({maxBlocks * layout.BlockSize} tokens) of {layout.Type.Name()}", nameof(spec));
        }
        long bytes = VulkanKvCache.BytesFor(layout);
        VulkanBuffer buffer = CreateBuffer(bytes, $"create KV cache {spec} ({bytes} bytes)");
        return new VulkanKvCache(this, buffer, layout);
    }

    /// <inheritdoc/>
    public IComputeStream CreateStream()
    {
        ThrowIfUnusable("create stream");
        var stream = new VulkanStream(this, Options.Reproducible);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _streams.Add(stream);
        }
        return stream;
    }

    /// <summary>Called by a stream's Dispose.</summary>
    internal void Forget(VulkanStream stream)
    {
        lock (_gate) _streams.Remove(stream);
    }

    /// <inheritdoc/>
    public OpSupport Supports(in OpQuery query) => OpTable.Supports(this, query);

    /// <inheritdoc/>
    public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => OpTable.Variants(this, op, type);

    /// <inheritdoc/>
    public void Dispose()
    {
        VulkanStream[] streams;
        VulkanBuffer[] buffers;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            streams = [.. _streams];
            buffers = [.. _buffers];
            _streams.Clear();
            _buffers.Clear();
        }
        if (!_lost)
        {
            try
            {
                _transfers.SubmitPending();
            }
            catch (AcceleratorException)
            {
                // The device failed: there is nothing left to wait for.
            }
            _ = Vk.DeviceWaitIdle(Handle);
        }
        foreach (VulkanStream s in streams) s.Dispose();
        foreach (VulkanBuffer b in buffers)
        {
            b.MarkDisposed();
            b.Destroy();
        }
        _imports?.Dispose();
        _transfers.Dispose();
        Kernels.Dispose();
        Vk.DestroyFence(Handle, _immediateFence, null);
        Vk.DestroyCommandPool(Handle, _immediatePool, null);
        Vk.DestroyDevice(Handle, null);
        _instance.Dispose();
        // What the layer said while everything was destroyed (leaked objects) comes after the last call that could
        // throw it: written to stderr and counted, never dropped.
        _instance.Validation?.ReportAtShutdown(Id);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Id} {Descriptor.Name}";
}
