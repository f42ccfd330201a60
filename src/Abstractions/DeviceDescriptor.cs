namespace Serving.Abstractions;

/// <summary>Kind of device, for display and default device choice.</summary>
public enum DeviceKind
{
    /// <summary>A general-purpose processor.</summary>
    Cpu,
    /// <summary>A discrete GPU with its own memory.</summary>
    Gpu,
    /// <summary>A GPU sharing memory with the host.</summary>
    IntegratedGpu,
    /// <summary>A neural processing unit or other accelerator.</summary>
    Npu,
}

/// <summary>Identity of one device as a backend reports it.</summary>
/// <param name="Backend">Backend name ("cpu").</param>
/// <param name="Index">Index within the backend; the device id is "backend:index".</param>
/// <param name="Name">Marketing or model name ("AMD Ryzen 9 9950X").</param>
/// <param name="Vendor">Vendor name.</param>
/// <param name="DriverVersion">Driver or runtime version; part of the tuner cache key.</param>
/// <param name="Fingerprint">Stable id of this physical device (UUID, PCI id, CPU model + features).</param>
/// <param name="Kind">CPU, GPU, iGPU, NPU.</param>
/// <param name="TotalMemoryBytes">Memory usable for buffers, in bytes.</param>
public sealed record DeviceDescriptor(
    string Backend,
    int Index,
    string Name,
    string Vendor,
    string DriverVersion,
    string Fingerprint,
    DeviceKind Kind,
    long TotalMemoryBytes)
{
    /// <summary>Facts worth showing in <c>devices</c>, one line each ("memory heap 0: 8.0 GiB device-local",
    /// "subgroup size 32", "uses: 16-bit storage, integer dot product"); empty when the backend has none to add.</summary>
    public IReadOnlyList<string> Details { get; init; } = [];

    /// <summary>"backend:index", the id users pass to --device.</summary>
    public string Id => $"{Backend}:{Index}";
}
