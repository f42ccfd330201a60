using System.Runtime.InteropServices;

namespace Serving.Backends.Cpu.Interop;

/// <summary>
/// The CPU device's native memory. Large blocks (at least <see cref="MapThreshold"/>) come straight from the kernel as
/// anonymous private mappings on Linux and macOS: their pages are zero and become resident only when first written, so
/// a KV cache sized for four contexts, or a logits buffer sized for a whole prefill chunk, costs resident memory only
/// for the part a run touches (a zero-filled <c>AlignedAlloc</c> makes every page resident at once). Everything else,
/// and every block on other systems, is 64-byte aligned <see cref="NativeMemory.AlignedAlloc"/> memory.
/// </summary>
internal static unsafe partial class PageMemory
{
    /// <summary>Blocks of at least this many bytes are mapped (where the system allows).</summary>
    internal const long MapThreshold = 1L << 20;

    private const int ProtRead = 1, ProtWrite = 2, MapPrivate = 2, MapAnonymousLinux = 0x20, MapAnonymousMac = 0x1000;
    private static readonly Lock s_gate = new();
    private static readonly Dictionary<nint, long> s_mapped = [];

    /// <summary>True where large blocks are mapped (Linux, macOS).</summary>
    internal static bool Maps => OperatingSystem.IsLinux() || OperatingSystem.IsMacOS();

    /// <summary>
    /// At least 64-byte aligned memory of <paramref name="bytes"/> bytes, zero when <paramref name="clear"/> (a mapping
    /// is zero anyway, with no page touched). Throws <see cref="OutOfMemoryException"/> (an <see cref="InsufficientMemoryException"/> when a mapping fails).
    /// </summary>
    public static byte* Allocate(long bytes, bool clear)
    {
        bytes = Math.Max(bytes, 1);
        if (bytes >= MapThreshold && Maps)
        {
            int flags = MapPrivate | (OperatingSystem.IsLinux() ? MapAnonymousLinux : MapAnonymousMac);
            void* p = Mmap(null, (nuint)bytes, ProtRead | ProtWrite, flags, -1, 0);
            if (p == (void*)-1)
                throw new InsufficientMemoryException($"mmap of {bytes} bytes failed (errno {Marshal.GetLastPInvokeError()})");
            lock (s_gate)
                s_mapped.Add((nint)p, bytes);
            return (byte*)p;
        }
        byte* memory = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
        if (clear)
            NativeMemory.Clear(memory, (nuint)bytes);
        return memory;
    }

    /// <summary>Frees memory from <see cref="Allocate"/> (null is ignored).</summary>
    public static void Free(byte* memory)
    {
        if (memory == null)
            return;
        long bytes;
        lock (s_gate)
        {
            if (!s_mapped.Remove((nint)memory, out bytes))
                bytes = 0;
        }
        if (bytes == 0)
            NativeMemory.AlignedFree(memory);
        else if (Munmap(memory, (nuint)bytes) != 0)
            throw new InvalidOperationException($"munmap of {bytes} bytes failed (errno {Marshal.GetLastPInvokeError()})");
    }

    [LibraryImport("libc", EntryPoint = "mmap", SetLastError = true)]
    private static partial void* Mmap(void* address, nuint length, int protection, int flags, int fd, nint offset);

    [LibraryImport("libc", EntryPoint = "munmap", SetLastError = true)]
    private static partial int Munmap(void* address, nuint length);
}
