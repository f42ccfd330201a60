using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using Serving.Abstractions;
using Serving.Backends.Cuda.Interop;
using Serving.Backends.Cuda.Kernels;
using Serving.Backends.Cuda.Kernels.Formats;
using IlgpuException = ILGPU.Runtime.AcceleratorException;
using IlgpuCudaAccelerator = ILGPU.Runtime.Cuda.CudaAccelerator;
using ServingException = Serving.Abstractions.AcceleratorException;

namespace Serving.Backends.Cuda;

/// <summary>
/// One opened device: an ILGPU context and accelerator (a CUDA context on a GPU; ILGPU's CPU accelerator for the test
/// devices), its kernels in the device's <see cref="IKernelMode"/>, and everything allocated on it. Thread-safe for
/// allocation, preparation and queries. A sticky CUDA error (illegal address, launch failure…) marks the device lost:
/// every later call throws an <see cref="ServingException"/> with DeviceLost.
/// </summary>
internal sealed class CudaAccelerator : IAccelerator
{
    private readonly Context _context;
    private readonly object _gate = new();
    private readonly HashSet<IDisposable> _owned = [];
    private readonly HashSet<CudaStream> _streams = [];
    private readonly MemoryBuffer1D<byte, Stride1D.Dense> _dummy;
    private readonly DeviceOptions _options;
    private long _allocated;
    private volatile ServingException? _lost;
    private bool _disposed;

    private CudaAccelerator(Context context, Accelerator accelerator, DeviceDescriptor descriptor, DeviceOptions options, IKernelSet? kernels,
        bool serial, IEnergyMeter? meter)
    {
        _context = context;
        Accelerator = accelerator;
        Descriptor = descriptor;
        _options = options;
        Serial = serial;
        IsCpu = accelerator.AcceleratorType == AcceleratorType.CPU;
        EnergyMeter = meter;
        Kernels = kernels ?? (serial ? new KernelSet<SerialLanes>(accelerator) : new KernelSet<WarpLanes>(accelerator));
        _dummy = accelerator.Allocate1D<byte>(16);
        _dummy.MemSetToZero();
        accelerator.Synchronize();
    }

    /// <summary>The ILGPU accelerator.</summary>
    internal Accelerator Accelerator { get; }

    /// <summary>The kernels.</summary>
    internal IKernelSet Kernels { get; }

    /// <summary>True on the CPU accelerator (the test devices): copies are synchronous, timestamps are clock reads.</summary>
    internal bool IsCpu { get; }

    /// <summary>True: kernels run one thread per unit (serial lanes).</summary>
    internal bool Serial { get; }

    /// <summary>A one-word view for kernel arguments an op does not use.</summary>
    internal ArrayView<int> DummyInts => _dummy.AsRawArrayView().Cast<int>();

    /// <summary>A one-word view for kernel arguments an op does not use.</summary>
    internal ArrayView<float> DummyFloats => _dummy.AsRawArrayView().Cast<float>();

    /// <inheritdoc/>
    public DeviceDescriptor Descriptor { get; }

    /// <inheritdoc/>
    public IEnergyMeter? EnergyMeter { get; }

    /// <inheritdoc/>
    public long FreeMemoryBytes
    {
        get
        {
            if (Accelerator is IlgpuCudaAccelerator cuda)
            {
                try { return Math.Max(0, cuda.GetFreeMemory()); }
                catch (IlgpuException) { return 0; }
            }
            return Math.Max(0, Descriptor.TotalMemoryBytes - Interlocked.Read(ref _allocated));
        }
    }

    /// <summary>Opens CUDA device <paramref name="gpu"/>.</summary>
    internal static CudaAccelerator OpenGpu(DriverInfo driver, GpuInfo gpu, INvml? nvml, DeviceOptions options)
    {
        DeviceDescriptor descriptor = Describe(driver, gpu, nvml);
        Context? context = null;
        try
        {
            context = Context.Create(b => b.Cuda().EnableAlgorithms().Profiling().Optimize(OptimizationLevel.O2));
            CudaDevice? device = null;
            foreach (CudaDevice d in context.GetCudaDevices())
            {
                if (d.DeviceId == gpu.Ordinal) device = d;
            }
            if (device is null)
                throw new ServingException(descriptor.Id, "open device", 0, $"ILGPU 1.5.3 cannot compile for {gpu.Name} ({gpu.Architecture}) with this driver (CUDA {driver.CudaVersionText})");
            Accelerator accelerator = device.CreateCudaAccelerator(context);
            IKernelSet kernels = gpu.HasDp4a ? new KernelSet<WarpDp4aLanes>(accelerator) : new KernelSet<WarpLanes>(accelerator);
            IEnergyMeter? meter = nvml is not null && nvml.TryGetDevice(gpu.Uuid, out nint handle) ? NvmlEnergyMeter.TryCreate(nvml, handle) : null;
            return new CudaAccelerator(context, accelerator, descriptor, options, kernels, serial: false, meter);
        }
        catch (Exception e) when (e is not ServingException && IsFault(e))
        {
            context?.Dispose();
            throw new ServingException(descriptor.Id, "open device", NativeCode(e), e.Message, e);
        }
    }

