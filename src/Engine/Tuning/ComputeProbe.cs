using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Engine.Quantization;

namespace Serving.Engine.Tuning;

/// <summary>Achieved MatMul throughput of a device for one weight type, the compute roof of a roofline.</summary>
/// <param name="FlopsPerSecond">Median of the repeats: 2·T·N·K / time.</param>
/// <param name="Type">Weight type measured.</param>
/// <param name="Rows">T: activation rows (enough for the weight reads to be amortized).</param>
/// <param name="N">Output columns.</param>
/// <param name="K">Input columns.</param>
/// <param name="Samples">Every repeat's rate, FLOP/s, in run order.</param>
public sealed record ComputeResult(double FlopsPerSecond, DataType Type, int Rows, int N, int K, IReadOnlyList<double> Samples)
{
    /// <summary>GFLOP/s.</summary>
    public double GFlops => FlopsPerSecond / 1e9;
}

/// <summary>
/// Measures the MatMul ceiling a device reaches for a weight type: x [T, K] · W[N, K]ᵀ with T rows, so each weight byte
/// is used T times and the op is compute-bound, timed on the device between stream timestamps like
/// <see cref="BandwidthProbe"/>. This is what the device's kernels achieve, not a datasheet figure.
/// </summary>
public static class ComputeProbe
{
    /// <summary>One warm-up MatMul, then <paramref name="repeats"/> timed ones; reports the median.</summary>
    public static ComputeResult Measure(IAccelerator device, DataType type, int rows = 64, int n = 2048, int k = 2048, int repeats = 5)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        if (type.IsQuantized()) k = (k + type.BlockSize() - 1) / type.BlockSize() * type.BlockSize();
        // Small random weights in the type's own encoding (zeros could take shortcuts; random bytes could be NaN scales).
        var rng = new Random(1);
        var row = new float[k];
        long rowBytes = type.RowBytes(k);
        var bytes = new byte[rowBytes * n];
        for (int r = 0; r < n; r++)
        {
            for (int i = 0; i < k; i++) row[i] = (float)(rng.NextDouble() - 0.5) * 0.1f;
            Quantizer.Quantize(type, row, bytes.AsSpan((int)(r * rowBytes), (int)rowBytes));
        }
        var handle = GCHandle.Alloc(bytes, GCHandleType.Pinned);
        try
        {
            using var weight = device.PrepareWeight(new WeightSource("compute-probe", handle.AddrOfPinnedObject(), bytes.Length, type, n, k, Persistent: false));
            using var x = device.Allocate(4L * rows * k);
            using var y = device.Allocate(4L * rows * n);
            var xs = new float[rows * k];
            for (int i = 0; i < xs.Length; i++) xs[i] = (float)(rng.NextDouble() - 0.5);
            device.Upload(x, 0, MemoryMarshal.AsBytes(xs.AsSpan()));
            using var stream = device.CreateStream();
            var xv = new TensorView(x, 0, DataType.F32, rows, k);
            var yv = new TensorView(y, 0, DataType.F32, rows, n);
            stream.MatMul(xv, weight, yv);
            stream.Synchronize();
            var marks = new DeviceTimestamp[repeats + 1];
            marks[0] = stream.RecordTimestamp();
            for (int i = 0; i < repeats; i++)
            {
                stream.MatMul(xv, weight, yv);
                marks[i + 1] = stream.RecordTimestamp();
            }
            stream.Synchronize();
            var samples = new double[repeats];
            double flops = 2.0 * rows * n * k;
            for (int i = 0; i < repeats; i++) samples[i] = flops / Math.Max(1e-9, stream.Elapsed(marks[i], marks[i + 1]).TotalSeconds);
            return new ComputeResult(samples.Order().ElementAt(repeats / 2), type, rows, n, k, samples);
        }
        finally
        {
            handle.Free();
        }
    }
}
