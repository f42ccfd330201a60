using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;

namespace Serving.Engine.Gguf;

/// <summary>
/// Reads and validates a GGUF header (magic, version, counts, metadata, tensor infos) from the first bytes of a
/// file. Every count, length and offset is checked against the bytes remaining before anything is allocated.
/// Tensor data layout rules (documented on <see cref="GgufFile"/>): offsets aligned, tensors in increasing
/// offset order without overlap (gaps allowed), every tensor inside the file.
/// </summary>
internal static class GgufParser
{
    /// <summary>"GGUF" read as a little-endian uint32.</summary>
    public const uint Magic = 0x46554747;

    /// <summary>Alignment when general.alignment is absent.</summary>
    public const int DefaultAlignment = 32;

    /// <summary>GGML_MAX_NAME = 64 includes the terminating NUL, so names hold at most 63 bytes.</summary>
    public const int MaxNameBytes = 63;

    /// <summary>GGML_MAX_DIMS.</summary>
    public const int MaxDims = 4;

    // Smallest possible encodings, used to bound counts before allocating: a kv is key length (8) + a
    // one-byte key + type (4) + a one-byte value; a tensor info is name length (8) + a one-byte name +
    // n_dims (4) + one dim (8) + type (4) + offset (8).
    private const int MinKvBytes = 8 + 1 + 4 + 1;
    private const int MinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;

    private static readonly UTF8Encoding StrictUtf8 = new(false, true);

    internal sealed record Result(int Version, long Alignment, long DataOffset, GgufMetadata Metadata, List<GgufTensorInfo> Tensors);

