using System.Runtime.InteropServices;
using Spectre.Console;

namespace Serving.Host.Cli;

/// <summary>What a progress bar counts: bytes get sizes and a rate beside the bar, items the elapsed and remaining time.</summary>
internal enum ProgressUnit
{
    /// <summary>Bytes written or loaded.</summary>
    Bytes,
    /// <summary>Windows, requests, steps.</summary>
    Items,
}

/// <summary>
/// A progress bar on stderr for long work (model creation and loading, perplexity, bench serve), drawn by
/// Spectre.Console around <see cref="Run{T}"/>'s work. On a terminal it redraws in place; on a pipe or file Spectre
/// prints a line at 25, 50, 75 and 95–100 % and nothing for work done within its first second, so logs stay short.
/// Stdout is never written, so results piped from a command stay clean.
/// </summary>
internal sealed class ProgressBar : IProgress<(long Done, long Total)>
{
    private readonly ProgressTask _task;
    private readonly string _label;

    private ProgressBar(ProgressTask task, string label)
    {
        _task = task;
        _label = label;
    }

    /// <summary>Runs <paramref name="work"/> with a bar labelled <paramref name="label"/>; returns its result, or rethrows its exception after closing the bar.</summary>
    public static T Run<T>(string label, ProgressUnit unit, Func<ProgressBar, T> work) =>
        RunAsync(label, unit, bar => Task.FromResult(work(bar))).GetAwaiter().GetResult();

    /// <summary>As <see cref="Run{T}"/>, for work without a result.</summary>
    public static void Run(string label, ProgressUnit unit, Action<ProgressBar> work) =>
        Run(label, unit, bar => { work(bar); return true; });

    /// <summary>As <see cref="Run{T}"/>, for asynchronous work.</summary>
    public static async Task<T> RunAsync<T>(string label, ProgressUnit unit, Func<ProgressBar, Task<T>> work)
    {
        var console = Terminal.Error;
        ProgressColumn[] columns = unit == ProgressUnit.Bytes
            ? [new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(), new TransferSpeedColumn(), new RemainingTimeColumn()]
            : [new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn(), new RemainingTimeColumn()];
        using var cursor = new CursorGuard(console);
        var progress = console.Progress().Columns(columns);
        progress.ExcludeVerticalPadding = true; // no blank line above and below the bar
        return await progress.StartAsync(context =>
        {
            // Indeterminate (an animated bar) until the work reports its first total.
            var task = context.AddTask(Markup.Escape(label), maxValue: 1).IsIndeterminate();
            return work(new ProgressBar(task, label));
        }).ConfigureAwait(false);
    }

    /// <summary>Sets the bar to <c>Done</c> of <c>Total</c> (bytes or items, per the bar's unit); a total ≤ 0 is ignored.</summary>
    public void Report((long Done, long Total) value)
    {
        if (value.Total <= 0) return;
        _task.IsIndeterminate = false;
        _task.MaxValue = value.Total;
        _task.Value = Math.Clamp(value.Done, 0, value.Total);
    }

    /// <summary>Shows <paramref name="status"/> after the label (plain text).</summary>
    public void Status(string status) => _task.Description = Markup.Escape($"{_label}  {status}");

    /// <summary>
    /// On a terminal the live bar hides the cursor until it closes. Ctrl+C, SIGTERM or an exit mid-bar would leave the
    /// user's shell without a cursor, so while a bar is open those paths show it again. The handlers never cancel a
    /// signal: what the signal does otherwise (end the process, or serve's own handling) is unchanged.
    /// </summary>
    private sealed class CursorGuard : IDisposable
    {
        private readonly IAnsiConsole _console;
        private readonly PosixSignalRegistration[] _signals = [];

        public CursorGuard(IAnsiConsole console)
        {
            _console = console;
            if (console.Profile.Capabilities is not { Interactive: true, Ansi: true }) return;
            _signals = [PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal), PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal)];
            AppDomain.CurrentDomain.ProcessExit += OnExit;
        }

        private void OnSignal(PosixSignalContext context) => _console.Cursor.Show();

        private void OnExit(object? sender, EventArgs e) => _console.Cursor.Show();

        public void Dispose()
        {
            if (_signals.Length == 0) return;
            foreach (var signal in _signals) signal.Dispose();
            AppDomain.CurrentDomain.ProcessExit -= OnExit;
        }
    }
}
