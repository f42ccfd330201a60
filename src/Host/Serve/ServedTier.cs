using Serving.Abstractions;
using Serving.Engine.Models;
using Serving.Engine.Routing;
using Serving.Engine.Scheduling;

namespace Serving.Host.Serve;

/// <summary>A tier as the server runs it: its device (maybe shared with other tiers), model, scheduler and routing counters.</summary>
internal sealed record ServedTier(string Name, IAccelerator Device, LoadedModel Model, Scheduler Scheduler, Tier Tier);
