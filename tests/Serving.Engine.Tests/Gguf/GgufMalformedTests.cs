using Serving.Engine.Gguf;

namespace Serving.Engine.Tests.Gguf;

/// <summary>Every malformed case of docs/testing.md's GGUF list: a typed error naming the field and the offset.</summary>
public class GgufMalformedTests
{
    private static GgufFormatException Bad(GgufBytes b) => Bad(b.ToArray());

    private static GgufFormatException Bad(byte[] bytes)
    {
        var e = Assert.Throws<GgufFormatException>(() => GgufFile.Parse(bytes));
        Assert.Contains(e.Field, e.Message);
        if (e.Offset >= 0)
            Assert.Contains($"offset {e.Offset}", e.Message);
        return e;
    }

    private static void AssertError(GgufFormatException e, string field, long offset, string detailPart)
    {
        Assert.Equal(field, e.Field);
        Assert.Equal(offset, e.Offset);
        Assert.Contains(detailPart, e.Detail);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3)]
    public void Too_short_files_are_rejected(int length)
    {
        var e = Bad(new byte[length]);
        AssertError(e, "magic", 0, "too short");
    }

    [Fact]
    public void Bad_magic_is_rejected()
    {
        var e = Bad(new GgufBytes().Raw("GGML"u8.ToArray()).U32(3).U64(0).U64(0));
        AssertError(e, "magic", 0, "expected 'GGUF'");
    }

    [Theory]
    [InlineData(0u, "not supported")]
    [InlineData(1u, "not supported")]
    [InlineData(4u, "newer")]
    [InlineData(0x03000000u, "byte-swapped")]
    public void Bad_versions_are_rejected(uint version, string detail)
    {
        var e = Bad(new GgufBytes().Header(version));
        AssertError(e, "version", 4, detail);
    }

    [Fact]
    public void Header_cut_after_the_version_is_rejected()
    {
        var e = Bad(new GgufBytes().Raw("GGUF"u8.ToArray()).U32(3).U32(0));
        AssertError(e, "tensor_count", 8, "remain");
    }

    [Theory]
    [InlineData(1UL << 40, "needs at least")]
    [InlineData(ulong.MaxValue, "negative")]
    [InlineData(1UL << 63, "negative")]
    public void Huge_or_negative_tensor_count_is_rejected(ulong count, string detail)
    {
        var e = Bad(new GgufBytes().Header(tensors: count));
        AssertError(e, "tensor_count", 8, detail);
    }

    [Theory]
    [InlineData(1UL << 40, "needs at least")]
    [InlineData(ulong.MaxValue, "negative")]
    public void Huge_or_negative_kv_count_is_rejected(ulong count, string detail)
    {
        var e = Bad(new GgufBytes().Header(kvs: count));
        AssertError(e, "metadata_kv_count", 16, detail);
    }

    [Fact]
    public void Counts_that_together_exceed_the_file_are_rejected()
    {
        // 1 tensor (>= 33 bytes) + 2 kvs (>= 14 each) cannot fit in the 40 bytes that follow.
        var e = Bad(new GgufBytes().Header(tensors: 1, kvs: 2).Zeros(40));
        Assert.Equal("tensor_count", e.Field);
    }

    [Theory]
    [InlineData(ulong.MaxValue, "longer than")]
    [InlineData(1000UL, "longer than")]
    public void Key_length_past_the_end_is_rejected(ulong length, string detail)
    {
        var e = Bad(new GgufBytes().Header(kvs: 1).U64(length).Raw("abc"u8.ToArray()).U32(4).U32(1));
        AssertError(e, "metadata[0].key", 24, detail);
    }

    [Fact]
    public void Empty_key_is_rejected()
    {
        var e = Bad(new GgufBytes().Header(kvs: 1).U64(0).U32(4).U32(1).Zeros(8));
        AssertError(e, "metadata[0].key", 24, "empty");
    }

    [Fact]
    public void Invalid_utf8_key_is_rejected()
    {
        var e = Bad(new GgufBytes().Header(kvs: 1).U64(2).Raw(0xC3, 0x28).U32(4).U32(1));
        AssertError(e, "metadata[0].key", 24, "UTF-8");
    }

    [Fact]
    public void String_longer_than_the_file_is_rejected()
    {
        var b = new GgufBytes().Header(kvs: 1).Str("general.name").U32(8);
        long at = b.Position;
        var e = Bad(b.U64(1UL << 40).Raw("x"u8.ToArray()));
        AssertError(e, "general.name", at, "longer than");
    }

    [Fact]
    public void Unknown_value_type_is_rejected()
    {
        var b = new GgufBytes().Header(kvs: 1).Str("k");
        long at = b.Position;
        var e = Bad(b.U32(13).U32(0));
        AssertError(e, "k", at, "unknown value type 13");
    }

    [Fact]
    public void Array_of_arrays_is_rejected()
    {
        var b = new GgufBytes().Header(kvs: 1).Str("k").U32(9);
        long at = b.Position;
        var e = Bad(b.U32(9).U64(1).U32(4).U64(1).U32(7));
        AssertError(e, "k", at, "arrays of arrays");
    }

    [Fact]
    public void Array_of_unknown_element_type_is_rejected()
    {
        var b = new GgufBytes().Header(kvs: 1).Str("k").U32(9);
        long at = b.Position;
        var e = Bad(b.U32(42).U64(1).U32(0));
        AssertError(e, "k", at, "unknown array element type 42");
    }

    [Theory]
    [InlineData(6u)]  // float32
    [InlineData(8u)]  // string
    [InlineData(0u)]  // uint8
    public void Array_count_2_pow_62_is_rejected_before_allocating(uint elementType)
    {
        var b = new GgufBytes().Header(kvs: 1).Str("k").U32(9).U32(elementType);
        long at = b.Position;
        var e = Bad(b.U64(1UL << 62).Zeros(16));
        AssertError(e, "k", at, "remain");
    }

    [Fact]
    public void String_array_whose_strings_run_past_the_end_is_rejected()
    {
        var b = new GgufBytes().Header(kvs: 1).Str("tokenizer.ggml.tokens").U32(9).U32(8).U64(2).Str("a");
        long at = b.Position;
        var e = Bad(b.U64(100).Raw("bc"u8.ToArray()));
        AssertError(e, "tokenizer.ggml.tokens", at, "longer than");
    }

    [Fact]
    public void Bool_other_than_0_or_1_is_rejected()
    {
        var b = new GgufBytes().Header(kvs: 1).Str("tokenizer.ggml.add_bos_token").U32(7);
        long at = b.Position;
        var e = Bad(b.U8(2));
        AssertError(e, "tokenizer.ggml.add_bos_token", at, "must be 0 or 1");
    }

    [Fact]
    public void Duplicate_keys_are_rejected()
    {
        var b = new GgufBytes().Header(kvs: 2).KvU32("llama.block_count", 1);
        long at = b.Position;
        var e = Bad(b.KvU32("llama.block_count", 2));
        AssertError(e, "llama.block_count", at, "duplicate key");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(13u)]
    [InlineData(48u)]
    public void Alignment_not_a_power_of_two_is_rejected(uint alignment)
    {
        var b = new GgufBytes().Header(kvs: 1).Str("general.alignment");
        long at = b.Position;
        var e = Bad(b.U32(4).U32(alignment));
        AssertError(e, "general.alignment", at, "not a power of two");
    }

    [Fact]
    public void Alignment_of_the_wrong_type_is_rejected()
    {
        var b = new GgufBytes().Header(kvs: 1).Str("general.alignment");
        long at = b.Position;
        var e = Bad(b.U32(5).I32(32));
        AssertError(e, "general.alignment", at, "must be a UInt32");
    }

    [Fact]
    public void Alignment_64_is_honoured()
    {
        var b = new GgufBytes().Header(tensors: 1, kvs: 1).KvU32("general.alignment", 64).Tensor("t", 0, 0, 16).PadTo(64).Zeros(64);
        using var f = GgufFile.Parse(b.ToArray());
        Assert.Equal(64, f.Alignment);
        Assert.Equal(0, f.DataOffset % 64);
        Assert.Equal(f.DataOffset, f.Tensors[0].Offset);
    }

    private static GgufBytes OneTensor(out long infoAt) { var b = new GgufBytes().Header(tensors: 1); infoAt = b.Position; return b; }

    [Fact]
    public void Tensor_name_of_64_bytes_is_rejected_and_63_accepted()
    {
        var e = Bad(OneTensor(out long at).Tensor(new string('a', 64), 0, 0, 4).PadTo(32).Zeros(16));
        AssertError(e, "tensors[0].name", at, "at most 63");

        var ok = OneTensor(out _).Tensor(new string('a', 63), 0, 0, 4).PadTo(32).Zeros(16).ToArray();
        using var f = GgufFile.Parse(ok);
        Assert.Equal(63, f.Tensors[0].Name.Length);
    }

    [Fact]
    public void Duplicate_tensor_names_are_rejected()
    {
        var b = new GgufBytes().Header(tensors: 2).Tensor("w", 0, 0, 8);
        long at = b.Position;
        var e = Bad(b.Tensor("w", 0, 32, 8).PadTo(32).Zeros(64));
        AssertError(e, "tensors[1].name", at, "duplicate tensor name 'w'");
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(5u)]
    public void Bad_n_dims_is_rejected(uint nDims)
    {
        var b = new GgufBytes().Header(tensors: 1).Str("w");
        long at = b.Position;
        var e = Bad(b.U32(nDims).I64(4).I64(4).I64(4).I64(4).I64(4).U32(0).U64(0).PadTo(32).Zeros(64));
        AssertError(e, "tensor 'w' n_dims", at, "must be 1 to 4");
    }

    [Fact]
    public void Negative_dim_is_rejected()
    {
        var b = new GgufBytes().Header(tensors: 1).Str("w").U32(2).I64(4);
        long at = b.Position;
        var e = Bad(b.I64(-1).U32(0).U64(0).PadTo(32).Zeros(64));
        AssertError(e, "tensor 'w' dims[1]", at, "negative");
    }

    [Fact]
    public void Element_count_overflow_is_rejected()
    {
        var e = Bad(OneTensor(out _).Tensor("w", 0, 0, 1L << 32, 1L << 32).PadTo(32).Zeros(64));
        Assert.Equal("tensor 'w' dims", e.Field);
        Assert.Contains("overflows 64 bits", e.Detail);
    }

    [Fact]
    public void Byte_size_overflow_is_rejected()
    {
        // 2^62 elements fit in int64, but 2^62 f32 elements are 2^64 bytes.
        var e = Bad(OneTensor(out _).Tensor("w", 0, 0, 1L << 31, 1L << 31).PadTo(32).Zeros(64));
        Assert.Equal("tensor 'w' dims", e.Field);
        Assert.Contains("byte size", e.Detail);
    }

    [Fact]
    public void Zero_dim_loads()
    {
        var bytes = new GgufBytes().Header(tensors: 2).Tensor("empty", 0, 0, 4, 0).Tensor("w", 0, 0, 4).PadTo(32).Zeros(16).ToArray();
        using var f = GgufFile.Parse(bytes);
        Assert.Equal(0, f.Tensors[0].ByteSize);
        Assert.Equal(0, f.Tensors[0].Rows);
        Assert.Equal(0, f.GetTensorBytes(f.Tensors[0]).Length);
        Assert.Equal(16, f.GetTensorBytes(f.Tensors[1]).Length);
    }

    [Theory]
    [InlineData(4u)]
    [InlineData(5u)]
    [InlineData(31u)]
    [InlineData(1000u)]
    [InlineData(uint.MaxValue)]
    public void Unknown_tensor_type_is_rejected(uint type)
    {
        var b = new GgufBytes().Header(tensors: 1).Str("w").U32(1).I64(32);
        long at = b.Position;
        var e = Bad(b.U32(type).U64(0).PadTo(32).Zeros(64));
        AssertError(e, "tensor 'w' type", at, $"unsupported tensor type {type}");
    }

    [Theory]
    [InlineData(2u, 33)]   // q4_0
    [InlineData(8u, 48)]   // q8_0
    [InlineData(12u, 32)]  // q4_K: blocks of 256
    public void Quantized_row_length_not_a_multiple_of_the_block_is_rejected(uint type, long rowLength)
    {
        var e = Bad(OneTensor(out _).Tensor("w", type, 0, rowLength, 2).PadTo(32).Zeros(1024));
        Assert.Equal("tensor 'w' dims[0]", e.Field);
        Assert.Contains("not a multiple of its block size", e.Detail);
    }

    [Fact]
    public void Unimplemented_but_known_types_parse_with_their_sizes()
    {
        // q3_K {256, 2}: 2 blocks of 110 bytes (b at the next 32-aligned offset, 224); iq2_xs {512}: 2 blocks of 74 bytes.
        var bytes = new GgufBytes().Header(tensors: 2).Tensor("a", 11, 0, 256, 2).Tensor("b", 17, 224, 512).PadTo(32).Zeros(224 + 148).ToArray();
        using var f = GgufFile.Parse(bytes);
        var a = f.Tensors[0];
        Assert.Equal(11, a.GgmlType);
        Assert.Equal("q3_K", a.TypeName);
        Assert.Equal(220, a.ByteSize);
        Assert.Equal(110, a.RowBytes);
        Assert.False(a.IsImplementedType);
        var e = Assert.Throws<NotSupportedException>(() => a.Type);
        Assert.Contains("q3_K", e.Message);
        Assert.Contains("q4_K, q5_K, q6_K", e.Message); // the supported list names the implemented K-quants
        Assert.Equal(148, f.Tensors[1].ByteSize);
        Assert.False(f.Tensors[1].IsImplementedType);
    }

    [Fact]
    public void Unaligned_offset_is_rejected()
    {
        var b = new GgufBytes().Header(tensors: 1).Str("w").U32(1).I64(4).U32(0);
        long at = b.Position;
        var e = Bad(b.U64(16).PadTo(32).Zeros(64));
        AssertError(e, "tensor 'w' offset", at, "not a multiple of the alignment 32");
    }

    [Fact]
    public void Overlapping_tensors_are_rejected()
    {
        // a = 16 f32 (64 bytes at 0), b at 32 overlaps it.
        var b = new GgufBytes().Header(tensors: 2).Tensor("a", 0, 0, 16).Str("b").U32(1).I64(8).U32(0);
        long at = b.Position;
        var e = Bad(b.U64(32).PadTo(32).Zeros(128));
        AssertError(e, "tensor 'b' offset", at, "overlaps the previous tensor 'a'");
    }

    [Fact]
    public void Out_of_order_tensors_are_rejected()
    {
        var b = new GgufBytes().Header(tensors: 2).Tensor("a", 0, 64, 8).Str("b").U32(1).I64(8).U32(0);
        long at = b.Position;
        var e = Bad(b.U64(0).PadTo(32).Zeros(128));
        AssertError(e, "tensor 'b' offset", at, "increasing offset order");
    }

    [Fact]
    public void Gaps_between_tensors_are_allowed()
    {
        var bytes = new GgufBytes().Header(tensors: 2).Tensor("a", 0, 0, 8).Tensor("b", 0, 96, 8).PadTo(32).Zeros(128).ToArray();
        using var f = GgufFile.Parse(bytes);
        Assert.Equal(f.DataOffset + 96, f.Tensors[1].Offset);
    }

    [Fact]
    public void Offset_past_the_end_is_rejected()
    {
        var b = new GgufBytes().Header(tensors: 1).Str("w").U32(1).I64(8).U32(0);
        long at = b.Position;
        var e = Bad(b.U64(1UL << 40).PadTo(32).Zeros(32));
        AssertError(e, "tensor 'w' offset", at, "past the end of the file");

        var e2 = Bad(new GgufBytes().Header(tensors: 1).Tensor("w", 0, ulong.MaxValue - 31, 8).PadTo(32).Zeros(32));
        Assert.Contains("past the end", e2.Detail);
    }

    [Fact]
    public void File_one_byte_short_is_rejected_and_exact_length_loads()
    {
        var full = new GgufBytes().Header(tensors: 2).Tensor("a", 8, 0, 64).Tensor("b", 0, 96, 3).PadTo(32).Zeros(96 + 12).ToArray();
        using (var f = GgufFile.Parse(full))
            Assert.Equal(12, f.Tensors[1].ByteSize);
        var e = Bad(full[..^1]);
        Assert.Equal("tensor 'b' offset", e.Field);
        Assert.Contains("past the end", e.Detail);
    }

    [Fact]
    public void Open_reports_the_path_and_rejects_short_files()
    {
        string path = Path.Combine(Path.GetTempPath(), $"gguf-short-{Guid.NewGuid():N}.gguf");
        try
        {
            File.WriteAllBytes(path, "GGU"u8.ToArray());
            var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
            Assert.Equal(path, e.FilePath);
            Assert.StartsWith(path, e.Message);
            Assert.Equal("magic", e.Field);

            File.WriteAllBytes(path, []);
            Assert.Equal("magic", Assert.Throws<GgufFormatException>(() => GgufFile.Open(path)).Field);

            var shortByOne = new GgufBytes().Header(tensors: 1).Tensor("w", 0, 0, 8).PadTo(32).Zeros(31).ToArray();
            File.WriteAllBytes(path, shortByOne);
            Assert.Equal("tensor 'w' offset", Assert.Throws<GgufFormatException>(() => GgufFile.Open(path)).Field);
        }
        finally
        {
            File.Delete(path);
        }
    }
}
