using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Engine.Tuning.Cases;

/// <summary>Seeded test data and the comparisons the tuner's validation uses (the conformance suite's metric, reduced).</summary>
internal static class HostData
{
    /// <summary><paramref name="count"/> samples of N(0, 1) from a seeded generator (Box–Muller).</summary>
    public static float[] Normal(int count, int seed)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i += 2)
        {
            double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
            double r = Math.Sqrt(-2.0 * Math.Log(u1));
            values[i] = (float)(r * Math.Cos(2 * Math.PI * u2));
            if (i + 1 < count) values[i + 1] = (float)(r * Math.Sin(2 * Math.PI * u2));
        }
        return values;
    }

    /// <summary>Uploads floats into a new buffer of <paramref name="device"/>, viewed as F32 [rows, cols].</summary>
    public static TensorView Upload(IAccelerator device, List<IDisposable> owned, float[] values, int rows, int cols)
    {
        var buffer = device.Allocate(Math.Max(4L, (long)rows * cols * sizeof(float)));
        owned.Add(buffer);
        device.Upload(buffer, 0, MemoryMarshal.AsBytes(values.AsSpan(0, rows * cols)));
        return new TensorView(buffer, 0, DataType.F32, rows, cols);
    }

    /// <summary>A zeroed F32 [rows, cols] buffer.</summary>
    public static TensorView Output(IAccelerator device, List<IDisposable> owned, DataType type, int rows, int cols)
    {
        var buffer = device.Allocate(Math.Max(4L, type.RowBytes(cols) * rows));
        owned.Add(buffer);
        return new TensorView(buffer, 0, type, rows, cols);
    }

    /// <summary>Downloads a view's floats (waits for the stream's work).</summary>
    public static float[] Read(IComputeStream stream, in TensorView view)
    {
        var values = new float[view.Rows * view.Cols];
        stream.Download(view.Buffer, view.Offset, MemoryMarshal.AsBytes(values.AsSpan()));
        return values;
    }

    /// <summary>Σ(y − ref)² / scale, with NaN or ±Inf in y where ref is finite an infinite error.</summary>
    public static double NormalizedError(ReadOnlySpan<float> y, ReadOnlySpan<double> reference, double scale)
    {
        double error = 0;
        for (int i = 0; i < y.Length; i++)
        {
            if (!float.IsFinite(y[i])) return double.PositiveInfinity;
            double d = y[i] - reference[i];
            error += d * d;
        }
        return scale > 0 ? error / scale : error;
    }

    /// <summary>True when the two float arrays hold the same bits.</summary>
    public static bool SameBits(float[] a, float[] b) => MemoryMarshal.AsBytes(a.AsSpan()).SequenceEqual(MemoryMarshal.AsBytes(b.AsSpan()));
}
