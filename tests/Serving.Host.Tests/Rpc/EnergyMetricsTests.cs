namespace Serving.Host.Tests.Rpc;

/// <summary>serve's metrics carry energy where the device has a meter, and say "not measured" where it has none.</summary>
[Collection("rpc")]
[Trait("Category", "Slow")] // a real server running the tiny model
public sealed class EnergyMetricsTests(RpcHostFixture fixture)
{
    [Fact]
    public async Task Metrics_ReportJoulesPerToken_WhereTheDeviceHasAMeter_ElseNotMeasured()
    {
        await using var host = fixture.Start();
        await using var c = await RawRpcClient.ConnectAsync(host.EndPoint);
        Assert.False((await c.CallAsync("generate", Args.Generate("Once upon a time", 8))).IsError);
        var m = (await c.CallAsync("metrics")).Result;
        var meter = host.Device.EnergyMeter;
        if (meter is null)
        {
            // This build machine (a VM without powercap): nothing is invented.
            Assert.Equal("not measured", Args.Str(m, "energy_method"));
            Assert.True(Args.Field(m, "energy_source").IsNil);
            Assert.True(Args.Field(m, "energy_joules").IsNil);
            Assert.True(Args.Field(m, "joules_per_token").IsNil);
        }
        else
        {
            // A machine with RAPL (or a GPU meter): the meter named, joules since start, per token through the model.
            Assert.Equal(meter.Source, Args.Str(m, "energy_source"));
            var joules = Args.Field(m, "energy_joules");
            if (joules.IsNil) return; // a meter the process may not read (RAPL without permission): no figure
            Assert.True(joules.TryGetDouble(out double j) && j >= 0, $"energy_joules {joules}");
            Assert.True(Args.Field(m, "joules_per_token").TryGetDouble(out double jpt));
            Assert.Equal(j / Args.Int(m, "computed_prompt_tokens"), jpt, 9); // one reading gives both
        }
    }
}
