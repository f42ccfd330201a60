namespace Serving.Conformance.Tests;

/// <summary>The conformance suite on the scalar test backend (tests/TestPlugins/Scalar), a plain backend written from
/// docs/backends.md alone: it proves the guide is enough to pass the suite.</summary>
public sealed class ScalarConformance() : ConformanceSuite("scalar");
