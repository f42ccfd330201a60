using System.Runtime.InteropServices;
using Serving.Abstractions;

namespace Serving.Backends.Cuda.Tests;

/// <summary>
/// Host ↔ device copies stay right while the garbage collector moves the caller's arrays (issue 9). ILGPU's
/// <c>CopyFromCPU</c>/<c>CopyToCPU(stream, ref T, length)</c> want a pinned buffer: they turn the reference into a raw
/// pointer without pinning it. The backend used to hand them spans over managed arrays, so a compacting collection in
/// the middle of a copy moved the array and the copy read its old place (stale bytes uploaded: guard bytes changed) or
/// wrote there (a download that left the caller's array zero): the conformance suite's intermittent failures. Here a
/// thread forces compacting collections while the test copies fresh arrays (young objects: the ones a collection
/// moves) through every host-copy path: the device's Upload/Download, a stream's Upload/Download and PrepareWeight.
/// Before the fix every run failed (10 corrupted copies within the first rounds, most of them all-zero downloads, or the
/// test host crashed on a copy into freed memory); no timing is involved, only counts.
/// </summary>
public sealed class TransferTests
{
    private const int Rounds = 6000;
    private const int PerRound = 8;
    private const int Floats = 256;

    [Fact]
    public void Copies_survive_compacting_collections_on_another_thread()
    {
        using var device = CudaAccelerator.OpenCpu(0, DeviceOptions.Default);
        using var stream = device.CreateStream();
        const int bytes = 4 * Floats;
        using var buffer = device.Allocate((long)bytes * PerRound);

        using var stop = new CancellationTokenSource();
        int collections = 0;
        var collector = new Thread(() =>
        {
            while (!stop.IsCancellationRequested)
            {
                GC.Collect(1, GCCollectionMode.Forced, blocking: true, compacting: true);
                Interlocked.Increment(ref collections);
            }
        }) { IsBackground = true, Name = "compacting collector" };
        collector.Start();
        var failures = new List<string>();
        try
        {
            for (int round = 0; round < Rounds && failures.Count < 10; round++)
            {
                var sent = new byte[PerRound][];
                for (int j = 0; j < PerRound; j++)
                {
                    sent[j] = Pattern(bytes, round * PerRound + j);
                    if (j % 2 == 0) device.Upload(buffer, (long)bytes * j, sent[j]);
                    else stream.Upload(buffer, (long)bytes * j, sent[j]);
                }
                for (int j = 0; j < PerRound; j++)
                {
                    var back = new byte[bytes];
                    if (j % 2 == 0) stream.Download(buffer, (long)bytes * j, back);
                    else device.Download(buffer, (long)bytes * j, back);
                    if (!back.AsSpan().SequenceEqual(sent[j]))
                        failures.Add($"round {round}, copy {j}: {Describe(sent[j], back)}");
                }
                if (round % 16 == 0)
                    CheckWeight(device, round, failures);
            }
        }
        finally
        {
            stop.Cancel();
            collector.Join();
        }
        Assert.True(failures.Count == 0, $"{failures.Count} corrupted copies (of {Rounds * PerRound * 2}) with {collections} collections:\n{string.Join("\n", failures)}");
        Assert.True(collections > 0, "the collector thread never collected");
    }

    /// <summary>PrepareWeight's one copy of the repacked bytes (its own managed array) to the device.</summary>
    private static unsafe void CheckWeight(CudaAccelerator device, int round, List<string> failures)
    {
        float[] values = new float[Floats];
        for (int i = 0; i < values.Length; i++) values[i] = (i * 7 + round) % 101 - 50.25f;
        byte[] expected = MemoryMarshal.AsBytes(values.AsSpan()).ToArray();
        fixed (byte* source = expected)
        {
            using var weight = (CudaWeight)device.PrepareWeight(new WeightSource("w", (nint)source, expected.Length, DataType.F32, 1, Floats, false));
            var back = new byte[expected.Length];
            device.Download(weight.Storage, 0, back);
            if (!back.AsSpan().SequenceEqual(expected))
                failures.Add($"round {round}, PrepareWeight: {Describe(expected, back)}");
        }
    }

    private static string Describe(byte[] expected, byte[] actual)
    {
        int i = expected.AsSpan().CommonPrefixLength(actual);
        return $"byte {i} is {actual[i]:x2}, not {expected[i]:x2}{(actual.AsSpan().IndexOfAnyExcept((byte)0) < 0 ? " (all zero)" : "")}";
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        for (int i = 0; i < bytes.Length; i++) bytes[i] = (byte)(i * 31 + seed * 17 + 1);
        return bytes;
    }
}
