using Serving.Abstractions;
using Serving.Engine.Tuning;

namespace Serving.Engine.Tests.Tuning;

public sealed class KernelPlanTests
{
    private static KernelVariant V(string name, bool invariant = true, int minRows = 0) =>
        new(name, OpKind.MatMul, DataType.F32, name) { BatchInvariant = invariant, AppliesTo = new VariantShapes(minRows) };

    private static readonly FakeDevice Device = new(
    [
        new(V("a"), _ => 1), new(V("b"), _ => 1), new(V("big", minRows: 6), _ => 1), new(V("split", invariant: false), _ => 1),
    ]);

    private static KernelChoice C(int batch, string variant, int rows = 8, int cols = 32) => new(OpKind.MatMul, DataType.F32, rows, cols, batch, variant);

    [Fact]
    public void UsesTheLargestBucketAtMostTheBatch()
    {
        var selector = new KernelPlan([C(1, "a"), C(4, "b"), C(16, "a")]).Bind(Device, reproducible: true);
        Assert.Equal("a", selector.For(OpKind.MatMul, DataType.F32, 8, 32, 1)?.Name);
        Assert.Equal("a", selector.For(OpKind.MatMul, DataType.F32, 8, 32, 3)?.Name);
        Assert.Equal("b", selector.For(OpKind.MatMul, DataType.F32, 8, 32, 4)?.Name);
        Assert.Equal("b", selector.For(OpKind.MatMul, DataType.F32, 8, 32, 15)?.Name);
        Assert.Equal("a", selector.For(OpKind.MatMul, DataType.F32, 8, 32, 300)?.Name);
        Assert.Null(selector.For(OpKind.MatMul, DataType.F32, 9, 32, 4));    // another shape: the default
        Assert.Null(selector.For(OpKind.MatMul, DataType.Q8_0, 8, 32, 4));   // another type
    }

    [Fact]
    public void NeverPassesAVariantOutsideItsShapes()
    {
        var selector = new KernelPlan([C(4, "big")]).Bind(Device, reproducible: true);
        Assert.Null(selector.For(OpKind.MatMul, DataType.F32, 8, 32, 4));
        Assert.Equal("big", selector.For(OpKind.MatMul, DataType.F32, 8, 32, 6)?.Name);
    }

    [Fact]
    public void StaleNamesAndNonInvariantVariantsOnAReproducibleStreamFallBackToTheDefault()
    {
        var plan = new KernelPlan([C(1, "gone"), C(1, "split", rows: 4)]);
        Assert.Equal(["MatMul f32: gone"], plan.Unknown(Device));
        Assert.Null(plan.Bind(Device, reproducible: true).For(OpKind.MatMul, DataType.F32, 8, 32, 1));
        Assert.Null(plan.Bind(Device, reproducible: true).For(OpKind.MatMul, DataType.F32, 4, 32, 1));
        Assert.Equal("split", plan.Bind(Device, reproducible: false).For(OpKind.MatMul, DataType.F32, 4, 32, 1)?.Name);
    }

    [Fact]
    public void CountsChoicesThatAreNotTheDefault()
    {
        Assert.Equal(1, new KernelPlan([C(1, "a"), C(4, "b")]).NonDefaultCount(Device));
    }
}
