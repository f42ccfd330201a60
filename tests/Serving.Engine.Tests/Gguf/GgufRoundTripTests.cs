using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tests.Gguf;

/// <summary>GgufWriter → GgufFile: every value type, every weight type, alignment, padding, progress.</summary>
public sealed class GgufRoundTripTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("gguf-rt-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static float[] Ramp(int n, float scale) => Enumerable.Range(0, n).Select(i => MathF.Sin(i * 0.37f) * scale).ToArray();

    [Fact]
    public void Every_value_type_round_trips_in_order()
    {
        var w = new GgufWriter();
        w.Add("u8", (byte)200);
        w.Add("i8", (sbyte)-100);
        w.Add("u16", (ushort)60000);
        w.Add("i16", (short)-30000);
        w.Add("u32", 4000000000u);
        w.Add("i32", -2000000000);
        w.Add("u64", ulong.MaxValue);
        w.Add("i64", long.MinValue);
        w.Add("f32", 1.5f);
        w.Add("f64", Math.PI);
        w.Add("bool", true);
        w.Add("str", "héllo ✓");
        w.Add("strs", new[] { "a", "", "<0x0A>", "▁the" });
        w.Add("floats", new[] { 0.5f, -1e-30f, float.MaxValue });
        w.Add("ints", new[] { 1, -2, int.MaxValue });
        w.Add("u8s", GgufValue.Array(GgufValueType.UInt8, new byte[] { 1, 2, 255 }));
        w.Add("bools", GgufValue.Array(GgufValueType.Bool, new[] { true, false }));
        w.Add("f64s", GgufValue.Array(GgufValueType.Float64, new[] { 0.25, 1e300 }));
        string path = Path.Combine(_dir, "values.gguf");
        w.WriteTo(path);

        using var f = GgufFile.Open(path);
        var m = f.Metadata;
        Assert.Equal(3, f.Version);
        Assert.Equal(["u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64", "f32", "f64", "bool", "str", "strs", "floats", "ints", "u8s", "bools", "f64s"], m.Keys);
        Assert.Equal((byte)200, m["u8"].Value);
        Assert.Equal((sbyte)-100, m["i8"].Value);
        Assert.Equal((ushort)60000, m["u16"].Value);
        Assert.Equal((short)-30000, m["i16"].Value);
        Assert.Equal(4000000000u, m.GetUInt32("u32"));
        Assert.Equal(-2000000000, m["i32"].Value);
        Assert.Equal(ulong.MaxValue, m["u64"].Value);
        Assert.Equal(long.MinValue, m["i64"].Value);
        Assert.Equal(1.5f, m.GetFloat32("f32"));
        Assert.Equal((float)Math.PI, m.GetFloat32("f64"));
        Assert.True(m.GetBool("bool"));
        Assert.Equal("héllo ✓", m.GetString("str"));
        Assert.Equal(["a", "", "<0x0A>", "▁the"], m.GetStringArray("strs"));
        Assert.Equal([0.5f, -1e-30f, float.MaxValue], m.GetFloat32Array("floats"));
        Assert.Equal([1, -2, int.MaxValue], m.GetInt32Array("ints"));
        Assert.Equal([1, 2, 255], m.GetInt32Array("u8s"));
        Assert.Equal(new[] { true, false }, (bool[])m["bools"].Value);
        Assert.Equal([0.25f, float.PositiveInfinity], m.GetFloat32Array("f64s"));
        Assert.Equal(GgufValueType.Array, m.TypeOf("strs"));
        Assert.Equal(GgufValueType.String, m["strs"].ElementType);
        Assert.False(m.Contains("general.alignment"));
        Assert.Equal(32, f.Alignment);
    }

    [Fact]
    public void Typed_getters_name_the_key_when_missing_or_of_the_wrong_type()
    {
        var w = new GgufWriter();
        w.Add("tokenizer.ggml.scores", GgufValue.Array(GgufValueType.Int8, new sbyte[] { 1, 2 }));
        w.Add("neg", -1);
        w.Add("big", 5_000_000_000L);
        w.Add("name", "x");
        w.Add("tokenizer.ggml.bos_token_id", 40000u);
        w.Add("u64s", GgufValue.Array(GgufValueType.UInt64, new ulong[] { 1, 1UL << 40 }));
        var ms = new MemoryStream();
        w.WriteTo(ms);
        using var f = GgufFile.Parse(ms.ToArray());
        var m = f.Metadata;

        var e = Assert.Throws<GgufFormatException>(() => m.GetFloat32Array("tokenizer.ggml.scores"));
        Assert.Equal("tokenizer.ggml.scores", e.Field);
        Assert.Equal(m.OffsetOf("tokenizer.ggml.scores"), e.Offset);
        Assert.True(e.Offset > 0);
        Assert.Contains("Int8", e.Message);
        Assert.Equal([1, 2], m.GetInt32Array("tokenizer.ggml.scores")); // integers widen fine

        Assert.Contains("missing", Assert.Throws<GgufFormatException>(() => m.GetString("general.architecture")).Message);
        Assert.Equal("general.architecture", Assert.Throws<GgufFormatException>(() => m.GetUInt32("general.architecture")).Field);
        Assert.False(m.TryGetUInt32("general.architecture", out _));
        Assert.Throws<GgufFormatException>(() => m.GetUInt32("neg"));
        Assert.Throws<GgufFormatException>(() => m.GetUInt32("big"));
        Assert.Throws<GgufFormatException>(() => m.GetUInt32("name"));
        Assert.Throws<GgufFormatException>(() => m.TryGetString("neg", out _));
        Assert.Throws<GgufFormatException>(() => m.GetBool("name"));
        Assert.Throws<GgufFormatException>(() => m.GetFloat32("name"));
        Assert.Throws<GgufFormatException>(() => m.GetStringArray("name"));
        Assert.Contains("element 1", Assert.Throws<GgufFormatException>(() => m.GetInt32Array("u64s")).Message);
        var idx = Assert.Throws<GgufFormatException>(() => m.GetIndex("tokenizer.ggml.bos_token_id", 32000));
        Assert.Contains("40000 is not below 32000", idx.Message);
        Assert.Equal(40000, m.GetIndex("tokenizer.ggml.bos_token_id", 50000));
        Assert.Equal("k", m.Error("k", "bad").Field);
    }

    [Theory]
    [InlineData(DataType.F32)]
    [InlineData(DataType.F16)]
    [InlineData(DataType.BF16)]
    [InlineData(DataType.Q8_0)]
    [InlineData(DataType.Q4_0)]
    public void Tensors_round_trip_with_aligned_offsets(DataType type)
    {
        var a = Ramp(64 * 3, 2f);
        var b = Ramp(32, 0.5f);
        var w = new GgufWriter();
        w.Add("general.architecture", "test");
        w.AddTensor("a", type, [64, 3], a);
        w.AddTensor("norm", DataType.F32, [32], b);
        w.AddTensor("zero", type, [64, 0], Array.Empty<float>());
        string path = Path.Combine(_dir, $"t-{type}.gguf");
        var reports = new List<(long, long)>();
        w.WriteTo(path, new SyncProgress(reports));

        using var f = GgufFile.Open(path);
        Assert.Equal(["a", "norm", "zero"], f.Tensors.Select(t => t.Name));
        var ta = f.GetTensor("a", 64, 3);
        Assert.Equal(type, ta.Type);
        Assert.Equal(3, ta.Rows);
        Assert.Equal(64, ta.RowLength);
        Assert.Equal(type.RowBytes(64) * 3, ta.ByteSize);
        Assert.All(f.Tensors, t => Assert.Equal(0, (t.Offset - f.DataOffset) % 32));
        Assert.Equal(0, f.DataOffset % 32);

        // Bytes on disk are exactly what the quantizer produces.
        var expected = new byte[ta.ByteSize];
        for (int r = 0; r < 3; r++)
            Quantizer.Quantize(type, a.AsSpan(r * 64, 64), expected.AsSpan(r * (int)type.RowBytes(64), (int)type.RowBytes(64)));
        Assert.Equal(expected, f.GetTensorBytes(ta).ToArray());

        var norm = f.GetTensor("norm");
        var back = new float[32];
        Dequantizer.DequantizeRow(DataType.F32, f.GetTensorBytes(norm), back);
        Assert.Equal(b, back);
        Assert.Equal(0, f.GetTensor("zero").ByteSize);

        long total = type.RowBytes(64) * 3 + 128;
        Assert.Equal((total, total), reports[^1]);
        Assert.Equal((0L, total), reports[0]);
        Assert.Equal(new FileInfo(path).Length, f.FileLength);
    }

    [Fact]
    public void Non_default_alignment_is_written_and_used()
    {
        var w = new GgufWriter(alignment: 64);
        w.AddTensor("a", DataType.F32, [3], [1f, 2f, 3f]);
        w.AddTensor("b", DataType.F32, [5], [1f, 2f, 3f, 4f, 5f]);
        var ms = new MemoryStream();
        w.WriteTo(ms);
        using var f = GgufFile.Parse(ms.ToArray());
        Assert.Equal(64u, f.Metadata.GetUInt32("general.alignment"));
        Assert.Equal(64, f.Alignment);
        Assert.Equal(0, f.DataOffset % 64);
        Assert.Equal(f.DataOffset + 64, f.Tensors[1].Offset);
        Assert.Equal(f.Tensors[1].Offset + 20 + 44, f.FileLength); // padded to the alignment with zeros
        Assert.All(ms.ToArray()[(int)(f.DataOffset + 12)..(int)(f.DataOffset + 64)], x => Assert.Equal(0, x));
    }

    [Fact]
    public void Writer_rejects_bad_tensors_and_keys()
    {
        var w = new GgufWriter();
        Assert.Throws<ArgumentException>(() => w.AddTensor(new string('x', 64), DataType.F32, [1], [0f]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("q", DataType.Q8_0, [33], new float[33]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("d", DataType.F32, [1, 1, 1, 1, 1], new float[1]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("n", DataType.F32, [2], new float[3]));
        Assert.Throws<ArgumentException>(() => w.AddTensor("b", DataType.F32, [2], new byte[7].AsMemory()));
        w.AddTensor("ok", DataType.F32, [1], [0f]);
        Assert.Throws<ArgumentException>(() => w.AddTensor("ok", DataType.F32, [1], [0f]));
        w.Add("k", 1u);
        Assert.Throws<ArgumentException>(() => w.Add("k", 2u));
        Assert.Throws<ArgumentException>(() => w.Add("", 2u));
        Assert.Throws<ArgumentException>(() => w.Add("general.alignment", 64u));
        Assert.Throws<ArgumentOutOfRangeException>(() => new GgufWriter(48));
        Assert.Throws<ArgumentException>(() => GgufValue.Array(GgufValueType.Float32, new int[1]));
    }

    [Fact]
    public void Row_sources_are_called_in_order_with_whole_rows()
    {
        var w = new GgufWriter();
        var calls = new List<(long, int)>();
        w.AddTensor("big", DataType.Q8_0, [4096, 2000], (first, dst) =>
        {
            calls.Add((first, dst.Length));
            dst.Fill((byte)first);
        });
        var ms = new MemoryStream();
        w.WriteTo(ms);
        long rowBytes = DataType.Q8_0.RowBytes(4096);
        Assert.True(calls.Count > 1, "an 8.7 MB tensor is produced in several chunks");
        long next = 0;
        foreach (var (first, len) in calls)
        {
            Assert.Equal(next, first);
            Assert.Equal(0, len % rowBytes);
            next += len / rowBytes;
        }
        Assert.Equal(2000, next);
        using var f = GgufFile.Parse(ms.ToArray());
        var bytes = f.GetTensorBytes(f.Tensors[0]);
        Assert.Equal((byte)calls[1].Item1, bytes[(int)(calls[1].Item1 * rowBytes)]);
    }

    [Fact]
    public void Version_2_files_parse()
    {
        var bytes = new GgufBytes().Header(version: 2, tensors: 1, kvs: 1).KvStr("general.architecture", "llama")
            .Tensor("w", 0, 0, 2).PadTo(32).F32(1f).F32(2f).ToArray();
        using var f = GgufFile.Parse(bytes);
        Assert.Equal(2, f.Version);
        Assert.Equal("llama", f.Metadata.GetString("general.architecture"));
        Assert.Null(f.FindTensor("missing"));
        Assert.Equal("tensor 'missing'", Assert.Throws<GgufFormatException>(() => f.GetTensor("missing")).Field);
        Assert.Contains("expected [3]", Assert.Throws<GgufFormatException>(() => f.GetTensor("w", 3)).Message);
    }

    [Fact]
    public void Disposed_file_refuses_access()
    {
        var f = GgufFile.Parse(new GgufBytes().Header(tensors: 1).Tensor("w", 0, 0, 2).PadTo(32).Zeros(8).ToArray());
        var t = f.Tensors[0];
        f.Dispose();
        f.Dispose();
        Assert.Throws<ObjectDisposedException>(() => f.GetTensorBytes(t).Length);
    }

    /// <summary>Records reports synchronously (Progress&lt;T&gt; posts them to the thread pool).</summary>
    private sealed class SyncProgress(List<(long, long)> into) : IProgress<(long done, long total)>
    {
        public void Report((long done, long total) value) => into.Add(value);
    }
}
