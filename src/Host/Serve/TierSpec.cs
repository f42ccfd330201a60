using Serving.Engine.Models;
using Serving.Engine.Scheduling;

namespace Serving.Host.Serve;

/// <summary>One model tier to serve (<c>serve --model NAME=FILE</c>).</summary>
/// <param name="Name">The name requests use; null = the model's name (a single <c>--model FILE</c>).</param>
/// <param name="ModelPath">The GGUF file.</param>
/// <param name="DeviceId">The device (backend:index); null = the registry's best.</param>
/// <param name="Model">How the model is placed (context, batch, KV cache); null = the host's <see cref="ServingHostOptions.Model"/>.</param>
/// <param name="Scheduler">Its scheduler's limits; null = the host's <see cref="ServingHostOptions.Scheduler"/>.</param>
/// <param name="TpotTargetMs">Its time-per-output-token target for shedding, ms; 0 = none.</param>
/// <param name="ExpectedTpotMs">Time per output token assumed until measured (from its tuning profile), ms; 0 = unknown.</param>
/// <param name="Draft">Speculative decoding for this tier (<c>serve --draft</c>); null = none.</param>
internal sealed record TierSpec(string? Name, string ModelPath, string? DeviceId = null, ModelOptions? Model = null,
    SchedulerOptions? Scheduler = null, double TpotTargetMs = 0, double ExpectedTpotMs = 0, TierDraft? Draft = null);

/// <summary>A tier's draft model (docs/speculative.md).</summary>
/// <param name="Spec">A model file, or self / self:N / self:TYPE / self:N:TYPE (Commands.DraftOptions).</param>
/// <param name="MaxTokens">Most draft tokens per step (k).</param>
/// <param name="Adaptive">Whether k adapts to the measured acceptance rate.</param>
internal sealed record TierDraft(string Spec, int MaxTokens = 4, bool Adaptive = true);
