namespace Serving.Host.Cli;

/// <summary>
/// A progress bar on stderr for long work (model creation, loading). On a terminal it redraws one line; when
/// stderr is redirected (CI, logs) it prints a line every 10% instead, so logs stay short.
/// </summary>
internal sealed class ProgressBar : IProgress<(long Done, long Total)>, IDisposable
{
    private readonly string _label;
    private readonly bool _interactive = !Console.IsErrorRedirected;
    private readonly DateTime _start = DateTime.UtcNow;
    private readonly object _gate = new();
    private int _lastPercent = -1;
    private DateTime _lastDraw;

    public ProgressBar(string label) => _label = label;

    public void Report((long Done, long Total) value)
    {
        if (value.Total <= 0) return;
        int percent = (int)(100 * Math.Clamp(value.Done / (double)value.Total, 0, 1));
        lock (_gate)
        {
            if (_interactive)
            {
                var now = DateTime.UtcNow;
                if (percent == _lastPercent || (percent < 100 && (now - _lastDraw).TotalMilliseconds < 100)) return;
                _lastDraw = now;
                int filled = percent * 30 / 100;
                double mb = value.Done / 1e6, secs = Math.Max(1e-3, (now - _start).TotalSeconds);
                Console.Error.Write($"\r{_label} [{new string('#', filled)}{new string('.', 30 - filled)}] {percent,3}%  {mb:0} MB  {mb / secs:0} MB/s ");
            }
            else if (percent / 10 > _lastPercent / 10 || _lastPercent < 0)
            {
                Console.Error.WriteLine($"{_label}: {percent}%");
            }
            _lastPercent = percent;
        }
    }

    public void Dispose()
    {
        if (_interactive && _lastPercent >= 0) Console.Error.WriteLine();
    }
}
