namespace Serving.Server;

/// <summary>Counters (since start) and gauges (now) of an <see cref="RpcServer"/>'s connections, auth and memory budget.</summary>
/// <param name="Connections">Open connections now.</param>
/// <param name="ConnectionsAccepted">Connections admitted since start.</param>
/// <param name="ConnectionsRefused">Connections closed at once: no slot for their address or the server within <see cref="RpcServerOptions.AdmissionWait"/>.</param>
/// <param name="ConnectionsReclaimed">Idle connections closed to make room for a new client.</param>
/// <param name="ConnectionsWaiting">New connections waiting for a slot now.</param>
/// <param name="AuthFailures">Wrong tokens.</param>
/// <param name="AuthDelayed">Auth attempts held back by the per-address back-off before being checked.</param>
/// <param name="AuthRefused">Auth attempts refused unchecked because their address's back-off queue was full.</param>
/// <param name="WorkBytes">Bytes charged to the work budget now.</param>
/// <param name="WorkBudgetBytes">The work budget (<see cref="RpcServerOptions.MaxWorkBytes"/>).</param>
/// <param name="WorkPeakBytes">Most bytes charged at once since the last memory compaction (or start).</param>
/// <param name="RefusedOverBudget">Requests answered <c>overloaded</c> because they did not fit the work budget.</param>
/// <param name="Compactions">Memory compactions run after a burst (<see cref="RpcServerOptions.CompactAfterWorkBytes"/>).</param>
/// <param name="Collections">Background full collections started because an eighth of the work budget's worth of work had been released since the last.</param>
public readonly record struct RpcServerMetrics(
    int Connections,
    long ConnectionsAccepted,
    long ConnectionsRefused,
    long ConnectionsReclaimed,
    int ConnectionsWaiting,
    long AuthFailures,
    long AuthDelayed,
    long AuthRefused,
    long WorkBytes,
    long WorkBudgetBytes,
    long WorkPeakBytes,
    long RefusedOverBudget,
    long Compactions,
    long Collections);
