using System.Buffers;
using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using Serving.Abstractions;
using Serving.Engine.Quantization;

namespace Serving.Engine.Gguf;

/// <summary>
/// Produces the bytes of consecutive whole rows of a tensor: <paramref name="destination"/> holds rows
/// <paramref name="firstRow"/>, firstRow + 1, … in the tensor's type (destination.Length / row bytes of them).
/// Called in increasing row order; must fill every byte. May use several threads internally.
/// </summary>
public delegate void GgufRowSource(long firstRow, Span<byte> destination);

/// <summary>
/// Builds a GGUF v3 file that llama.cpp loads unchanged: metadata in insertion order, tensors in insertion
/// order packed at increasing offsets (relative to the data section, each padded with zeros to the alignment).
/// Tensor data is pulled from callbacks chunk by chunk while writing, so a multi-GB model streams to disk
/// without being held in memory. general.alignment is written only when it is not the default 32.
/// Not thread-safe.
/// </summary>
public sealed class GgufWriter
{
    private const int ChunkBytes = 8 << 20; // rows are produced in chunks of about this size

    private readonly List<(string Key, GgufValue Value)> _metadata = new();
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly List<PendingTensor> _tensors = new();
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    private sealed record PendingTensor(string Name, DataType Type, long[] Dims, long Rows, long RowBytes, GgufRowSource Source)
    {
        public long ByteSize => Rows * RowBytes;
    }

