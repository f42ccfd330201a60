using System.Globalization;
using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Serving.Abstractions;

namespace Serving.Engine.Tuning;

/// <summary>
/// Tuning profiles on disk, one JSON file per (backend, device fingerprint, driver version, backend version, device
/// options, model shape) (docs/tuner.md). The folder: <c>$SERVING_TUNE_CACHE</c> when set, else
/// <c>$SERVING_HOME/tuning</c>, else <c>%LOCALAPPDATA%\serving\tuning</c> on Windows, else
/// <c>$XDG_CACHE_HOME/serving/tuning</c>, else <c>~/.cache/serving/tuning</c>. A file that cannot be read, does not
/// parse, has another format version or whose stored key differs from the one asked for is ignored with a warning,
/// never trusted.
/// </summary>
public sealed class ProfileCache
{
    /// <summary>JSON settings of profile files (camelCase, enums as names, indented).</summary>
    public static JsonSerializerOptions Json { get; } = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.CamelCase,
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter() },
        NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    };

    /// <summary>A cache in <paramref name="folder"/>.</summary>
    public ProfileCache(string folder)
    {
        ArgumentException.ThrowIfNullOrEmpty(folder);
        Folder = folder;
    }

    /// <summary>The cache in the default folder (<see cref="DefaultFolder"/>).</summary>
    public static ProfileCache Default => new(DefaultFolder());

    /// <summary>Where profiles live.</summary>
    public string Folder { get; }

    /// <summary>The default folder, from the environment (see the class summary).</summary>
    public static string DefaultFolder(Func<string, string?>? env = null, bool? windows = null)
    {
        env ??= Environment.GetEnvironmentVariable;
        bool isWindows = windows ?? OperatingSystem.IsWindows();
        if (env("SERVING_TUNE_CACHE") is { Length: > 0 } explicitFolder) return explicitFolder;
        if (env("SERVING_HOME") is { Length: > 0 } home) return Path.Combine(home, "tuning");
        if (isWindows && env("LOCALAPPDATA") is { Length: > 0 } local) return Path.Combine(local, "serving", "tuning");
        if (!isWindows && env("XDG_CACHE_HOME") is { Length: > 0 } xdg && Path.IsPathRooted(xdg)) return Path.Combine(xdg, "serving", "tuning");
        return Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache", "serving", "tuning");
    }

    /// <summary>The file for <paramref name="key"/>: "&lt;backend&gt;-&lt;hash of the identity&gt;.json".</summary>
    public string PathFor(ProfileKey key)
    {
        ArgumentNullException.ThrowIfNull(key);
        byte[] hash = SHA256.HashData(Encoding.UTF8.GetBytes(key.Identity));
        return Path.Combine(Folder, $"{Sanitize(key.Backend)}-{Convert.ToHexStringLower(hash.AsSpan(0, 8))}.json");
    }

    /// <summary>
    /// The stored profile for <paramref name="key"/>, or null (no file, or one that is unreadable, corrupt, of another
    /// format or for another key: then <paramref name="warning"/> says which and why).
    /// </summary>
    public TuningProfile? TryLoad(ProfileKey key, out string? warning)
    {
        string path = PathFor(key);
        warning = null;
        if (!File.Exists(path)) return null;
        TuningProfile? profile;
        try
        {
            profile = JsonSerializer.Deserialize<TuningProfile>(File.ReadAllText(path), Json);
        }
        catch (Exception e) when (e is JsonException or IOException or UnauthorizedAccessException or NotSupportedException or InvalidOperationException)
        {
            warning = $"ignoring tuning profile {path}: cannot read it ({e.Message})";
            return null;
        }
        string? problem = profile is null ? "empty"
            : profile.Format != TuningProfile.FormatVersion ? $"format {profile.Format}, this build reads {TuningProfile.FormatVersion}"
            : profile.Key is null || profile.Key.Identity != key.Identity ? "it was made for another device, driver, backend build or model shape"
            : profile.Limits is null || profile.DecodeCurve is null || profile.Ops is null || profile.DecodeCurve.Count == 0
              || (profile.Mode != Tuner.ScreenMode && !(profile.BandwidthBytesPerSecond > 0))
              || profile.Limits.MaxBatch < 1 || profile.Limits.TokenBudget < 1 ? "it is incomplete"
            : null;
        if (problem is not null)
        {
            warning = $"ignoring tuning profile {path}: {problem}";
            return null;
        }
        return profile;
    }

    /// <summary>Writes <paramref name="profile"/> atomically (a temporary file renamed over the old one); returns its path.</summary>
    public string Save(TuningProfile profile)
    {
        ArgumentNullException.ThrowIfNull(profile);
        string path = PathFor(profile.Key);
        Directory.CreateDirectory(Folder);
        string temp = path + $".{Guid.NewGuid():N}.tmp";
        try
        {
            File.WriteAllText(temp, JsonSerializer.Serialize(profile, Json));
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            File.Delete(temp);
        }
        return path;
    }

    /// <summary>
    /// The key of a profile for <paramref name="device"/> (as a plugin's probe or an opened device describes it),
    /// the backend assembly <paramref name="backend"/> (its version and build id), the device options and the model.
    /// </summary>
    public static ProfileKey KeyFor(DeviceDescriptor device, Assembly backend, DeviceOptions options, ModelShape model)
    {
        ArgumentNullException.ThrowIfNull(device);
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(model);
        return new ProfileKey(device.Backend, device.Id, device.Name, device.Fingerprint, device.DriverVersion, BackendVersion(backend),
            string.Create(CultureInfo.InvariantCulture, $"threads={options.Threads} reproducible={options.Reproducible}"), model.Key);
    }

    /// <summary>
    /// "name version build": the assembly's version and its module version id. Builds are deterministic, so the id
    /// changes when the backend's code (or the source revision stamped into it) does: a rebuilt backend gets a new key.
    /// </summary>
    public static string BackendVersion(Assembly backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        return $"{backend.GetName().Name} {backend.GetName().Version} build {backend.ManifestModule.ModuleVersionId:N}";
    }

    private static string Sanitize(string name) => new(name.Select(ch => char.IsAsciiLetterOrDigit(ch) ? char.ToLowerInvariant(ch) : '_').ToArray());
}