    /// <summary>Opens test device <paramref name="index"/>: ILGPU's CPU accelerator in the serial (0) or warp (1) form.</summary>
    internal static CudaAccelerator OpenCpu(int index, DeviceOptions options)
    {
        // Serial lanes: two threads per group, two groups at a time (the CPU accelerator wakes every thread of a group
        // per launch, so small groups keep a launch at ~0.1 ms on two cores). Warp lanes: real 32-lane warps.
        CPUDevice cpu = index == 0 ? new CPUDevice(2, 1, 2) : new CPUDevice(32, 8, 1);
        Context context = Context.Create(b => b.CPU(cpu).EnableAlgorithms());
        try
        {
            Accelerator accelerator = context.CreateCPUAccelerator(0, CPUAcceleratorMode.Parallel);
            return new CudaAccelerator(context, accelerator, CpuTestDevice.Describe(index), options, null, serial: index == 0, null);
        }
        catch
        {
            context.Dispose();
            throw;
        }
    }

    /// <summary>The descriptor of a GPU: name, NVIDIA, driver version (NVML's, else the CUDA version), UUID as fingerprint.</summary>
    internal static DeviceDescriptor Describe(DriverInfo driver, GpuInfo gpu, INvml? nvml)
    {
        string? version = nvml?.DriverVersion;
        var details = new List<string>
        {
            $"compute capability {gpu.Major}.{gpu.Minor} ({gpu.Architecture}), {gpu.Multiprocessors} SMs, PCI {gpu.PciBusId}",
            $"{gpu.TotalMemoryBytes / (double)(1L << 30):0.0} GiB device memory; CUDA driver {driver.CudaVersionText}",
            gpu.HasDp4a ? "uses: dp4a int8 dot products (inline PTX), warp reductions (ILGPU.Algorithms)" : "uses: warp reductions (ILGPU.Algorithms); no dp4a before sm_61 (portable int8)",
        };
        if (gpu.Major < 5) details.Add("unusable: compute capability below 5.0");
        if (nvml is null) details.Add($"energy: {Nvml.LibraryName} not found, no energy meter");
        else if (nvml.TryGetDevice(gpu.Uuid, out nint handle)) details.Add(NvmlEnergyMeter.Describe(nvml, handle));
        else details.Add("energy: NVML does not know this device's UUID, no energy meter");
        return new DeviceDescriptor("cuda", gpu.Ordinal, gpu.Name, "NVIDIA", version ?? $"CUDA {driver.CudaVersionText}", gpu.Uuid, DeviceKind.Gpu, gpu.TotalMemoryBytes)
        {
            Details = details,
        };
    }

    /// <summary>A launch of <paramref name="units"/> units (warps, or threads in the serial form).</summary>
    internal KernelConfig Units(long units, int warpsPerGroup)
    {
        if (Serial)
        {
            int group = Accelerator.MaxNumThreadsPerGroup;
            return new KernelConfig(checked((int)((units + group - 1) / group)), group);
        }
        int warps = Math.Max(1, Math.Min(warpsPerGroup, Accelerator.MaxNumThreadsPerGroup / Lanes.Count));
        return new KernelConfig(checked((int)((units + warps - 1) / warps)), warps * Lanes.Count);
    }

    /// <summary>A grid-stride launch over <paramref name="total"/> elements.</summary>
    internal KernelConfig Elements(long total)
    {
        int group = IsCpu ? Accelerator.MaxNumThreadsPerGroup : 256;
        long cap = IsCpu ? 64 : 1L << 20;
        return new KernelConfig((int)Math.Clamp((total + group - 1) / group, 1, cap), group);
    }

