using System.Globalization;

namespace Serving.Abstractions;

/// <summary>
/// A version of the backend contract, major.minor (docs/backends.md, "Versioning"). A plugin reports the version it
/// was built against (<see cref="IBackendPlugin.ContractVersion"/>); the host loads it when the majors are equal and
/// the plugin's minor is at most the host's: a minor adds only optional things (an op a backend may leave
/// unsupported, a virtual member with a default), so a plugin built against an older minor still loads. A major
/// changes something a backend must react to (a signature, a rule the conformance suite enforces).
/// </summary>
/// <param name="Major">Bumped on any change an existing backend must react to.</param>
/// <param name="Minor">Bumped when the contract grows by optional parts only.</param>
public readonly record struct ContractVersion(int Major, int Minor) : IComparable<ContractVersion>
{
    /// <summary>Major of the contract this assembly defines. A const, so a plugin's
    /// <c>new ContractVersion(ContractVersion.CurrentMajor, ContractVersion.CurrentMinor)</c> is fixed when the plugin
    /// is compiled, not read from the host's copy of this assembly at run time.</summary>
    public const int CurrentMajor = 2;

    /// <summary>Minor of the contract this assembly defines (a const, see <see cref="CurrentMajor"/>).</summary>
    public const int CurrentMinor = 1;

    /// <summary>The host's contract: 2.0 = op set v2 (backend-prepared weights, backend-owned KV cache, one validating
    /// front end, stream-ordered uploads, device timestamps, declared variants); 2.1 = energy meters may be power
    /// sensors (<see cref="IEnergyMeter.Kind"/>, <see cref="IEnergyMeter.TryReadWatts"/>, both with defaults).
    /// Plugins report the consts instead.</summary>
    public static ContractVersion Current { get; } = new(CurrentMajor, CurrentMinor);

    /// <summary>True when a plugin built against <paramref name="plugin"/> runs on a host built against this version.</summary>
    public bool Accepts(ContractVersion plugin) => plugin.Major == Major && plugin.Minor >= 0 && plugin.Minor <= Minor;

    /// <summary>Parses "2.0"; false for anything else.</summary>
    public static bool TryParse(string? text, out ContractVersion version)
    {
        version = default;
        if (text is null) return false;
        int dot = text.IndexOf('.');
        if (dot <= 0
            || !int.TryParse(text.AsSpan(0, dot), NumberStyles.None, CultureInfo.InvariantCulture, out int major)
            || !int.TryParse(text.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out int minor))
            return false;
        version = new ContractVersion(major, minor);
        return true;
    }

    /// <inheritdoc/>
    public int CompareTo(ContractVersion other) => Major != other.Major ? Major.CompareTo(other.Major) : Minor.CompareTo(other.Minor);

    /// <summary>"2.0".</summary>
    public override string ToString() => string.Create(CultureInfo.InvariantCulture, $"{Major}.{Minor}");
}