    /// <summary>
    /// Parses the header in <paramref name="header"/> (the file's first bytes, up to 2 GiB) of a file that is
    /// <paramref name="fileLength"/> bytes long.
    /// </summary>
    public static Result Parse(ReadOnlySpan<byte> header, long fileLength)
    {
        if (!BitConverter.IsLittleEndian)
            throw new PlatformNotSupportedException("GGUF reading needs a little-endian host");
        var c = new Cursor(header);

        if (header.Length < 4)
            throw new GgufFormatException("magic", 0, $"file is {fileLength} bytes, too short for a GGUF header");
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(header);
        if (magic != Magic)
            throw new GgufFormatException("magic", 0, $"expected 'GGUF' (47 47 55 46), found {Convert.ToHexString(header[..4])}");
        c.Position = 4;

        long at = c.Position;
        uint version = c.U32("version");
        if (version == 0 || version == 1)
            throw new GgufFormatException("version", at, $"GGUF version {version} is not supported (only 2 and 3)");
        if ((version & 0xFFFF) == 0)
            throw new GgufFormatException("version", at,
                $"version 0x{version:X8} looks byte-swapped: big-endian GGUF files are not supported");
        if (version > 3)
            throw new GgufFormatException("version", at, $"GGUF version {version} is newer than this reader (2 and 3)");

        at = c.Position;
        long tensorCount = c.Count("tensor_count", MinTensorInfoBytes);
        long kvCount = c.Count("metadata_kv_count", MinKvBytes);
        // Both sections share the remaining bytes.
        if (tensorCount * MinTensorInfoBytes + kvCount * MinKvBytes > c.Remaining)
            throw new GgufFormatException("tensor_count", at,
                $"{tensorCount} tensors and {kvCount} keys cannot fit in the {c.Remaining} bytes that remain");

        var metadata = new GgufMetadata();
        for (long i = 0; i < kvCount; i++)
        {
            long keyAt = c.Position;
            string key = c.Str($"metadata[{i}].key", strict: true);
            if (key.Length == 0)
                throw new GgufFormatException($"metadata[{i}].key", keyAt, "key is empty");
            var value = ReadValue(ref c, key);
            if (!metadata.TryAdd(key, value))
                throw new GgufFormatException(key, keyAt, $"duplicate key '{key}'");
        }

        long alignment = DefaultAlignment;
        if (metadata.TryGetValue("general.alignment", out var alignValue))
        {
            if (alignValue.Value is not uint a)
                throw new GgufFormatException("general.alignment", alignValue.Offset,
                    $"must be a UInt32, found {(alignValue.IsArray ? "an array" : alignValue.Type.ToString())}");
            if (a == 0 || (a & (a - 1)) != 0)
                throw new GgufFormatException("general.alignment", alignValue.Offset, $"alignment {a} is not a power of two");
            alignment = a;
        }

        var tensors = new List<GgufTensorInfo>((int)Math.Min(tensorCount, 1 << 16));
        var names = new HashSet<string>(StringComparer.Ordinal);
        var relative = new List<(long Offset, long At)>(tensors.Capacity);
        for (long i = 0; i < tensorCount; i++)
        {
            long nameAt = c.Position;
            string field = $"tensors[{i}].name";
            ulong nameBytes = c.PeekU64(field);
            if (nameBytes > MaxNameBytes)
                throw new GgufFormatException(field, nameAt, $"tensor name is {nameBytes} bytes; at most {MaxNameBytes} allowed (GGML_MAX_NAME 64 with NUL)");
            string name = c.Str(field, strict: true);
            if (name.Length == 0)
                throw new GgufFormatException(field, nameAt, "tensor name is empty");
            if (!names.Add(name))
                throw new GgufFormatException(field, nameAt, $"duplicate tensor name '{name}'");

            long dimsAt = c.Position;
            uint nDims = c.U32($"tensor '{name}' n_dims");
            if (nDims == 0 || nDims > MaxDims)
                throw new GgufFormatException($"tensor '{name}' n_dims", dimsAt, $"n_dims is {nDims}; must be 1 to {MaxDims}");
            var dims = new long[nDims];
            for (int d = 0; d < nDims; d++)
            {
                long dimAt = c.Position;
                ulong raw = c.U64($"tensor '{name}' dims[{d}]");
                if (raw > long.MaxValue)
                    throw new GgufFormatException($"tensor '{name}' dims[{d}]", dimAt, $"dimension {(long)raw} is negative");
                dims[d] = (long)raw;
            }

            long typeAt = c.Position;
            uint type = c.U32($"tensor '{name}' type");
            if (type > int.MaxValue || !GgmlTypes.TryGet((int)type, out var traits))
                throw new GgufFormatException($"tensor '{name}' type", typeAt, $"unsupported tensor type {type}");

            long elements = 1;
            foreach (long d in dims)
            {
                if (d != 0 && elements > long.MaxValue / d)
                    throw new GgufFormatException($"tensor '{name}' dims", dimsAt,
                        $"element count of [{string.Join(", ", dims)}] overflows 64 bits");
                elements *= d;
            }
            if (dims[0] % traits.BlockSize != 0)
                throw new GgufFormatException($"tensor '{name}' dims[0]", dimsAt + 4,
                    $"row length {dims[0]} of a {traits.Name} tensor is not a multiple of its block size {traits.BlockSize}");
            long blocks = elements / traits.BlockSize;
            if (blocks != 0 && traits.BlockBytes > long.MaxValue / blocks)
                throw new GgufFormatException($"tensor '{name}' dims", dimsAt,
                    $"byte size of [{string.Join(", ", dims)}] {traits.Name} overflows 64 bits");
            long byteSize = blocks * traits.BlockBytes;

            long offsetAt = c.Position;
            ulong rel = c.U64($"tensor '{name}' offset");
            if (rel > long.MaxValue)
                throw new GgufFormatException($"tensor '{name}' offset", offsetAt, $"offset {rel} is past the end of the file ({fileLength} bytes)");
            tensors.Add(new GgufTensorInfo(name, (int)type, dims, (long)rel, byteSize));
            relative.Add(((long)rel, offsetAt));
        }

        long headerEnd = c.Position;
        long dataOffset = (headerEnd + alignment - 1) / alignment * alignment;

        // Place tensors: aligned, increasing and non-overlapping in file order (llama.cpp's own writer packs
        // them in order; a reordered or overlapping table is a corrupt or hostile file), inside the file.
        long previousEnd = 0;
        string? previousName = null;
        for (int i = 0; i < tensors.Count; i++)
        {
            var t = tensors[i];
            var (rel, relAt) = relative[i];
            string field = $"tensor '{t.Name}' offset";
            if (rel % alignment != 0)
                throw new GgufFormatException(field, relAt, $"offset {rel} is not a multiple of the alignment {alignment}");
            if (rel < previousEnd)
                throw new GgufFormatException(field, relAt,
                    tensors[i - 1].Offset - dataOffset > rel
                        ? $"offset {rel} is before the previous tensor '{previousName}' (tensors must be in increasing offset order)"
                        : $"tensor at {rel} overlaps the previous tensor '{previousName}', which ends at {previousEnd}");
            long absolute = dataOffset + rel;
            if (absolute < dataOffset || absolute > fileLength || t.ByteSize > fileLength - absolute)
                throw new GgufFormatException(field, relAt,
                    $"data [{rel}, +{t.ByteSize}) relative to {dataOffset} ends past the end of the file ({fileLength} bytes)");
            previousEnd = rel + t.ByteSize;
            previousName = t.Name;
            tensors[i] = new GgufTensorInfo(t.Name, t.GgmlType, t.Dims, absolute, t.ByteSize);
        }

        return new Result((int)version, alignment, dataOffset, metadata, tensors);
    }

