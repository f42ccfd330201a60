using System.Globalization;
using Serving.Abstractions;

namespace Serving.Backends.Vulkan;

/// <summary>
/// A GPU's own meter in Linux hwmon, found under the device's PCI address (/sys/bus/pci/devices/&lt;address&gt;/hwmon/hwmonN,
/// the address from VK_EXT_pci_bus_info): energy1_input (µJ, cumulative: a <see cref="EnergyMeterKind.Counter"/>; amdgpu
/// on recent APUs, Intel xe/i915) where there is one, else power1_average or power1_input (µW: amdgpu's averaged power,
/// a <see cref="EnergyMeterKind.PowerSamples"/> meter, reported as power samples). Without a PCI address (lavapipe,
/// drivers without the extension) or such a file there is no meter: the device is "not measured". Never estimated.
/// </summary>
internal sealed class HwmonEnergyMeter : IEnergyMeter
{
    private readonly string _file;
    private readonly object _gate = new();
    private long _last = -1;
    private double _totalMicrojoules;

    private HwmonEnergyMeter(string source, string file, EnergyMeterKind kind)
    {
        Source = source;
        _file = file;
        Kind = kind;
    }

    /// <inheritdoc/>
    public string Source { get; }

    /// <inheritdoc/>
    public EnergyMeterKind Kind { get; }

    /// <summary>
    /// The meter of the device at <paramref name="pciAddress"/> ("0000:03:00.0") under <paramref name="sysRoot"/>
    /// ("/sys"), or null when the address is unknown or no hwmon directory of it has an energy or power file.
    /// </summary>
    public static HwmonEnergyMeter? TryOpen(string sysRoot, string? pciAddress)
    {
        if (string.IsNullOrEmpty(pciAddress)) return null;
        string hwmon = Path.Combine(sysRoot, "bus", "pci", "devices", pciAddress, "hwmon");
        try
        {
            if (!Directory.Exists(hwmon)) return null;
            foreach (string dir in Directory.GetDirectories(hwmon, "hwmon*").Order(StringComparer.Ordinal))
            {
                string name = ReadText(Path.Combine(dir, "name")) ?? Path.GetFileName(dir);
                foreach (var (file, kind) in new[] { ("energy1_input", EnergyMeterKind.Counter), ("power1_average", EnergyMeterKind.PowerSamples), ("power1_input", EnergyMeterKind.PowerSamples) })
                {
                    string path = Path.Combine(dir, file);
                    if (File.Exists(path))
                        return new HwmonEnergyMeter($"hwmon:{name} {file}{(kind == EnergyMeterKind.PowerSamples ? " (power samples)" : "")}", path, kind);
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }

    /// <inheritdoc/>
    public bool TryReadJoules(out double joules)
    {
        joules = 0;
        if (Kind != EnergyMeterKind.Counter || !TryReadLong(_file, out long raw)) return false;
        lock (_gate)
        {
            // A 64-bit microjoule counter does not wrap in practice; a smaller reading (driver reload) counts nothing.
            if (_last >= 0) _totalMicrojoules += Math.Max(0, raw - _last);
            _last = raw;
            joules = _totalMicrojoules / 1e6;
        }
        return true;
    }

    /// <inheritdoc/>
    public bool TryReadWatts(out double watts)
    {
        watts = 0;
        if (Kind != EnergyMeterKind.PowerSamples || !TryReadLong(_file, out long microwatts)) return false;
        watts = microwatts / 1e6;
        return true;
    }

    private static bool TryReadLong(string path, out long value)
    {
        value = 0;
        return ReadText(path) is { } text && long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }

    private static string? ReadText(string path)
    {
        try
        {
            return File.ReadAllText(path).Trim();
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }
    }
}
