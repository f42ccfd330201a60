using System.Numerics;
using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Serving.Abstractions;

namespace Serving.Bench;

/// <summary>
/// MatMul y[T, N] = x[T, K] · W[N, K]ᵀ with W [2048 × 8192] (a 1B-class FFN down-projection) per weight type, at
/// decode (T = 1) and prefill (T = 64), against a naive single-threaded f32 kernel as the baseline, so the Ratio
/// column reads "times the naive f32 time" for every type.
/// </summary>
[Config(typeof(BenchConfig))]
public class MatMulBenchmarks : IMovesBytes
{
    /// <summary>N: output dim.</summary>
    public const int N = 2048;
    /// <summary>K: input dim.</summary>
    public const int K = 8192;

    /// <summary>Weight type.</summary>
    [Params(DataType.F32, DataType.F16, DataType.BF16, DataType.Q8_0, DataType.Q4_0)]
    public DataType Type;

    /// <summary>Rows in the step.</summary>
    [Params(1, 64)]
    public int T;

    private IAccelerator _device = null!;
    private IComputeStream _stream = null!;
    private TensorView _x, _y;              // [T, K] f32, [T, N] f32
    private IDeviceWeight _w = null!;       // [N, K] Type
    private float[] _hostX = [], _hostW = [], _hostY = [];

    /// <summary>Uploads the inputs.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _device = BackendLoader.Open(BenchConfig.Backend);
        _stream = _device.CreateStream();
        _hostX = BenchData.Floats(T * K, 11);
        _hostW = BenchData.Floats(N * K, 13);
        _hostY = new float[T * N];
        _x = BenchData.Upload(_device, DataType.F32, T, K, BenchData.Bytes(_hostX));
        _w = BenchData.Weight(_device, Type, N, K, BenchData.Weights(Type, N, K));
        _y = BenchData.Allocate(_device, DataType.F32, T, N);
    }

    /// <summary>Frees the device buffers.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _stream.Dispose();
        _x.Buffer.Dispose();
        _w.Dispose();
        _y.Buffer.Dispose();
    }

    /// <summary>The baseline: one thread, Vector&lt;float&gt; dot products over f32 weights, no blocking.</summary>
    [Benchmark(Baseline = true, Description = "naive f32")]
    public void Naive()
    {
        for (int t = 0; t < T; t++)
        {
            var x = _hostX.AsSpan(t * K, K);
            for (int n = 0; n < N; n++) _hostY[t * N + n] = Dot(x, _hostW.AsSpan(n * K, K));
        }
    }

    /// <summary>The backend's MatMul (default variant), synchronized.</summary>
    [Benchmark(Description = "backend")]
    public void Backend()
    {
        _stream.MatMul(_x, _w, _y);
        _stream.Synchronize();
    }

    private static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        var va = MemoryMarshal.Cast<float, Vector<float>>(a);
        var vb = MemoryMarshal.Cast<float, Vector<float>>(b);
        var acc = Vector<float>.Zero;
        for (int i = 0; i < va.Length; i++) acc += va[i] * vb[i];
        float sum = Vector.Sum(acc);
        for (int i = va.Length * Vector<float>.Count; i < a.Length; i++) sum += a[i] * b[i];
        return sum;
    }

    /// <inheritdoc/>
    public double BytesMoved(string method)
        => (method == nameof(Naive) ? 4.0 * N * K : Type.RowBytes(K) * N) + 4.0 * T * K + 4.0 * T * N;
}
