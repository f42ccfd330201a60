namespace Serving.Abstractions;

/// <summary>
/// The version of the backend contract this assembly defines. A plugin reports the version it was built
/// against (<see cref="IBackendPlugin.ContractVersion"/>); the host loads it only when the numbers are equal
/// and otherwise says both. Bump on any change a backend must react to (a new op, a changed signature).
/// </summary>
public static class ContractVersion
{
    /// <summary>The contract version: 1 = op set v1 (docs/contract.md).</summary>
    public const int Current = 1;
}