    /// <summary>Creates a writer whose tensor data is aligned to <paramref name="alignment"/> bytes (a power of two).</summary>
    public GgufWriter(int alignment = GgufParser.DefaultAlignment)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "alignment must be a power of two");
        Alignment = alignment;
        if (alignment != GgufParser.DefaultAlignment)
            AddValue("general.alignment", GgufValue.Scalar(GgufValueType.UInt32, (uint)alignment));
    }

    /// <summary>Data alignment in bytes.</summary>
    public int Alignment { get; }

    /// <summary>Adds a metadata value of any type. Keys must be non-empty and unique.</summary>
    public void Add(string key, GgufValue value)
    {
        if (key == "general.alignment")
            throw new ArgumentException("general.alignment is set through the GgufWriter constructor", nameof(key));
        AddValue(key, value);
    }

    private void AddValue(string key, GgufValue value)
    {
        ArgumentException.ThrowIfNullOrEmpty(key);
        ArgumentNullException.ThrowIfNull(value);
        if (!_keys.Add(key))
            throw new ArgumentException($"duplicate metadata key '{key}'", nameof(key));
        _metadata.Add((key, value));
    }

    /// <summary>Adds a string value.</summary>
    public void Add(string key, string value) => Add(key, GgufValue.Scalar(GgufValueType.String, value));
    /// <summary>Adds a bool value.</summary>
    public void Add(string key, bool value) => Add(key, GgufValue.Scalar(GgufValueType.Bool, value));
    /// <summary>Adds a uint8 value.</summary>
    public void Add(string key, byte value) => Add(key, GgufValue.Scalar(GgufValueType.UInt8, value));
    /// <summary>Adds an int8 value.</summary>
    public void Add(string key, sbyte value) => Add(key, GgufValue.Scalar(GgufValueType.Int8, value));
    /// <summary>Adds a uint16 value.</summary>
    public void Add(string key, ushort value) => Add(key, GgufValue.Scalar(GgufValueType.UInt16, value));
    /// <summary>Adds an int16 value.</summary>
    public void Add(string key, short value) => Add(key, GgufValue.Scalar(GgufValueType.Int16, value));
    /// <summary>Adds a uint32 value (the type llama.cpp expects for counts and token ids).</summary>
    public void Add(string key, uint value) => Add(key, GgufValue.Scalar(GgufValueType.UInt32, value));
    /// <summary>Adds an int32 value.</summary>
    public void Add(string key, int value) => Add(key, GgufValue.Scalar(GgufValueType.Int32, value));
    /// <summary>Adds a uint64 value.</summary>
    public void Add(string key, ulong value) => Add(key, GgufValue.Scalar(GgufValueType.UInt64, value));
    /// <summary>Adds an int64 value.</summary>
    public void Add(string key, long value) => Add(key, GgufValue.Scalar(GgufValueType.Int64, value));
    /// <summary>Adds a float32 value.</summary>
    public void Add(string key, float value) => Add(key, GgufValue.Scalar(GgufValueType.Float32, value));
    /// <summary>Adds a float64 value.</summary>
    public void Add(string key, double value) => Add(key, GgufValue.Scalar(GgufValueType.Float64, value));
    /// <summary>Adds a string array (kept by reference until written).</summary>
    public void Add(string key, string[] values) => Add(key, GgufValue.Array(GgufValueType.String, values));
    /// <summary>Adds a float32 array (kept by reference until written).</summary>
    public void Add(string key, float[] values) => Add(key, GgufValue.Array(GgufValueType.Float32, values));
    /// <summary>Adds an int32 array (kept by reference until written).</summary>
    public void Add(string key, int[] values) => Add(key, GgufValue.Array(GgufValueType.Int32, values));

    /// <summary>
    /// Adds a tensor whose rows <paramref name="source"/> produces while <see cref="WriteTo(string, IProgress{ValueTuple{long, long}}?)"/>
    /// runs. <paramref name="dims"/> are ggml order (ne0 = row length first), 1 to 4 of them, each ≥ 0; the row
    /// length must be a multiple of the type's block size; the name 1–63 UTF-8 bytes and unique.
    /// </summary>
    public void AddTensor(string name, DataType type, long[] dims, GgufRowSource source)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        ArgumentNullException.ThrowIfNull(dims);
        ArgumentNullException.ThrowIfNull(source);
        if (Encoding.UTF8.GetByteCount(name) > GgufParser.MaxNameBytes)
            throw new ArgumentException($"tensor name '{name}' is longer than {GgufParser.MaxNameBytes} bytes", nameof(name));
        if (!Enum.IsDefined(type))
            throw new ArgumentOutOfRangeException(nameof(type), type, "unknown data type");
        if (dims.Length is 0 or > GgufParser.MaxDims)
            throw new ArgumentException($"a tensor has 1 to {GgufParser.MaxDims} dims, got {dims.Length}", nameof(dims));
        long rows = 1;
        for (int i = 0; i < dims.Length; i++)
        {
            if (dims[i] < 0)
                throw new ArgumentOutOfRangeException(nameof(dims), dims[i], "dims must be non-negative");
            if (i > 0)
                rows = checked(rows * dims[i]);
        }
        long rowBytes = type.RowBytes(dims[0]); // throws when not a whole number of blocks
        _ = checked(rows * rowBytes);
        if (rowBytes > int.MaxValue)
            throw new ArgumentException($"tensor '{name}' rows of {rowBytes} bytes are too long", nameof(dims));
        if (!_names.Add(name))
            throw new ArgumentException($"duplicate tensor name '{name}'", nameof(name));
        _tensors.Add(new PendingTensor(name, type, (long[])dims.Clone(), rows, rowBytes, source));
    }

    /// <summary>Adds a tensor from its bytes in the given type (held by reference until written).</summary>
    public void AddTensor(string name, DataType type, long[] dims, ReadOnlyMemory<byte> data)
    {
        ArgumentNullException.ThrowIfNull(dims);
        long expected = dims.Length == 0 ? 0 : ExpectedBytes(type, dims);
        if (data.Length != expected)
            throw new ArgumentException($"tensor '{name}' needs {expected} bytes, got {data.Length}", nameof(data));
        long rowBytes = dims.Length == 0 ? 0 : type.RowBytes(dims[0]);
        AddTensor(name, type, dims, (first, dst) => data.Span.Slice((int)(first * rowBytes), dst.Length).CopyTo(dst));
    }

    /// <summary>
    /// Adds a tensor from float values (row-major, ggml order), converted/quantized to <paramref name="type"/>
    /// with <see cref="Quantizer"/> while writing. The array is held by reference until written.
    /// </summary>
    public void AddTensor(string name, DataType type, long[] dims, float[] values)
    {
        ArgumentNullException.ThrowIfNull(dims);
        ArgumentNullException.ThrowIfNull(values);
        long elements = 1;
        foreach (long d in dims)
            elements = checked(elements * d);
        if (values.Length != elements)
            throw new ArgumentException($"tensor '{name}' has {elements} elements, got {values.Length} values", nameof(values));
        long rowLength = dims.Length == 0 ? 0 : dims[0];
        long rowBytes = dims.Length == 0 ? 0 : type.RowBytes(dims[0]);
        AddTensor(name, type, dims, (first, dst) =>
        {
            long rows = rowBytes == 0 ? 0 : dst.Length / rowBytes;
            for (long r = 0; r < rows; r++)
                Quantizer.Quantize(type, values.AsSpan((int)((first + r) * rowLength), (int)rowLength),
                    dst.Slice((int)(r * rowBytes), (int)rowBytes));
        });
    }

    private static long ExpectedBytes(DataType type, long[] dims)
    {
        long rows = 1;
        for (int i = 1; i < dims.Length; i++)
            rows = checked(rows * dims[i]);
        return checked(rows * type.RowBytes(dims[0]));
    }

    /// <summary>Total bytes of tensor data (without padding).</summary>
    public long TensorBytes => _tensors.Sum(t => t.ByteSize);

    /// <summary>
    /// Writes the file to <paramref name="path"/> (via a temporary file renamed at the end, so a failed or
    /// cancelled write never leaves a truncated model under the final name). <paramref name="progress"/> gets
    /// (tensor bytes written, total tensor bytes) after each chunk.
    /// </summary>
    public void WriteTo(string path, IProgress<(long done, long total)>? progress = null)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        string tmp = path + ".tmp";
        try
        {
            using (var fs = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20))
            {
                WriteTo(fs, progress);
                fs.Flush();
            }
            File.Move(tmp, path, overwrite: true);
        }
        catch
        {
            try { File.Delete(tmp); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            throw;
        }
    }

    /// <summary>Writes the file to <paramref name="stream"/> from its current position (which is taken as offset 0).</summary>
    public void WriteTo(Stream stream, IProgress<(long done, long total)>? progress = null)
    {
        ArgumentNullException.ThrowIfNull(stream);
        var header = new ArrayBufferWriter<byte>(1 << 16);
        WriteU32(header, GgufParser.Magic);
        WriteU32(header, 3);
        WriteU64(header, (ulong)_tensors.Count);
        WriteU64(header, (ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(header, key);
            WriteValue(header, value);
        }
        long offset = 0;
        foreach (var t in _tensors)
        {
            WriteString(header, t.Name);
            WriteU32(header, (uint)t.Dims.Length);
            foreach (long d in t.Dims)
                WriteU64(header, (ulong)d);
            WriteU32(header, (uint)t.Type);
            WriteU64(header, (ulong)offset);
            offset = Pad(offset + t.ByteSize);
        }
        stream.Write(header.WrittenSpan);
        WriteZeros(stream, Pad(header.WrittenCount) - header.WrittenCount);

        long total = TensorBytes, done = 0;
        progress?.Report((0, total));
        foreach (var t in _tensors)
        {
            if (t.ByteSize == 0)
                continue;
            long rowsPerChunk = Math.Clamp(ChunkBytes / t.RowBytes, 1, t.Rows);
            byte[] buffer = ArrayPool<byte>.Shared.Rent((int)(rowsPerChunk * t.RowBytes));
            try
            {
                for (long row = 0; row < t.Rows; row += rowsPerChunk)
                {
                    int n = (int)(Math.Min(rowsPerChunk, t.Rows - row) * t.RowBytes);
                    var chunk = buffer.AsSpan(0, n);
                    chunk.Clear(); // a source that skips bytes must not leak earlier data into the file
                    t.Source(row, chunk);
                    stream.Write(chunk);
                    done += n;
                    progress?.Report((done, total));
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            WriteZeros(stream, Pad(t.ByteSize) - t.ByteSize);
        }
    }

    private long Pad(long x) => (x + Alignment - 1) / Alignment * Alignment;

    private static void WriteZeros(Stream s, long n)
    {
        Span<byte> zeros = stackalloc byte[256];
        zeros.Clear();
        while (n > 0)
        {
            int k = (int)Math.Min(n, zeros.Length);
            s.Write(zeros[..k]);
            n -= k;
        }
    }

    private static void WriteU32(IBufferWriter<byte> w, uint v)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(w.GetSpan(4), v);
        w.Advance(4);
    }

    private static void WriteU64(IBufferWriter<byte> w, ulong v)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(w.GetSpan(8), v);
        w.Advance(8);
    }

    private static void WriteString(IBufferWriter<byte> w, string s)
    {
        int n = Encoding.UTF8.GetByteCount(s);
        WriteU64(w, (ulong)n);
        Encoding.UTF8.GetBytes(s, w.GetSpan(n));
        w.Advance(n);
    }

    private static void WriteValue(IBufferWriter<byte> w, GgufValue v)
    {
        WriteU32(w, (uint)v.Type);
        if (!v.IsArray)
        {
            WriteScalar(w, v.Value);
            return;
        }
        WriteU32(w, (uint)v.ElementType);
        var array = (Array)v.Value;
        WriteU64(w, (ulong)array.Length);
        switch (array)
        {
            case string[] strings:
                foreach (var s in strings)
                    WriteString(w, s);
                break;
            case bool[] bools:
                foreach (bool b in bools)
                    WriteScalar(w, b);
                break;
            default:
                // Fixed-size numbers: the host is little-endian (checked by the reader), so raw bytes are the format.
                WriteRaw(w, array);
                break;
        }
    }

    private static void WriteRaw(IBufferWriter<byte> w, Array array)
    {
        ReadOnlySpan<byte> bytes = array switch
        {
            byte[] a => a,
            sbyte[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            ushort[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            short[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            uint[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            int[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            float[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            ulong[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            long[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            double[] a => MemoryMarshal.AsBytes(a.AsSpan()),
            _ => throw new InvalidOperationException($"unexpected array type {array.GetType()}"),
        };
        w.Write(bytes);
    }

    private static void WriteScalar(IBufferWriter<byte> w, object value)
    {
        switch (value)
        {
            case string s: WriteString(w, s); break;
            case bool b: w.Write([(byte)(b ? 1 : 0)]); break;
            case byte x: w.Write([x]); break;
            case sbyte x: w.Write([(byte)x]); break;
            case ushort x: BinaryPrimitives.WriteUInt16LittleEndian(w.GetSpan(2), x); w.Advance(2); break;
            case short x: BinaryPrimitives.WriteInt16LittleEndian(w.GetSpan(2), x); w.Advance(2); break;
            case uint x: WriteU32(w, x); break;
            case int x: BinaryPrimitives.WriteInt32LittleEndian(w.GetSpan(4), x); w.Advance(4); break;
            case float x: BinaryPrimitives.WriteSingleLittleEndian(w.GetSpan(4), x); w.Advance(4); break;
            case ulong x: WriteU64(w, x); break;
            case long x: BinaryPrimitives.WriteInt64LittleEndian(w.GetSpan(8), x); w.Advance(8); break;
            case double x: BinaryPrimitives.WriteDoubleLittleEndian(w.GetSpan(8), x); w.Advance(8); break;
            default: throw new InvalidOperationException($"unexpected value type {value.GetType()}");
        }
    }
}
