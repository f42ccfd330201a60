using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Silk.NET.Core;
using Silk.NET.Vulkan;

namespace Serving.Backends.Vulkan.Validation;

/// <summary>
/// Where VK_LAYER_KHRONOS_validation's messages land (through a VK_EXT_debug_utils messenger): every warning or error
/// is queued, and the device's next call turns the queue into an <see cref="Serving.Abstractions.AcceleratorException"/>
/// (<see cref="ThrowIfAny"/>), so a test that breaks a Vulkan rule fails where it broke it, not silently. What arrives
/// after the last call that could throw (objects leaked when the device and instance are destroyed, or a message no
/// later call picked up) is written to stderr by <see cref="ReportAtShutdown"/> and counted in
/// <see cref="ShutdownMessages"/>: never dropped.
/// </summary>
internal sealed unsafe class ValidationSink : IDisposable
{
    private static int s_shutdownMessages;
    private readonly ConcurrentQueue<string> _messages = new();
    private GCHandle _self;

    /// <summary>Messages reported at shutdown in this process so far (tests read it).</summary>
    public static int ShutdownMessages => Volatile.Read(ref s_shutdownMessages);

    /// <summary>Where <see cref="ReportAtShutdown"/> writes (stderr; tests may swap it).</summary>
    internal static Action<string> ShutdownLog { get; set; } = line => Console.Error.WriteLine(line);

    /// <summary>Creates the sink and pins a handle to it for the native callback's user data.</summary>
    public ValidationSink() => _self = GCHandle.Alloc(this);

    /// <summary>The user-data pointer the callback receives.</summary>
    public void* UserData => (void*)GCHandle.ToIntPtr(_self);

    /// <summary>Messages received (for tests and diagnostics).</summary>
    public int Count => _messages.Count;

    /// <summary>Queues a message (also used by the backend itself to report a broken rule it detects).</summary>
    public void Add(string message) => _messages.Enqueue(message);

    /// <summary>Throws one exception naming every queued message, then clears the queue.</summary>
    public void ThrowIfAny(string device, string operation)
    {
        if (_messages.IsEmpty) return;
        var all = new List<string>();
        while (_messages.TryDequeue(out string? m)) all.Add(m);
        throw new Serving.Abstractions.AcceleratorException(device, operation, 0,
            $"the Vulkan validation layer reported {all.Count} message(s): {string.Join(" | ", all)}");
    }

    /// <summary>
    /// Called once the device and instance are destroyed: writes every message still queued (through
    /// <see cref="ShutdownLog"/>, one line each, naming the device) and counts it. Returns how many there were.
    /// </summary>
    public int ReportAtShutdown(string device)
    {
        int n = 0;
        while (_messages.TryDequeue(out string? m))
        {
            n++;
            Interlocked.Increment(ref s_shutdownMessages);
            try
            {
                ShutdownLog($"{device}: the Vulkan validation layer reported while the device was destroyed: {m}");
            }
            catch (IOException)
            {
                // stderr closed: the count still records it.
            }
        }
        return n;
    }

    /// <summary>A create-info for a messenger feeding this sink (warnings and errors; every message type).</summary>
    public DebugUtilsMessengerCreateInfoEXT CreateInfo() => new()
    {
        SType = StructureType.DebugUtilsMessengerCreateInfoExt,
        MessageSeverity = DebugUtilsMessageSeverityFlagsEXT.WarningBitExt | DebugUtilsMessageSeverityFlagsEXT.ErrorBitExt,
        MessageType = DebugUtilsMessageTypeFlagsEXT.GeneralBitExt | DebugUtilsMessageTypeFlagsEXT.ValidationBitExt | DebugUtilsMessageTypeFlagsEXT.PerformanceBitExt,
        PfnUserCallback = new PfnDebugUtilsMessengerCallbackEXT(&Callback),
        PUserData = UserData,
    };

    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static Bool32 Callback(DebugUtilsMessageSeverityFlagsEXT severity, DebugUtilsMessageTypeFlagsEXT types, DebugUtilsMessengerCallbackDataEXT* data, void* user)
    {
        try
        {
            if (user is null) return false;
            if (GCHandle.FromIntPtr((nint)user).Target is not ValidationSink sink) return false;
            string text = data is null || data->PMessage is null ? "(no text)" : Marshal.PtrToStringUTF8((nint)data->PMessage) ?? "";
            // Performance hints are advice, not broken rules: only warnings and errors of the validation and general kinds count.
            if ((types & DebugUtilsMessageTypeFlagsEXT.PerformanceBitExt) != 0 && (severity & DebugUtilsMessageSeverityFlagsEXT.ErrorBitExt) == 0)
                return false;
            sink.Add($"[{severity}] {text}");
        }
        catch
        {
            // Never let an exception cross into the driver.
        }
        return false;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (_self.IsAllocated) _self.Free();
    }
}
