using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using Serving.Abstractions;

namespace Serving.Bench;

/// <summary>
/// The Copy op on a buffer several times any last-level cache (the tuner's bandwidth probe, docs/tuning.md), against a
/// single-threaded host memcpy of the same size as the baseline. GB/s counts bytes read + written.
/// </summary>
[Config(typeof(BenchConfig))]
public unsafe class CopyBenchmarks : IMovesBytes
{
    /// <summary>Bytes copied per operation.</summary>
    [Params(256 << 20)]
    public int Bytes;

    private IAccelerator _device = null!;
    private IComputeStream _stream = null!;
    private TensorView _source, _destination;  // [1, Bytes/4] f32
    private void* _hostSource, _hostDestination;

    /// <summary>Allocates and fills both sides.</summary>
    [GlobalSetup]
    public void Setup()
    {
        _device = BackendLoader.Open(BenchConfig.Backend);
        _stream = _device.CreateStream();
        var bytes = BenchData.Bytes(BenchData.Floats(Bytes / 4, 5));
        _source = BenchData.Upload(_device, DataType.F32, 1, Bytes / 4, bytes);
        _destination = BenchData.Allocate(_device, DataType.F32, 1, Bytes / 4);
        _hostSource = NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        _hostDestination = NativeMemory.AlignedAlloc((nuint)Bytes, 64);
        bytes.CopyTo(new Span<byte>(_hostSource, Bytes));
        new Span<byte>(_hostDestination, Bytes).Clear();
    }

    /// <summary>Frees everything.</summary>
    [GlobalCleanup]
    public void Cleanup()
    {
        _stream.Dispose();
        _source.Buffer.Dispose();
        _destination.Buffer.Dispose();
        NativeMemory.AlignedFree(_hostSource);
        NativeMemory.AlignedFree(_hostDestination);
    }

    /// <summary>Baseline: Buffer.MemoryCopy on the host, one thread.</summary>
    [Benchmark(Baseline = true, Description = "host memcpy")]
    public void HostMemcpy() => Buffer.MemoryCopy(_hostSource, _hostDestination, Bytes, Bytes);

    /// <summary>The backend's Copy op, synchronized.</summary>
    [Benchmark(Description = "backend Copy")]
    public void BackendCopy()
    {
        _stream.Copy(_source, _destination);
        _stream.Synchronize();
    }

    /// <inheritdoc/>
    public double BytesMoved(string method) => 2.0 * Bytes;
}
