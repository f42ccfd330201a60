using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace Serving.Engine.Gguf;

/// <summary>
/// A validated GGUF v2/v3 file (little-endian). <see cref="Open"/> maps the file read-only and never copies
/// tensor data: <see cref="BasePointer"/> + <see cref="GgufTensorInfo.Offset"/> is the tensor in place.
/// Validation before any use: magic, version, every count/length against the bytes that remain (before
/// allocating), value and tensor types, names (1–63 bytes, unique), keys (non-empty, unique),
/// general.alignment (a UInt32 power of two), dims (1–4, non-negative, element and byte counts within 64
/// bits, row length a multiple of the block size), and tensor placement: each offset a multiple of the
/// alignment, tensors in increasing offset order in the tensor table without overlap (gaps are allowed;
/// out-of-order tables are rejected, as llama.cpp does), and every tensor inside the file.
/// Keys and tensor names must be valid UTF-8; string values are decoded leniently (invalid bytes become U+FFFD).
/// Errors are <see cref="GgufFormatException"/>s naming the field and offset. Thread-safe for reading;
/// disposing invalidates <see cref="BasePointer"/> and every span handed out.
/// </summary>
public sealed unsafe partial class GgufFile : IDisposable
{
    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte[]? _pinned;   // Parse: a pinned-heap copy, which never moves
    private readonly FileStream? _stream; // Open: the file (owned by _map), for page-cache advice
    private readonly Dictionary<string, GgufTensorInfo> _byName;
    private byte* _base;

    private GgufFile(GgufParser.Result r, long fileLength, byte* basePointer,
        MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte[]? pinned, FileStream? stream = null)
    {
        Version = r.Version;
        Alignment = r.Alignment;
        DataOffset = r.DataOffset;
        FileLength = fileLength;
        Metadata = r.Metadata;
        Tensors = r.Tensors.AsReadOnly();
        _byName = new Dictionary<string, GgufTensorInfo>(r.Tensors.Count, StringComparer.Ordinal);
        foreach (var t in r.Tensors)
            _byName.Add(t.Name, t);
        _base = basePointer;
        _map = map;
        _view = view;
        _pinned = pinned;
        _stream = stream;
    }

    /// <summary>GGUF version (2 or 3).</summary>
    public int Version { get; }

    /// <summary>Data alignment in bytes (general.alignment, default 32).</summary>
    public long Alignment { get; }

    /// <summary>Absolute file offset where tensor data starts (the header end rounded up to the alignment).</summary>
    public long DataOffset { get; }

    /// <summary>File size in bytes.</summary>
    public long FileLength { get; }

    /// <summary>The key/value metadata.</summary>
    public GgufMetadata Metadata { get; }

    /// <summary>Tensors in file order.</summary>
    public IReadOnlyList<GgufTensorInfo> Tensors { get; }

    /// <summary>The tensor called <paramref name="name"/>, or null.</summary>
    public GgufTensorInfo? FindTensor(string name) => _byName.GetValueOrDefault(name);

    /// <summary>The tensor called <paramref name="name"/>; throws <see cref="GgufFormatException"/> when missing.</summary>
    public GgufTensorInfo GetTensor(string name) =>
        FindTensor(name) ?? throw new GgufFormatException($"tensor '{name}'", -1, "required tensor is missing");

    /// <summary>
    /// The tensor called <paramref name="name"/>, checked to have exactly the ggml-order dims
    /// <paramref name="dims"/> (trailing 1s are ignored on both sides). Throws <see cref="GgufFormatException"/>
    /// naming the tensor and both shapes otherwise.
    /// </summary>
    public GgufTensorInfo GetTensor(string name, params long[] dims)
    {
        var t = GetTensor(name);
        if (!SameShape(t.Dims, dims))
            throw new GgufFormatException($"tensor '{name}' dims", t.Offset,
                $"shape is [{string.Join(", ", t.Dims)}], expected [{string.Join(", ", dims)}]");
        return t;
    }

    private static bool SameShape(long[] a, long[] b)
    {
        for (int i = 0; i < Math.Max(a.Length, b.Length); i++)
            if ((i < a.Length ? a[i] : 1) != (i < b.Length ? b[i] : 1))
                return false;
        return true;
    }