    private static GgufValue ReadValue(ref Cursor c, string key)
    {
        long at = c.Position;
        var type = (GgufValueType)c.U32(key);
        if (!GgufValue.IsDefined(type))
            throw new GgufFormatException(key, at, $"unknown value type {(uint)type}");
        if (type != GgufValueType.Array)
            return GgufValue.Scalar(type, ReadScalar(ref c, key, type), at);

        long elementAt = c.Position;
        var elementType = (GgufValueType)c.U32(key);
        if (elementType == GgufValueType.Array)
            throw new GgufFormatException(key, elementAt, "arrays of arrays are not supported");
        if (!GgufValue.IsDefined(elementType))
            throw new GgufFormatException(key, elementAt, $"unknown array element type {(uint)elementType}");
        int minSize = elementType == GgufValueType.String ? 8 : GgufValue.FixedSize(elementType);
        long countAt = c.Position;
        ulong count = c.U64(key);
        if (count > (ulong)(c.Remaining / minSize) || count > int.MaxValue)
            throw new GgufFormatException(key, countAt,
                $"array of {count} {elementType} elements needs at least {(count > long.MaxValue / (ulong)minSize ? "more than 2^63" : (count * (ulong)minSize).ToString())} bytes but {c.Remaining} remain");
        int n = (int)count;
        System.Array values = elementType switch
        {
            GgufValueType.UInt8 => c.Fixed<byte>(key, n),
            GgufValueType.Int8 => c.Fixed<sbyte>(key, n),
            GgufValueType.UInt16 => c.Fixed<ushort>(key, n),
            GgufValueType.Int16 => c.Fixed<short>(key, n),
            GgufValueType.UInt32 => c.Fixed<uint>(key, n),
            GgufValueType.Int32 => c.Fixed<int>(key, n),
            GgufValueType.Float32 => c.Fixed<float>(key, n),
            GgufValueType.UInt64 => c.Fixed<ulong>(key, n),
            GgufValueType.Int64 => c.Fixed<long>(key, n),
            GgufValueType.Float64 => c.Fixed<double>(key, n),
            GgufValueType.Bool => ReadBools(ref c, key, n),
            _ => ReadStrings(ref c, key, n),
        };
        return GgufValue.Array(elementType, values, at);
    }

    private static bool[] ReadBools(ref Cursor c, string key, int n)
    {
        var r = new bool[n];
        for (int i = 0; i < n; i++)
            r[i] = c.Bool(key);
        return r;
    }

