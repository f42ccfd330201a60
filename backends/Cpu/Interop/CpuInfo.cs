using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using Serving.Backends.Cpu.Kernels;

namespace Serving.Backends.Cpu.Interop;

/// <summary>
/// What the machine is, read cheaply from /proc (Linux) with portable fallbacks: model name, vendor, memory, and
/// the instruction sets the runtime will use. No side effects; safe to call from Probe.
/// </summary>
internal static class CpuInfo
{
    /// <summary>The CPU model ("AMD EPYC 9R14"), or the architecture when /proc/cpuinfo has none.</summary>
    public static string ModelName()
        => CpuInfoField("model name") ?? CpuInfoField("Model") ?? $"{RuntimeInformation.ProcessArchitecture} CPU";

    /// <summary>The vendor ("AMD", "Intel", "Arm"), or "unknown".</summary>
    public static string Vendor()
    {
        string? id = CpuInfoField("vendor_id");
        return id switch
        {
            "AuthenticAMD" => "AMD",
            "GenuineIntel" => "Intel",
            null => CpuInfoField("CPU implementer") is { } impl ? ArmImplementer(impl) : "unknown",
            _ => id,
        };
    }

    /// <summary>Total memory in bytes: /proc/meminfo MemTotal, else what the GC sees as available.</summary>
    public static long TotalMemoryBytes()
        => MemInfoBytes("MemTotal") ?? GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;

    /// <summary>Memory the system could hand out now (/proc/meminfo MemAvailable), or null when unreadable.</summary>
    public static long? AvailableMemoryBytes() => MemInfoBytes("MemAvailable");

    /// <summary>Instruction sets relevant to the kernels that the runtime reports as usable, e.g. "avx2,fma,avxvnni".</summary>
    public static string IsaFlags()
    {
        var flags = new List<string>();
        void Add(bool on, string name)
        {
            if (on)
                flags.Add(name);
        }
        Add(Sse42.IsSupported, "sse4.2");
        Add(Avx2.IsSupported, "avx2");
        Add(Fma.IsSupported, "fma");
        Add(AvxVnni.IsSupported, "avxvnni");
        Add(Avx512F.IsSupported, "avx512f");
        Add(Avx512BW.IsSupported, "avx512bw");
        Add(Avx512Vbmi.IsSupported, "avx512vbmi");
        Add(Avx10v1.IsSupported, "avx10.1");
        Add(AdvSimd.IsSupported, "neon");
        Add(AdvSimd.Arm64.IsSupported, "neon64");
        Add(Dp.IsSupported, "dotprod");
        Add(Vector512.IsHardwareAccelerated, "v512");
        return flags.Count == 0 ? "none" : string.Join(',', flags);
    }

    /// <summary>The runtime and SIMD tier in use (".NET 10.0.1, Vector256"): a tuner cache key part.</summary>
    public static string RuntimeVersion() => $".NET {Environment.Version}, {Simd.TierName}";

    private static string ArmImplementer(string code) => code.Trim().ToLowerInvariant() switch
    {
        "0x41" => "Arm",
        "0x51" => "Qualcomm",
        "0x61" => "Apple",
        "0x48" => "HiSilicon",
        "0xc0" => "Ampere",
        _ => $"implementer {code.Trim()}",
    };

    // /proc/cpuinfo repeats every field per logical CPU (hundreds of KB on big servers): read it once per process.
    private static readonly Lazy<string[]> CpuInfoLines = new(() => ReadLines("/proc/cpuinfo"));

    private static string? CpuInfoField(string key)
    {
        foreach (string line in CpuInfoLines.Value)
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && line.AsSpan(0, colon).Trim().SequenceEqual(key))
            {
                string value = line[(colon + 1)..].Trim();
                if (value.Length > 0)
                    return value;
            }
        }
        return null;
    }

    private static long? MemInfoBytes(string key)
    {
        foreach (string line in ReadLines("/proc/meminfo"))
        {
            if (!line.StartsWith(key + ":", StringComparison.Ordinal))
                continue;
            string[] parts = line[(key.Length + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 1 && long.TryParse(parts[0], out long value) && value >= 0)
                return parts.Length >= 2 && parts[1] == "kB" ? value * 1024 : value;
        }
        return null;
    }

    private static string[] ReadLines(string path)
    {
        string[] lines;
        try
        {
            lines = File.Exists(path) ? File.ReadAllLines(path) : [];
        }
        catch (IOException)
        {
            lines = [];
        }
        catch (UnauthorizedAccessException)
        {
            lines = [];
        }
        return lines;
    }
}