    /// <summary>Start of the mapped file (offset 0). Valid until <see cref="Dispose"/>; read-only memory.</summary>
    public byte* BasePointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return _base;
        }
    }

    /// <summary>
    /// The tensor's bytes in place (no copy), valid until <see cref="Dispose"/>. Throws
    /// <see cref="NotSupportedException"/> for tensors over 2 GiB (use <see cref="BasePointer"/> for those).
    /// </summary>
    public ReadOnlySpan<byte> GetTensorBytes(GgufTensorInfo t)
    {
        ArgumentNullException.ThrowIfNull(t);
        if (!_byName.TryGetValue(t.Name, out var own) || !ReferenceEquals(own, t))
            throw new ArgumentException($"tensor '{t.Name}' does not belong to this file", nameof(t));
        if (t.ByteSize > int.MaxValue)
            throw new NotSupportedException($"tensor '{t.Name}' is {t.ByteSize} bytes, more than a span holds; use BasePointer");
        return new ReadOnlySpan<byte>(BasePointer + t.Offset, (int)t.ByteSize);
    }

    /// <summary>Maps and validates the file at <paramref name="path"/>. The file stays open until disposed.</summary>
    public static GgufFile Open(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.RandomAccess);
        long length = stream.Length;
        // An empty file cannot be mapped at all; too-short files are reported as such by the parser.
        if (length < 24)
        {
            try
            {
                Span<byte> head = stackalloc byte[(int)length];
                stream.ReadExactly(head);
                GgufParser.Parse(head, length); // throws the precise error
                throw new GgufFormatException("header", length, $"file is {length} bytes, too short for a GGUF header");
            }
            catch (GgufFormatException e)
            {
                throw e.WithSource(path);
            }
            finally
            {
                stream.Dispose();
            }
        }

        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        byte* p = null;
        try
        {
            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref p);
            p += view.PointerOffset;
            var header = new ReadOnlySpan<byte>(p, (int)Math.Min(length, int.MaxValue));
            var result = GgufParser.Parse(header, length);
            return new GgufFile(result, length, p, map, view, null, stream);
        }
        catch (Exception e)
        {
            if (p != null)
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            if (e is GgufFormatException g)
                throw g.WithSource(path);
            throw;
        }
    }

    /// <summary>
    /// Gives back the memory behind bytes [<paramref name="offset"/>, <paramref name="offset"/> + <paramref name="length"/>)
    /// of the mapped file once a copy of them lives elsewhere (a device copied or repacked a weight): the range's
    /// pages leave this process's mapping (<c>madvise MADV_DONTNEED</c>: a later read faults them in from the file
    /// again, so nothing is lost) and the page cache (<c>posix_fadvise POSIX_FADV_DONTNEED</c>: clean pages that no
    /// other process maps are dropped), so that resident memory and page cache together hold one copy of the weights.
    /// Only whole pages inside the range are given back (a page it shares with a neighbouring tensor is left, so that
    /// tensor's reader does not fault it in again and read around it), except that a range reaching the end of the file
    /// takes the last page. Linux only; elsewhere, and for a file from <see cref="Parse"/>, nothing happens. Returns
    /// whether the advice was given.
    /// </summary>
    public bool ReleasePages(long offset, long length)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        if (offset > FileLength - length)
            throw new ArgumentOutOfRangeException(nameof(length), $"[{offset}, {offset + length}) is outside the {FileLength}-byte file");
        if (_stream is null || length == 0 || !OperatingSystem.IsLinux())
            return false;
        byte* basePointer = BasePointer; // throws after Dispose
        long page = Environment.SystemPageSize;
        long start = (offset + page - 1) & ~(page - 1);
        long end = offset + length == FileLength ? FileLength : (offset + length) & ~(page - 1);
        if (end <= start)
            return false;
        // The mapping starts at file offset 0 on a page boundary, so file offsets and mapping offsets agree.
        if (Madvise(basePointer + start, (nuint)(end - start), MadvDontNeed) != 0)
            return false;
        bool added = false;
        _stream.SafeFileHandle.DangerousAddRef(ref added);
        try
        {
            return PosixFadvise((int)_stream.SafeFileHandle.DangerousGetHandle(), start, end - start, PosixFadvDontNeed) == 0;
        }
        finally
        {
            if (added)
                _stream.SafeFileHandle.DangerousRelease();
        }
    }

    private const int MadvDontNeed = 4, PosixFadvDontNeed = 4; // Linux values

    [LibraryImport("libc", EntryPoint = "madvise", SetLastError = true)]
    private static partial int Madvise(void* address, nuint length, int advice);

    [LibraryImport("libc", EntryPoint = "posix_fadvise")]
    private static partial int PosixFadvise(int fd, long offset, long length, int advice);

    /// <summary>Validates a GGUF image held in memory (tests, embedded resources). The bytes are copied once.</summary>
    public static GgufFile Parse(byte[] bytes)
    {
        ArgumentNullException.ThrowIfNull(bytes);
        var result = GgufParser.Parse(bytes, bytes.Length);
        // The pinned object heap never moves arrays, so BasePointer stays valid while this object lives.
        var pinned = GC.AllocateUninitializedArray<byte>(Math.Max(bytes.Length, 1), pinned: true);
        bytes.CopyTo(pinned, 0);
        byte* p = (byte*)System.Runtime.CompilerServices.Unsafe.AsPointer(ref pinned[0]);
        return new GgufFile(result, bytes.Length, p, null, null, pinned);
    }

    /// <summary>Unmaps the file. Pointers and spans from this object become invalid. Idempotent.</summary>
    public void Dispose()
    {
        if (_base == null)
            return;
        _base = null;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
        GC.KeepAlive(_pinned);
    }
}
