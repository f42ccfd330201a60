using Serving.Abstractions;

namespace Serving.Engine.Tuning;

/// <summary>Achieved memory bandwidth of a device, measured with its own <see cref="OpKind.Copy"/> op.</summary>
/// <param name="BytesPerSecond">Median of the repeats: (bytes read + bytes written) / time.</param>
/// <param name="BufferBytes">Size of each of the two buffers.</param>
/// <param name="Samples">Every repeat's rate, bytes/s, in run order.</param>
public sealed record BandwidthResult(double BytesPerSecond, long BufferBytes, IReadOnlyList<double> Samples)
{
    /// <summary>GB/s (10⁹ bytes per second), as bandwidth is usually quoted.</summary>
    public double GBps => BytesPerSecond / 1e9;
}

/// <summary>
/// Measures device memory bandwidth (docs/tuning.md): copies between two buffers several times larger than
/// any last-level cache, so every byte crosses the memory bus; counts read plus written bytes. Each copy is timed
/// on the device, between two timestamps recorded in the stream (<see cref="IComputeStream.RecordTimestamp"/>).
/// </summary>
public static class BandwidthProbe
{
    /// <summary>Runs the probe: one warm-up copy, then <paramref name="repeats"/> timed ones; reports the median.</summary>
    public static BandwidthResult Measure(IAccelerator device, long bufferBytes = 512L << 20, int repeats = 7)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(bufferBytes, 1L << 20);
        ArgumentOutOfRangeException.ThrowIfLessThan(repeats, 1);
        using var a = device.Allocate(bufferBytes);
        using var b = device.Allocate(bufferBytes);
        using var stream = device.CreateStream();
        int rows = (int)(bufferBytes / 4096);
        var src = new TensorView(a, 0, DataType.F32, rows, 1024);
        var dst = new TensorView(b, 0, DataType.F32, rows, 1024);
        stream.Copy(src, dst);
        stream.Copy(dst, src); // touch both buffers' pages before timing
        stream.Synchronize();
        var samples = new double[repeats];
        var marks = new DeviceTimestamp[repeats + 1];
        // Timed on the device: a timestamp between copies, read after one synchronize, so neither host scheduling
        // nor the cost of waiting is counted.
        marks[0] = stream.RecordTimestamp();
        for (int i = 0; i < repeats; i++)
        {
            stream.Copy(i % 2 == 0 ? src : dst, i % 2 == 0 ? dst : src);
            marks[i + 1] = stream.RecordTimestamp();
        }
        stream.Synchronize();
        for (int i = 0; i < repeats; i++)
            samples[i] = 2.0 * src.ByteLength / stream.Elapsed(marks[i], marks[i + 1]).TotalSeconds;
        var sorted = samples.Order().ToArray();
        return new BandwidthResult(sorted[repeats / 2], src.ByteLength, samples);
    }
}