    /// <inheritdoc/>
    public IDeviceBuffer Allocate(long bytes)
    {
        ThrowIfUnusable();
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        var memory = AllocateMemory<byte>(Math.Max(4, (bytes + 3) & ~3L), $"allocate {bytes} bytes");
        var buffer = new CudaBuffer(this, memory, bytes);
        Own(buffer, memory.LengthInBytes);
        return buffer;
    }

    /// <summary>Scratch memory for a stream (not zero-filled, not counted as a buffer).</summary>
    internal MemoryBuffer1D<T, Stride1D.Dense> AllocateScratch<T>(long elements, string what) where T : unmanaged
    {
        try { return Accelerator.Allocate1D<T>(elements); }
        catch (Exception e) when (IsFault(e)) { throw Fault($"allocate {what}", e); }
    }

    /// <inheritdoc/>
    public IDeviceWeight PrepareWeight(in WeightSource source)
    {
        ThrowIfUnusable();
        source.Validate();
        OpSupport matmul = Supports(new OpQuery(OpKind.MatMul, source.Type, source.Rows, source.Cols));
        OpSupport embed = Supports(new OpQuery(OpKind.Embed, source.Type, source.Rows, source.Cols));
        if (!matmul.Supported && !embed.Supported)
            throw new ArgumentException($"PrepareWeight: {source}: {matmul.Reason}", nameof(source));
        long bytes = WeightLayout.DeviceBytes(source);
        // Repacked on the host, then one copy to device memory: nothing of the source is kept or read later.
        byte[] host = GC.AllocateUninitializedArray<byte>(checked((int)bytes));
        WeightLayout.Repack(source, host);
        var buffer = (CudaBuffer)Allocate(bytes);
        try
        {
            buffer.CopyFromHost(Accelerator.DefaultStream, 0, host);
        }
        catch (Exception e) when (IsFault(e))
        {
            buffer.Dispose();
            throw Fault($"upload {source}", e);
        }
        var weight = new CudaWeight(this, source, buffer);
        lock (_gate) _owned.Add(weight);
        return weight;
    }

    /// <inheritdoc/>
    public IKvCache CreateKvCache(in KvCacheSpec spec)
    {
        ThrowIfUnusable();
        spec.Validate();
        var layout = new KvCacheLayout(spec.Layers, spec.Blocks, spec.BlockSize, spec.KvHeads, spec.HeadDim, spec.PreferredType);
        var buffer = (CudaBuffer)Allocate(layout.Bytes);
        var cache = new CudaKvCache(this, layout, buffer);
        lock (_gate) _owned.Add(cache);
        return cache;
    }

    /// <inheritdoc/>
    public void Upload(IDeviceBuffer destination, long offset, ReadOnlySpan<byte> source)
    {
        CudaBuffer buffer = Resolve(nameof(Upload), destination, offset, source.Length);
        if (source.Length == 0) return;
        try
        {
            DrainStreams();
            buffer.CopyFromHost(Accelerator.DefaultStream, offset, source);
        }
        catch (Exception e) when (IsFault(e)) { throw Fault("Upload", e); }
    }

    /// <inheritdoc/>
    public void Download(IDeviceBuffer source, long offset, Span<byte> destination)
    {
        CudaBuffer buffer = Resolve(nameof(Download), source, offset, destination.Length);
        try
        {
            DrainStreams();
            buffer.CopyToHost(Accelerator.DefaultStream, offset, destination);
        }
        catch (Exception e) when (IsFault(e)) { throw Fault("Download", e); }
    }

    /// <inheritdoc/>
    public IComputeStream CreateStream()
    {
        ThrowIfUnusable();
        var stream = new CudaStream(this, _options.Reproducible);
        lock (_gate)
        {
            if (_disposed)
            {
                stream.Dispose();
                ThrowIfUnusable();
            }
            _streams.Add(stream);
        }
        return stream;
    }

    /// <inheritdoc/>
    public OpSupport Supports(in OpQuery query) => Variants.Supports(query);

    /// <inheritdoc/>
    public IReadOnlyList<KernelVariant> GetVariants(OpKind op, DataType type) => Variants.For(op, type);

