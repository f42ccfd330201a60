using ILGPU;
using ILGPU.Runtime;
using Serving.Abstractions;
using Serving.Backends.Cuda.Kernels.Formats;

namespace Serving.Backends.Cuda.Kernels;

/// <summary>Every kernel of the backend, loaded (compiled by ILGPU: PTX on a GPU, IL on the CPU accelerator) the first
/// time it is launched, for one device and one <see cref="IKernelMode"/>.</summary>
internal interface IKernelSet
{
    void Embed(DataType type, AcceleratorStream s, KernelConfig c, WeightView table, ArrayView<int> ids, ArrayView<float> output, int vocabulary, long total);

    void RmsNorm(AcceleratorStream s, KernelConfig c, ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, int rows, int d, float eps);

    void QuantizeActivations(AcceleratorStream s, KernelConfig c, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> xd, int blocks);

    void MatMul(DataType type, AcceleratorStream s, KernelConfig c, WeightView w, MatMulInputs x, ArrayView<float> y, MatMulShape shape);

    void SumSplits(AcceleratorStream s, KernelConfig c, ArrayView<float> partials, ArrayView<float> y, long count, int splits);

    void Rope(AcceleratorStream s, KernelConfig c, ArrayView<float> x, ArrayView<int> positions, ArrayView<float> inverseFrequencies, Rope.Shape shape, long total);

    void KvWrite(AcceleratorStream s, KernelConfig c, ArrayView<float> k, ArrayView<float> v, ArrayView<int> slots, ArrayView<float> f32, ArrayView<ushort> f16, KvPlaneShape plane, long total);

    void Attention(AcceleratorStream s, KernelConfig c, ArrayView<float> q, ArrayView<float> output, ArrayView<float> f32, ArrayView<ushort> f16,
        KvPlaneShape plane, ArrayView<int> positions, ArrayView<int> sequence, ArrayView<int> blockTables, Attention.Shape shape);

    void SwiGlu(AcceleratorStream s, KernelConfig c, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output, long total);

    void Add(AcceleratorStream s, KernelConfig c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> output, long total, int broadcastCols);

    void Gather(AcceleratorStream s, KernelConfig c, ArrayView<float> source, ArrayView<int> rows, ArrayView<float> output, int sourceRows, int cols, long total);

    void Argmax(AcceleratorStream s, KernelConfig c, ArrayView<float> logits, ArrayView<int> output, int rows, int cols);
}