    private static string[] ReadStrings(ref Cursor c, string key, int n)
    {
        var r = new string[n];
        for (int i = 0; i < n; i++)
            r[i] = c.Str(key, strict: false);
        return r;
    }

    private static object ReadScalar(ref Cursor c, string key, GgufValueType type) => type switch
    {
        GgufValueType.UInt8 => c.Fixed<byte>(key),
        GgufValueType.Int8 => c.Fixed<sbyte>(key),
        GgufValueType.UInt16 => c.Fixed<ushort>(key),
        GgufValueType.Int16 => c.Fixed<short>(key),
        GgufValueType.UInt32 => c.Fixed<uint>(key),
        GgufValueType.Int32 => c.Fixed<int>(key),
        GgufValueType.Float32 => c.Fixed<float>(key),
        GgufValueType.UInt64 => c.Fixed<ulong>(key),
        GgufValueType.Int64 => c.Fixed<long>(key),
        GgufValueType.Float64 => c.Fixed<double>(key),
        GgufValueType.Bool => c.Bool(key),
        _ => c.Str(key, strict: false),
    };

    /// <summary>A bounds-checked little-endian reader over the header bytes; positions are absolute file offsets.</summary>
    private ref struct Cursor
    {
        private readonly ReadOnlySpan<byte> _data;

        public Cursor(ReadOnlySpan<byte> data)
        {
            _data = data;
            Position = 0;
        }

        public int Position;

        public readonly long Remaining => _data.Length - Position;

        private readonly void Need(long bytes, string field)
        {
            if (bytes > Remaining)
                throw new GgufFormatException(field, Position,
                    $"needs {bytes} bytes but only {Remaining} remain (file truncated or length corrupt)");
        }

        public uint U32(string field) => Fixed<uint>(field);

        public ulong U64(string field) => Fixed<ulong>(field);

        public readonly ulong PeekU64(string field)
        {
            Need(8, field);
            return BinaryPrimitives.ReadUInt64LittleEndian(_data[Position..]);
        }

        /// <summary>A uint64 count that must be non-negative as int64 and fit the remaining bytes at minBytes each.</summary>
        public long Count(string field, int minBytes)
        {
            long at = Position;
            ulong n = U64(field);
            if (n > long.MaxValue)
                throw new GgufFormatException(field, at, $"count {(long)n} is negative");
            if (n > (ulong)(Remaining / minBytes))
                throw new GgufFormatException(field, at,
                    $"count {n} needs at least {minBytes} bytes each but only {Remaining} bytes remain");
            return (long)n;
        }

        public T Fixed<T>(string field) where T : unmanaged
        {
            int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            Need(size, field);
            T v = MemoryMarshal.Read<T>(_data.Slice(Position, size));
            Position += size;
            return v;
        }

        public T[] Fixed<T>(string field, int n) where T : unmanaged
        {
            int size = System.Runtime.CompilerServices.Unsafe.SizeOf<T>();
            Need((long)n * size, field);
            var r = MemoryMarshal.Cast<byte, T>(_data.Slice(Position, n * size)).ToArray();
            Position += n * size;
            return r;
        }

        public bool Bool(string field)
        {
            long at = Position;
            byte b = Fixed<byte>(field);
            if (b > 1)
                throw new GgufFormatException(field, at, $"bool byte is {b}; must be 0 or 1");
            return b == 1;
        }

        public string Str(string field, bool strict)
        {
            long at = Position;
            ulong len = U64(field);
            if (len > (ulong)Remaining)
                throw new GgufFormatException(field, at, $"string of {len} bytes is longer than the {Remaining} bytes that remain");
            var bytes = _data.Slice(Position, (int)len);
            Position += (int)len;
            if (!strict)
                return Encoding.UTF8.GetString(bytes);
            try
            {
                return StrictUtf8.GetString(bytes);
            }
            catch (DecoderFallbackException)
            {
                throw new GgufFormatException(field, at, "string is not valid UTF-8");
            }
        }
    }
}