    /// <summary>Throws once the device is disposed or lost.</summary>
    internal void ThrowIfUnusable()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_lost is { } lost)
            throw new ServingException(Descriptor.Id, lost.Operation, lost.NativeCode, $"the device was lost earlier: {lost.Message}", lost, deviceLost: true);
    }

    /// <summary>True for the exceptions ILGPU and the driver throw for device faults.</summary>
    internal static bool IsFault(Exception e)
        => e is IlgpuException or OutOfMemoryException or InvalidKernelOperationException
           || (e.GetType().Namespace?.StartsWith("ILGPU", StringComparison.Ordinal) ?? false);

    /// <summary>The contract's exception for a fault in <paramref name="operation"/>; a sticky CUDA error marks the device lost.</summary>
    internal ServingException Fault(string operation, Exception e)
    {
        long code = NativeCode(e);
        bool lost = e is CudaException cuda && IsSticky(cuda.Error);
        var fault = new ServingException(Descriptor.Id, operation, code, e.Message, e, lost);
        if (lost) _lost ??= fault;
        return fault;
    }

    private static long NativeCode(Exception e)
        => e is CudaException cuda && Enum.TryParse(cuda.Error, out CudaError error) ? (long)error : 0;

    private static bool IsSticky(string error) => error is "CUDA_ERROR_ILLEGAL_ADDRESS" or "CUDA_ERROR_LAUNCH_FAILED"
        or "CUDA_ERROR_HARDWARE_STACK_ERROR" or "CUDA_ERROR_ILLEGAL_INSTRUCTION" or "CUDA_ERROR_MISALIGNED_ADDRESS"
        or "CUDA_ERROR_INVALID_ADDRESS_SPACE" or "CUDA_ERROR_INVALID_PC" or "CUDA_ERROR_ECC_UNCORRECTABLE"
        or "CUDA_ERROR_LAUNCH_TIMEOUT" or "CUDA_ERROR_ASSERT";

    private CudaBuffer Resolve(string op, IDeviceBuffer buffer, long offset, long length)
    {
        ThrowIfUnusable();
        ArgumentNullException.ThrowIfNull(buffer);
        if (buffer is not CudaBuffer mine || !ReferenceEquals(mine.Device, this))
            throw new ArgumentException($"{op}: the buffer belongs to another device", nameof(buffer));
        ObjectDisposedException.ThrowIf(mine.IsDisposed, mine);
        if (offset < 0 || offset > mine.Length || length > mine.Length - offset)
            throw new ArgumentOutOfRangeException(nameof(offset), $"{op}: {length} bytes at offset {offset} do not fit in a buffer of {mine.Length} bytes");
        return mine;
    }

    private void DrainStreams()
    {
        CudaStream[] streams;
        lock (_gate) streams = [.. _streams];
        foreach (var s in streams)
        {
            try
            {
                if (!s.IsDisposedStream) s.Drain();
            }
            catch (ObjectDisposedException)
            {
                // Disposed meanwhile: its work is finished.
            }
        }
        Accelerator.DefaultStream.Synchronize();
    }

    private MemoryBuffer1D<T, Stride1D.Dense> AllocateMemory<T>(long elements, string operation) where T : unmanaged
    {
        try
        {
            var memory = Accelerator.Allocate1D<T>(elements);
            memory.MemSetToZero(Accelerator.DefaultStream);
            Accelerator.DefaultStream.Synchronize();
            return memory;
        }
        catch (Exception e) when (IsFault(e)) { throw Fault(operation, e); }
    }

    private void Own(IDisposable item, long bytes)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                item.Dispose();
                ThrowIfUnusable();
            }
            _owned.Add(item);
            _allocated += bytes;
        }
    }

    /// <summary>A buffer's Dispose: forget it and its bytes.</summary>
    internal void Release(CudaBuffer buffer, long bytes)
    {
        lock (_gate)
        {
            if (_owned.Remove(buffer)) _allocated -= bytes;
        }
    }

    /// <summary>A weight's, cache's or stream's Dispose: forget it.</summary>
    internal void Forget(object item)
    {
        lock (_gate)
        {
            if (item is CudaStream s) _streams.Remove(s);
            else if (item is IDisposable d) _owned.Remove(d);
        }
    }

    /// <summary>Frees everything the device still owns; each object then reports IsDisposed.</summary>
    public void Dispose()
    {
        IDisposable[] owned;
        CudaStream[] streams;
        lock (_gate)
        {
            if (_disposed) return;
            _disposed = true;
            owned = [.. _owned];
            streams = [.. _streams];
        }
        foreach (var s in streams) s.Dispose();
        foreach (var o in owned) o.Dispose();
        _dummy.Dispose();
        Accelerator.Dispose();
        _context.Dispose();
    }
}
