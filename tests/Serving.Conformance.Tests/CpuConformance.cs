namespace Serving.Conformance.Tests;

/// <summary>The conformance suite on the CPU backend (plugins/Serving.Backends.Cpu).</summary>
public sealed class CpuConformance() : ConformanceSuite("cpu");
