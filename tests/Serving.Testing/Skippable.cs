using Xunit;
using Xunit.Abstractions;
using Xunit.Sdk;

namespace Serving.Testing;

// xunit 2.9 has only static skips ([Fact(Skip = "...")]); whether a backend is present, or supports an op, is known
// only at run time. The pattern below (as in the Xunit.SkippableFact package, written here from the xunit 2
// extensibility API): a test throws SkipTestException; our test cases run with a message bus that turns the
// resulting "failed" message into a "skipped" one carrying the reason, and move the count from Failed to Skipped in
// the run summary. So a skipped case is reported by every runner as skipped — never as passed, never as failed.

/// <summary>Thrown by a test (through <see cref="Skip.If"/>) to report itself skipped with <see cref="Exception.Message"/> as the reason.</summary>
public sealed class SkipTestException(string reason) : Exception(reason);

/// <summary>Dynamic skips for <see cref="SkippableFactAttribute"/> and <see cref="SkippableTheoryAttribute"/> tests.</summary>
public static class Skip
{
    /// <summary>Ends the running test as skipped with <paramref name="reason"/> when <paramref name="condition"/> is true.</summary>
    public static void If(bool condition, string reason)
    {
        if (condition) throw new SkipTestException(reason);
    }
}

/// <summary>A fact that may call <see cref="Skip.If"/> to be reported as skipped with a reason.</summary>
[AttributeUsage(AttributeTargets.Method)]
[XunitTestCaseDiscoverer("Serving.Testing.SkippableFactDiscoverer", "Serving.Testing")]
public sealed class SkippableFactAttribute : FactAttribute;

/// <summary>A theory whose rows may call <see cref="Skip.If"/> to be reported as skipped with a reason.</summary>
[AttributeUsage(AttributeTargets.Method)]
[XunitTestCaseDiscoverer("Serving.Testing.SkippableTheoryDiscoverer", "Serving.Testing")]
public sealed class SkippableTheoryAttribute : TheoryAttribute;

/// <summary>Discovers <see cref="SkippableFactAttribute"/> tests as <see cref="SkippableTestCase"/>s.</summary>
public sealed class SkippableFactDiscoverer(IMessageSink diagnosticMessageSink) : FactDiscoverer(diagnosticMessageSink)
{
    /// <inheritdoc/>
    protected override IXunitTestCase CreateTestCase(ITestFrameworkDiscoveryOptions discoveryOptions, ITestMethod testMethod, IAttributeInfo factAttribute)
        => new SkippableTestCase(DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(),
            discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod);
}

/// <summary>Discovers <see cref="SkippableTheoryAttribute"/> tests: one <see cref="SkippableTestCase"/> per data row.</summary>
public sealed class SkippableTheoryDiscoverer(IMessageSink diagnosticMessageSink) : TheoryDiscoverer(diagnosticMessageSink)
{
    /// <inheritdoc/>
    protected override IEnumerable<IXunitTestCase> CreateTestCasesForDataRow(ITestFrameworkDiscoveryOptions discoveryOptions,
        ITestMethod testMethod, IAttributeInfo theoryAttribute, object[] dataRow)
        => [new SkippableTestCase(DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(),
            discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod, dataRow)];

    /// <inheritdoc/>
    protected override IEnumerable<IXunitTestCase> CreateTestCasesForTheory(ITestFrameworkDiscoveryOptions discoveryOptions,
        ITestMethod testMethod, IAttributeInfo theoryAttribute)
        => [new SkippableTheoryTestCase(DiagnosticMessageSink, discoveryOptions.MethodDisplayOrDefault(),
            discoveryOptions.MethodDisplayOptionsOrDefault(), testMethod)];
}

/// <summary>A test case (one fact or one theory row) whose <see cref="SkipTestException"/> is reported as a skip.</summary>
public sealed class SkippableTestCase : XunitTestCase
{
    /// <summary>For the xunit de-serializer only.</summary>
    [Obsolete("Called by the de-serializer; should only be called by deriving classes for de-serialization purposes")]
    public SkippableTestCase() { }

    /// <summary>Creates the test case.</summary>
    public SkippableTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay defaultMethodDisplay,
        TestMethodDisplayOptions defaultMethodDisplayOptions, ITestMethod testMethod, object[]? testMethodArguments = null)
        : base(diagnosticMessageSink, defaultMethodDisplay, defaultMethodDisplayOptions, testMethod, testMethodArguments) { }

    /// <inheritdoc/>
    public override async Task<RunSummary> RunAsync(IMessageSink diagnosticMessageSink, IMessageBus messageBus,
        object[] constructorArguments, ExceptionAggregator aggregator, CancellationTokenSource cancellationTokenSource)
    {
        var bus = new SkipTranslatingMessageBus(messageBus);
        var summary = await base.RunAsync(diagnosticMessageSink, bus, constructorArguments, aggregator, cancellationTokenSource);
        return bus.Adjust(summary);
    }
}

/// <summary>A theory whose data rows are only known at run time; each row's <see cref="SkipTestException"/> is a skip.</summary>
public sealed class SkippableTheoryTestCase : XunitTheoryTestCase
{
    /// <summary>For the xunit de-serializer only.</summary>
    [Obsolete("Called by the de-serializer; should only be called by deriving classes for de-serialization purposes")]
    public SkippableTheoryTestCase() { }

    /// <summary>Creates the test case.</summary>
    public SkippableTheoryTestCase(IMessageSink diagnosticMessageSink, TestMethodDisplay defaultMethodDisplay,
        TestMethodDisplayOptions defaultMethodDisplayOptions, ITestMethod testMethod)
        : base(diagnosticMessageSink, defaultMethodDisplay, defaultMethodDisplayOptions, testMethod) { }

    /// <inheritdoc/>
    public override async Task<RunSummary> RunAsync(IMessageSink diagnosticMessageSink, IMessageBus messageBus,
        object[] constructorArguments, ExceptionAggregator aggregator, CancellationTokenSource cancellationTokenSource)
    {
        var bus = new SkipTranslatingMessageBus(messageBus);
        var summary = await base.RunAsync(diagnosticMessageSink, bus, constructorArguments, aggregator, cancellationTokenSource);
        return bus.Adjust(summary);
    }
}

/// <summary>Passes messages through, replacing each "failed with SkipTestException" by "skipped, reason".</summary>
internal sealed class SkipTranslatingMessageBus(IMessageBus inner) : IMessageBus
{
    private int _skipped;

    public bool QueueMessage(IMessageSinkMessage message)
    {
        // ExceptionTypes[0] is the outermost exception; xunit already unwraps TargetInvocationException.
        if (message is ITestFailed failed && failed.ExceptionTypes.Length > 0
            && failed.ExceptionTypes[0] == typeof(SkipTestException).FullName)
        {
            Interlocked.Increment(ref _skipped);
            return inner.QueueMessage(new TestSkipped(failed.Test, failed.Messages[0]));
        }
        return inner.QueueMessage(message);
    }

    /// <summary>Moves the translated cases from Failed to Skipped.</summary>
    public RunSummary Adjust(RunSummary summary)
    {
        summary.Failed -= _skipped;
        summary.Skipped += _skipped;
        return summary;
    }

    // The inner bus belongs to the caller.
    public void Dispose() { }
}
