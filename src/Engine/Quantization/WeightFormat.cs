using Serving.Abstractions;

namespace Serving.Engine.Quantization;

/// <summary>Converts f32 values (a whole number of blocks) into exactly their row bytes of one format; sizes are checked by the caller.</summary>
public delegate void RowQuantizer(ReadOnlySpan<float> source, Span<byte> destination);

/// <summary>Expands exactly the row bytes of one format into f32 values; sizes are checked by the caller.</summary>
public delegate void RowDequantizer(ReadOnlySpan<byte> source, Span<float> destination);

/// <summary>
/// One weight format the engine reads and writes: its geometry (the contract's <see cref="DataTypeInfo"/>), its
/// quantizer and reference dequantizer, and the llama.cpp file type of a model whose matrices all use it. The rows
/// live in <see cref="WeightFormats"/>.
/// </summary>
public sealed class WeightFormat
{
    private readonly RowQuantizer _quantize;
    private readonly RowDequantizer _dequantize;

    internal WeightFormat(DataType type, RowQuantizer quantize, RowDequantizer dequantize, uint llamaFileType)
    {
        Info = type.Info();
        _quantize = quantize;
        _dequantize = dequantize;
        LlamaFileType = llamaFileType;
    }

    /// <summary>Name, block size and bytes per block, from the contract's table.</summary>
    public DataTypeInfo Info { get; }

    /// <summary>The type.</summary>
    public DataType Type => Info.Type;

    /// <summary>The name llama.cpp prints ("q8_0", "q4_K").</summary>
    public string Name => Info.Name;

    /// <summary>
    /// general.file_type (llama_ftype) of a model whose matrices are all of this format, as llama.cpp's tools write it.
    /// </summary>
    public uint LlamaFileType { get; }

    /// <summary>
    /// Converts <paramref name="source"/> (a whole number of blocks) into <paramref name="destination"/>, which must be
    /// exactly <c>Type.RowBytes(source.Length)</c> bytes. Throws <see cref="ArgumentException"/> otherwise.
    /// </summary>
    public void Quantize(ReadOnlySpan<float> source, Span<byte> destination)
    {
        long bytes = Type.RowBytes(source.Length);
        if (destination.Length != bytes)
            throw new ArgumentException($"{source.Length} {Name} elements need {bytes} bytes, destination has {destination.Length}", nameof(destination));
        _quantize(source, destination);
    }

    /// <summary>
    /// Expands <paramref name="source"/>, exactly <c>Type.RowBytes(destination.Length)</c> bytes, into
    /// <paramref name="destination"/> (ggml's dequantize_row_* semantics). Throws <see cref="ArgumentException"/> otherwise.
    /// </summary>
    public void Dequantize(ReadOnlySpan<byte> source, Span<float> destination)
    {
        long bytes = Type.RowBytes(destination.Length);
        if (source.Length != bytes)
            throw new ArgumentException($"{destination.Length} {Name} elements need {bytes} bytes, source has {source.Length}", nameof(source));
        _dequantize(source, destination);
    }

    /// <inheritdoc/>
    public override string ToString() => Name;
}
