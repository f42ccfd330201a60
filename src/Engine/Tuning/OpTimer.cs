using System.Diagnostics;
using Serving.Abstractions;

namespace Serving.Engine.Tuning;

/// <summary>
/// Times one op call on a stream with the device's own clock: a timestamp is recorded before and after each call
/// (<see cref="IComputeStream.RecordTimestamp"/>: Vulkan timestamp queries, a clock on the CPU) and read after the
/// stream synchronizes, so neither host scheduling nor the wait is counted. Each call gets the next rotation index, so
/// a caller that keeps several copies of its inputs (weights several times the last-level cache) never times a call
/// whose inputs the previous call left in the cache.
/// </summary>
public static class OpTimer
{
    /// <summary>Runs <paramref name="record"/> (which records one op for the rotation index it is given) under
    /// <paramref name="budget"/>; returns the device time of every timed call in microseconds.</summary>
    public static TimingStats Time(IComputeStream stream, Action<int> record, TimingBudget budget)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(record);
        budget.Validate();
        int rotation = 0;
        for (int i = 0; i < budget.Warmups; i++) record(rotation++);
        stream.Synchronize();
        var samples = new List<double>(budget.MinRepeats);
        long start = Stopwatch.GetTimestamp();
        while (samples.Count < budget.MaxRepeats
               && (samples.Count < budget.MinRepeats || Stopwatch.GetElapsedTime(start) < budget.Time))
        {
            DeviceTimestamp before = stream.RecordTimestamp();
            record(rotation++);
            DeviceTimestamp after = stream.RecordTimestamp();
            stream.Synchronize();
            samples.Add(stream.Elapsed(before, after).TotalMicroseconds);
        }
        return TimingStats.From(samples);
    }

    /// <summary>Times a host-side action (a whole model step, which synchronizes itself) with the host clock.</summary>
    public static TimingStats TimeHost(Action run, TimingBudget budget)
    {
        ArgumentNullException.ThrowIfNull(run);
        budget.Validate();
        for (int i = 0; i < budget.Warmups; i++) run();
        var samples = new List<double>(budget.MinRepeats);
        long start = Stopwatch.GetTimestamp();
        while (samples.Count < budget.MaxRepeats
               && (samples.Count < budget.MinRepeats || Stopwatch.GetElapsedTime(start) < budget.Time))
        {
            long t0 = Stopwatch.GetTimestamp();
            run();
            samples.Add(Stopwatch.GetElapsedTime(t0).TotalMicroseconds);
        }
        return TimingStats.From(samples);
    }
}
