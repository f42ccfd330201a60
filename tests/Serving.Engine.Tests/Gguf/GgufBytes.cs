using System.Buffers.Binary;
using System.Text;

namespace Serving.Engine.Tests.Gguf;

/// <summary>
/// Builds GGUF images byte by byte, so tests can write exactly the malformed field they mean to.
/// All numbers little-endian. <see cref="Position"/> is the offset the next write lands at.
/// </summary>
internal sealed class GgufBytes
{
    private readonly MemoryStream _s = new();

    public long Position => _s.Position;

    public GgufBytes Raw(params byte[] b) { _s.Write(b); return this; }
    public GgufBytes U8(byte v) => Raw(v);
    public GgufBytes U32(uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); _s.Write(b); return this; }
    public GgufBytes I32(int v) => U32((uint)v);
    public GgufBytes U64(ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); _s.Write(b); return this; }
    public GgufBytes I64(long v) => U64((ulong)v);
    public GgufBytes F32(float v) => U32(BitConverter.SingleToUInt32Bits(v));
    public GgufBytes Str(string s) { var b = Encoding.UTF8.GetBytes(s); U64((ulong)b.Length); return Raw(b); }

    /// <summary>"GGUF", version, tensor count, kv count.</summary>
    public GgufBytes Header(uint version = 3, ulong tensors = 0, ulong kvs = 0) =>
        Raw("GGUF"u8.ToArray()).U32(version).U64(tensors).U64(kvs);

    public GgufBytes KvU32(string key, uint v) => Str(key).U32(4).U32(v);
    public GgufBytes KvI32(string key, int v) => Str(key).U32(5).I32(v);
    public GgufBytes KvStr(string key, string v) => Str(key).U32(8).Str(v);

    /// <summary>A tensor info: name, n_dims, dims, ggml type, offset relative to the data section.</summary>
    public GgufBytes Tensor(string name, uint type, ulong offset, params long[] dims)
    {
        Str(name).U32((uint)dims.Length);
        foreach (long d in dims)
            I64(d);
        return U32(type).U64(offset);
    }

    /// <summary>Zero bytes up to the next multiple of <paramref name="alignment"/> (the data section start).</summary>
    public GgufBytes PadTo(int alignment)
    {
        while (_s.Position % alignment != 0)
            _s.WriteByte(0);
        return this;
    }

    public GgufBytes Zeros(int n) => Raw(new byte[n]);

    public byte[] ToArray() => _s.ToArray();
}