/// <summary>The kernels of one mode on one ILGPU accelerator.</summary>
internal sealed class KernelSet<TM>(Accelerator accelerator) : IKernelSet where TM : struct, IKernelMode
{
    private readonly Dictionary<DataType, Lazy<Action<AcceleratorStream, KernelConfig, WeightView, ArrayView<int>, ArrayView<float>, int, long>>> _embed =
        Variants.WeightTypes.ToDictionary(t => t, t => new Lazy<Action<AcceleratorStream, KernelConfig, WeightView, ArrayView<int>, ArrayView<float>, int, long>>(() => t switch
        {
            DataType.F32 => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<F32Format>),
            DataType.F16 => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<F16Format>),
            DataType.BF16 => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<BF16Format>),
            DataType.Q8_0 => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<Q8_0Format>),
            DataType.Q4_0 => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<Q4_0Format>),
            DataType.Q5_0 => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<Q5_0Format>),
            DataType.Q4_K => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<Q4_KFormat>),
            DataType.Q5_K => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<Q5_KFormat>),
            _ => accelerator.LoadKernel<WeightView, ArrayView<int>, ArrayView<float>, int, long>(Kernels.Embed.Kernel<Q6_KFormat>),
        }));

    private readonly Dictionary<DataType, Lazy<Action<AcceleratorStream, KernelConfig, WeightView, MatMulInputs, ArrayView<float>, MatMulShape>>> _matMul =
        Variants.WeightTypes.ToDictionary(t => t, t => new Lazy<Action<AcceleratorStream, KernelConfig, WeightView, MatMulInputs, ArrayView<float>, MatMulShape>>(() => t switch
        {
            DataType.F32 => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, F32Format>),
            DataType.F16 => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, F16Format>),
            DataType.BF16 => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, BF16Format>),
            DataType.Q8_0 => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, Q8_0Format>),
            DataType.Q4_0 => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, Q4_0Format>),
            DataType.Q5_0 => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, Q5_0Format>),
            DataType.Q4_K => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, Q4_KFormat>),
            DataType.Q5_K => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, Q5_KFormat>),
            _ => accelerator.LoadKernel<WeightView, MatMulInputs, ArrayView<float>, MatMulShape>(Kernels.MatMul.Kernel<TM, Q6_KFormat>),
        }));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>> _rmsNorm =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, int, int, float>(Kernels.RmsNorm.Kernel<TM>));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<byte>, ArrayView<float>, int>> _quantize =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<byte>, ArrayView<float>, int>(Kernels.QuantizeActivations.Kernel<TM>));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, long, int>> _sumSplits =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, long, int>(Kernels.MatMul.SumSplits));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, Rope.Shape, long>> _rope =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, Rope.Shape, long>(Kernels.Rope.Kernel));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, KvPlaneShape, long>> _kvWrite =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<int>, ArrayView<float>, ArrayView<ushort>, KvPlaneShape, long>(Kernels.KvWrite.Kernel));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, KvPlaneShape, ArrayView<int>, ArrayView<int>, ArrayView<int>, Attention.Shape>> _attention =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<ushort>, KvPlaneShape, ArrayView<int>, ArrayView<int>, ArrayView<int>, Attention.Shape>(Kernels.Attention.Kernel<TM>));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, long>> _swiGlu =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, long>(Kernels.SwiGlu.Kernel));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, long, int>> _add =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, long, int>(Kernels.Add.Kernel));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, long>> _gather =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, ArrayView<float>, int, int, long>(Kernels.Gather.Kernel));

    private readonly Lazy<Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, int, int>> _argmax =
        new(() => accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, int, int>(Kernels.Argmax.Kernel<TM>));

    public void Embed(DataType type, AcceleratorStream s, KernelConfig c, WeightView table, ArrayView<int> ids, ArrayView<float> output, int vocabulary, long total)
        => _embed[type].Value(s, c, table, ids, output, vocabulary, total);

    public void RmsNorm(AcceleratorStream s, KernelConfig c, ArrayView<float> x, ArrayView<float> w, ArrayView<float> y, int rows, int d, float eps)
        => _rmsNorm.Value(s, c, x, w, y, rows, d, eps);

    public void QuantizeActivations(AcceleratorStream s, KernelConfig c, ArrayView<float> x, ArrayView<byte> xq, ArrayView<float> xd, int blocks)
        => _quantize.Value(s, c, x, xq, xd, blocks);

    public void MatMul(DataType type, AcceleratorStream s, KernelConfig c, WeightView w, MatMulInputs x, ArrayView<float> y, MatMulShape shape)
        => _matMul[type].Value(s, c, w, x, y, shape);

    public void SumSplits(AcceleratorStream s, KernelConfig c, ArrayView<float> partials, ArrayView<float> y, long count, int splits)
        => _sumSplits.Value(s, c, partials, y, count, splits);

    public void Rope(AcceleratorStream s, KernelConfig c, ArrayView<float> x, ArrayView<int> positions, ArrayView<float> inverseFrequencies, Rope.Shape shape, long total)
        => _rope.Value(s, c, x, positions, inverseFrequencies, shape, total);

    public void KvWrite(AcceleratorStream s, KernelConfig c, ArrayView<float> k, ArrayView<float> v, ArrayView<int> slots, ArrayView<float> f32, ArrayView<ushort> f16, KvPlaneShape plane, long total)
        => _kvWrite.Value(s, c, k, v, slots, f32, f16, plane, total);

    public void Attention(AcceleratorStream s, KernelConfig c, ArrayView<float> q, ArrayView<float> output, ArrayView<float> f32, ArrayView<ushort> f16,
        KvPlaneShape plane, ArrayView<int> positions, ArrayView<int> sequence, ArrayView<int> blockTables, Attention.Shape shape)
        => _attention.Value(s, c, q, output, f32, f16, plane, positions, sequence, blockTables, shape);

    public void SwiGlu(AcceleratorStream s, KernelConfig c, ArrayView<float> gate, ArrayView<float> up, ArrayView<float> output, long total)
        => _swiGlu.Value(s, c, gate, up, output, total);

    public void Add(AcceleratorStream s, KernelConfig c, ArrayView<float> a, ArrayView<float> b, ArrayView<float> output, long total, int broadcastCols)
        => _add.Value(s, c, a, b, output, total, broadcastCols);

    public void Gather(AcceleratorStream s, KernelConfig c, ArrayView<float> source, ArrayView<int> rows, ArrayView<float> output, int sourceRows, int cols, long total)
        => _gather.Value(s, c, source, rows, output, sourceRows, cols, total);

    public void Argmax(AcceleratorStream s, KernelConfig c, ArrayView<float> logits, ArrayView<int> output, int rows, int cols)
        => _argmax.Value(s, c, logits, output, rows, cols);
}
