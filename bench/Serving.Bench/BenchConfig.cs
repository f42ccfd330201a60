using BenchmarkDotNet.Columns;
using BenchmarkDotNet.Configs;
using BenchmarkDotNet.Jobs;
using BenchmarkDotNet.Reports;
using BenchmarkDotNet.Running;
using BenchmarkDotNet.Toolchains.InProcess.Emit;

namespace Serving.Bench;

/// <summary>
/// BenchmarkDotNet settings shared by the suites: in-process (the backend plugins live next to this program, and a
/// generated child project would not have them), few iterations (one MatMul at T = 64 costs milliseconds to
/// seconds), and a GB/s column.
/// </summary>
public sealed class BenchConfig : ManualConfig
{
    /// <summary>Backend the suites run on: environment variable SERVING_BENCH_BACKEND, default "cpu".</summary>
    public static string Backend => Environment.GetEnvironmentVariable("SERVING_BENCH_BACKEND") is { Length: > 0 } name ? name : "cpu";

    /// <summary>Creates the config.</summary>
    public BenchConfig()
    {
        // No Add(DefaultConfig.Instance): BenchmarkSwitcher already starts from the default config, and the
        // [Config] attribute merges this one into it (adding both would duplicate loggers and exporters).
        AddJob(Job.Default.WithToolchain(InProcessEmitToolchain.Instance).WithWarmupCount(3).WithIterationCount(10).WithId("inprocess"));
        AddColumn(new BandwidthColumn());
        SummaryStyle = SummaryStyle.Default.WithRatioStyle(RatioStyle.Trend);
    }
}

/// <summary>A benchmark class that knows how many bytes one invocation moves (read + written).</summary>
public interface IMovesBytes
{
    /// <summary>Bytes read and written by one call of <paramref name="method"/> with the current parameters.</summary>
    double BytesMoved(string method);
}

/// <summary>GB/s = bytes moved per invocation / mean time, for benchmarks implementing <see cref="IMovesBytes"/>.</summary>
public sealed class BandwidthColumn : IColumn
{
    /// <inheritdoc/>
    public string Id => "GBps";
    /// <inheritdoc/>
    public string ColumnName => "GB/s";
    /// <inheritdoc/>
    public bool AlwaysShow => true;
    /// <inheritdoc/>
    public ColumnCategory Category => ColumnCategory.Custom;
    /// <inheritdoc/>
    public int PriorityInCategory => 0;
    /// <inheritdoc/>
    public bool IsNumeric => true;
    /// <inheritdoc/>
    public UnitType UnitType => UnitType.Dimensionless;
    /// <inheritdoc/>
    public string Legend => "Bytes read + written per operation / mean time (10^9 bytes/s)";

    /// <inheritdoc/>
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase) => GetValue(summary, benchmarkCase, summary.Style);

    /// <inheritdoc/>
    public string GetValue(Summary summary, BenchmarkCase benchmarkCase, SummaryStyle style)
    {
        var report = summary[benchmarkCase];
        if (report?.ResultStatistics is not { } stats) return "-";
        // A fresh instance with the case's parameters answers how many bytes the method moves.
        var instance = Activator.CreateInstance(benchmarkCase.Descriptor.Type);
        if (instance is not IMovesBytes moves) return "-";
        foreach (var p in benchmarkCase.Parameters.Items)
            benchmarkCase.Descriptor.Type.GetField(p.Name)?.SetValue(instance, p.Value);
        double bytes = moves.BytesMoved(benchmarkCase.Descriptor.WorkloadMethod.Name);
        return (bytes / stats.Mean).ToString("F1", System.Globalization.CultureInfo.InvariantCulture); // bytes/ns = GB/s
    }

    /// <inheritdoc/>
    public bool IsAvailable(Summary summary) => true;

    /// <inheritdoc/>
    public bool IsDefault(Summary summary, BenchmarkCase benchmarkCase) => false;
}
