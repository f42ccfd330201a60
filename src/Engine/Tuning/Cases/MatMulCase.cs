using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tuning.Cases;

/// <summary>
/// MatMul y[T, N] = x[T, K] · W[N, K]ᵀ at one of the model's weight shapes and types. The weight is seeded uniform
/// data quantized by the engine's own quantizer, prepared on the device <see cref="Copies"/> times so that timed calls
/// rotate through at least the rotation bytes (past any last-level cache, as a real step that reads every weight once).
/// Validation compares 48 output columns spread over N (and the last) with a float64 host reference computed from the
/// dequantized weight, normalized by Σ (x·w)² as the conformance suite does.
/// </summary>
internal sealed unsafe class MatMulCase : OpCase
{
    private const int SampledColumns = 48;

    /// <summary>Most weight copies (small matrices stay under the rotation bytes rather than hold thousands of allocations).</summary>
    public const int MaxCopies = 128;
    private readonly IDeviceWeight[] _weights;
    private readonly TensorView _x, _y;
    private readonly float[] _hostX;
    private readonly int[] _columns;
    private readonly float[][] _sampledRows; // dequantized weight rows of _columns

    public MatMulCase(IAccelerator device, DataType type, int n, int k, int maxRows, long rotationBytes, int seed)
        : base(device, maxRows)
    {
        Type = type;
        Rows = n;
        Cols = k;
        long rowBytes = type.RowBytes(k);
        WeightBytes = rowBytes * n;
        try
        {
            // Quantize a seeded weight one row at a time into one host block, then prepare it Copies times.
            nint host = (nint)NativeMemory.Alloc((nuint)WeightBytes);
            try
            {
                var random = new Random(seed);
                var row = new float[k];
                _columns = SampleColumns(n);
                _sampledRows = new float[_columns.Length][];
                for (int r = 0; r < n; r++)
                {
                    for (int i = 0; i < k; i++) row[i] = (float)(random.NextDouble() * 2 - 1);
                    Quantizer.Quantize(type, row, new Span<byte>((byte*)host + rowBytes * r, (int)rowBytes));
                }
                for (int j = 0; j < _columns.Length; j++)
                {
                    _sampledRows[j] = new float[k];
                    Dequantizer.DequantizeRow(type, new ReadOnlySpan<byte>((byte*)host + rowBytes * _columns[j], (int)rowBytes), _sampledRows[j]);
                }
                Copies = (int)Math.Clamp((rotationBytes + WeightBytes - 1) / WeightBytes, 1, MaxCopies);
                _weights = new IDeviceWeight[Copies];
                for (int c = 0; c < Copies; c++)
                {
                    _weights[c] = device.PrepareWeight(new WeightSource($"tune.{type.Name()}[{n}x{k}].{c}", host, WeightBytes, type, n, k, Persistent: false));
                    Owned.Add(_weights[c]);
                }
            }
            finally
            {
                NativeMemory.Free((void*)host);
            }
            _hostX = HostData.Normal(maxRows * k, seed + 1);
            _x = HostData.Upload(device, Owned, _hostX, maxRows, k);
            _y = HostData.Output(device, Owned, DataType.F32, maxRows, n);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Bytes of one copy of the weight.</summary>
    public long WeightBytes { get; }

    /// <summary>Copies of the weight the timed calls rotate through.</summary>
    public int Copies { get; }

    public override OpKind Op => OpKind.MatMul;
    public override DataType Type { get; }
    public override int Rows { get; }
    public override int Cols { get; }

    public override long Bytes(int t) => WeightBytes + 4L * t * (Cols + Rows);

    public override double Flops(int t) => 2.0 * t * Rows * Cols;

    public override string Describe() => $"MatMul {Type.Name()} [{Rows}, {Cols}]";

    protected override double Limit => Type switch
    {
        DataType.F32 => 1e-8,   // f32 products and sums over K: relative ≈ √K·2⁻²⁴
        DataType.F16 => 1e-5,   // x may be rounded to f16 (11-bit significand)
        DataType.BF16 => 1e-4,  // x may be rounded to bf16 (8-bit significand)
        _ => 2e-3,              // x may be quantized to q8 blocks (≈ 3e-5 on average); a real bug gives ≳ 1e-2
    };

    public override void Record(IComputeStream stream, KernelVariant variant, int t, int rotation)
        => stream.MatMul(_x.SliceRows(0, t), _weights[rotation % Copies], _y.SliceRows(0, t), variant);

    protected override float[] RunAndRead(IComputeStream stream, KernelVariant variant, int t)
    {
        var y = _y.SliceRows(0, t);
        stream.MatMul(_x.SliceRows(0, t), _weights[0], y, variant);
        stream.Synchronize();
        return HostData.Read(stream, y);
    }

    protected override double Error(float[] output, int t)
    {
        int m = _columns.Length;
        var got = new float[t * m];
        var reference = new double[t * m];
        double power = 0;
        for (int r = 0; r < t; r++)
        {
            var x = _hostX.AsSpan(r * Cols, Cols);
            for (int j = 0; j < m; j++)
            {
                float[] w = _sampledRows[j];
                double sum = 0;
                for (int i = 0; i < Cols; i++)
                {
                    double p = (double)x[i] * w[i];
                    sum += p;
                    power += p * p;
                }
                reference[r * m + j] = sum;
                got[r * m + j] = output[r * Rows + _columns[j]];
            }
        }
        return HostData.NormalizedError(got, reference, power);
    }

    private static int[] SampleColumns(int n)
    {
        if (n <= SampledColumns) return Enumerable.Range(0, n).ToArray();
        var columns = new SortedSet<int> { n - 1 };
        for (int j = 0; columns.Count < SampledColumns; j++) columns.Add((int)((long)j * n / SampledColumns));
        return columns.ToArray();
    }
}
