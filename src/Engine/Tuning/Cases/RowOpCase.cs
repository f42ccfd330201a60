using Serving.Abstractions;

namespace Serving.Engine.Tuning.Cases;

/// <summary>
/// The ops on activations only (RmsNorm, SwiGlu, Add, Argmax) at the model's row width: inputs of seeded N(0, 1) data,
/// one output. Activations are not rotated: in a real step they were just written by the op before and are in cache,
/// so timing them hot is what a step sees.
/// </summary>
internal sealed class RowOpCase : OpCase
{
    private readonly TensorView _a, _b, _weight, _y;
    private readonly float[] _hostA, _hostB, _hostWeight;
    private const float Eps = 1e-5f;

    public RowOpCase(IAccelerator device, OpKind op, int width, int maxRows, int seed) : base(device, maxRows)
    {
        if (op is not (OpKind.RmsNorm or OpKind.SwiGlu or OpKind.Add or OpKind.Argmax))
            throw new ArgumentException($"{op} is not a row op the tuner times", nameof(op));
        Op = op;
        Cols = width;
        try
        {
            _hostA = HostData.Normal(maxRows * width, seed);
            _hostB = HostData.Normal(maxRows * width, seed + 1);
            _hostWeight = HostData.Normal(width, seed + 2);
            _a = HostData.Upload(device, Owned, _hostA, maxRows, width);
            _b = HostData.Upload(device, Owned, _hostB, maxRows, width);
            _weight = HostData.Upload(device, Owned, _hostWeight, 1, width);
            _y = op == OpKind.Argmax
                ? HostData.Output(device, Owned, DataType.I32, 1, maxRows)
                : HostData.Output(device, Owned, DataType.F32, maxRows, width);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    public override OpKind Op { get; }
    public override DataType Type => DataType.F32;
    public override int Rows => 0;
    public override int Cols { get; }

    public override long Bytes(int t) => Op switch
    {
        OpKind.RmsNorm => 4L * (2L * t * Cols + Cols),
        OpKind.Argmax => 4L * t * Cols + 4L * t,
        _ => 4L * 3 * t * Cols,
    };

    public override double Flops(int t) => 0;

    public override string Describe() => $"{Op} width {Cols}";

    protected override double Limit => Op switch
    {
        OpKind.Argmax => 0,     // indices compared exactly
        OpKind.SwiGlu => 1e-8,  // f32 exp and divide, a fast expf of a few ulp
        _ => 1e-9,              // one or two f32 roundings per element
    };

    public override void Record(IComputeStream stream, KernelVariant variant, int t, int rotation) => Call(stream, variant, t);

    private void Call(IComputeStream stream, KernelVariant variant, int t)
    {
        var a = _a.SliceRows(0, t);
        switch (Op)
        {
            case OpKind.RmsNorm: stream.RmsNorm(a, _weight, _y.SliceRows(0, t), Eps, variant); break;
            case OpKind.SwiGlu: stream.SwiGlu(a, _b.SliceRows(0, t), _y.SliceRows(0, t), variant); break;
            case OpKind.Add: stream.Add(a, _b.SliceRows(0, t), _y.SliceRows(0, t), variant); break;
            default: stream.Argmax(a, _y with { Cols = t }, variant); break;
        }
    }

    protected override float[] RunAndRead(IComputeStream stream, KernelVariant variant, int t)
    {
        Call(stream, variant, t);
        stream.Synchronize();
        if (Op != OpKind.Argmax) return HostData.Read(stream, _y.SliceRows(0, t));
        var indices = new int[t];
        stream.Download(_y.Buffer, 0, System.Runtime.InteropServices.MemoryMarshal.AsBytes(indices.AsSpan()));
        return indices.Select(i => (float)i).ToArray();
    }

    protected override double Error(float[] output, int t)
    {
        int w = Cols;
        if (Op == OpKind.Argmax)
        {
            for (int r = 0; r < t; r++)
            {
                var row = _hostA.AsSpan(r * w, w);
                int best = 0;
                for (int i = 1; i < w; i++) if (row[i] > row[best]) best = i;
                if ((int)output[r] != best) return double.PositiveInfinity;
            }
            return 0;
        }
        var reference = new double[t * w];
        for (int r = 0; r < t; r++)
        {
            var a = _hostA.AsSpan(r * w, w);
            var b = _hostB.AsSpan(r * w, w);
            double meanSquare = 0;
            if (Op == OpKind.RmsNorm)
            {
                foreach (float v in a) meanSquare += (double)v * v;
                meanSquare /= w;
            }
            for (int i = 0; i < w; i++)
                reference[r * w + i] = Op switch
                {
                    OpKind.RmsNorm => a[i] / Math.Sqrt(meanSquare + Eps) * _hostWeight[i],
                    OpKind.SwiGlu => a[i] / (1 + Math.Exp(-a[i])) * b[i],
                    _ => (double)a[i] + b[i],
                };
        }
        double power = reference.Sum(v => v * v);
        return HostData.NormalizedError(output, reference, power);
    }
}
