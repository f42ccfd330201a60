using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.TestNativeLibrary;

/// <summary>
/// A plugin whose Probe calls into a native library shipped in its own folder (runtimes/&lt;rid&gt;/native), as a vendor
/// backend calls its driver library. Its one device's name is the path the dynamic loader loaded the library from, so
/// a test can tell which copy the host resolved. When the library is missing, Probe says so (unusable, with the reason).
/// </summary>
public sealed partial class NativeLibraryPlugin : IBackendPlugin
{
    public string Name => "testnative";
    public ContractVersion ContractVersion => new(Abstractions.ContractVersion.CurrentMajor, Abstractions.ContractVersion.CurrentMinor);

    public ProbeResult Probe()
    {
        string path;
        try
        {
            if (Native.serving_test_native_add(40, 2) != 42)
                return ProbeResult.Unusable("native library answered 40 + 2 wrongly");
            path = Marshal.PtrToStringUTF8(Native.serving_test_native_path()) ?? "";
        }
        catch (DllNotFoundException e)
        {
            // The runtime's message goes on to list every path it tried, one per line; the first line says enough.
            return ProbeResult.Unusable($"native library {Native.Library} not found: {e.Message.Split('\n')[0].Trim()}");
        }
        var device = new DeviceDescriptor("testnative", 0, path, "test", "0", "testnative:" + path, DeviceKind.Npu, 0);
        return new ProbeResult(true, $"native library loaded from {path}", 1, [device]);
    }

    public IAccelerator CreateDevice(int index, DeviceOptions options) =>
        throw new NotSupportedException("the native-library test plugin has no device to open");

    private static partial class Native
    {
        /// <summary>The library's name as the loader is asked for it: no prefix, suffix or folder.</summary>
        public const string Library = "servingtestnative";

        [LibraryImport(Library)]
        public static partial int serving_test_native_add(int a, int b);

        /// <summary>A pointer owned by the dynamic loader: read it, never free it.</summary>
        [LibraryImport(Library)]
        public static partial nint serving_test_native_path();
    }
}
