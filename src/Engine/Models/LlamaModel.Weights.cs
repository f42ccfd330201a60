using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Quantization;

namespace Serving.Engine.Models;

public sealed partial class LlamaModel
{
    /// <summary>
    /// Places tensors on the device: each weight matrix through <see cref="IAccelerator.PrepareWeight"/> from the mapped
    /// file (persistent when the model may read the mapping in place), each small vector converted to F32 on the host.
    /// Progress is reported per tensor, in bytes of the file.
    /// </summary>
    private sealed unsafe class WeightLoader
    {
        private readonly LlamaModel _model;
        private readonly GgufFile _file;
        private readonly IAccelerator _device;
        private readonly bool _persistent;
        private readonly IProgress<(long Done, long Total)>? _progress;
        private readonly long _total;
        private long _done;
        private bool _allInPlace = true;
        private readonly DataType? _reencode;
        private bool _anyInPlace;

        public WeightLoader(LlamaModel model, GgufFile file, IAccelerator device, bool useMmap, IProgress<(long, long)>? progress, DataType? reencode = null)
        {
            _reencode = reencode;
            _model = model;
            _file = file;
            _device = device;
            _persistent = useMmap;
            _progress = progress;
            _total = file.Tensors.Sum(t => t.ByteSize);
        }

        /// <summary>A weight matrix [rows, cols] (GGUF dims {cols, rows}), prepared by the backend.</summary>
        public IDeviceWeight Matrix(ModelRequirements.MatrixSpec spec)
        {
            GgufTensorInfo t = ModelRequirements.Tensor(_file, spec);
            if (_reencode is { } type && type != t.Type) return Reencoded(spec, t, type);
            var source = new WeightSource(spec.Name, (nint)(_file.BasePointer + t.Offset), t.ByteSize, t.Type, spec.Rows, spec.Cols, _persistent);
            IDeviceWeight weight = _model.Own(_device.PrepareWeight(source));
            _model.WeightBytes += t.ByteSize;
            // One copy of the weights: the device holds its own, so the file's pages (in this process's mapping and
            // in the page cache) are given back now, not kept beside it until the file is closed.
            if (!weight.ReadsSourceInPlace)
                _file.ReleasePages(t.Offset, t.ByteSize);
            _allInPlace &= weight.ReadsSourceInPlace;
            _anyInPlace |= weight.ReadsSourceInPlace;
            _model.WeightsMapped = _allInPlace;
            Advance(t.ByteSize);
            return weight;
        }

        /// <summary>The matrix re-encoded to <paramref name="type"/> on the host, then copied by the backend (not persistent).</summary>
        private IDeviceWeight Reencoded(ModelRequirements.MatrixSpec spec, GgufTensorInfo t, DataType type)
        {
            if (spec.Cols % type.BlockSize() != 0)
                throw new ModelLoadException(spec.Name, $"rows of {spec.Cols} elements are not whole {type.Name()} blocks of {type.BlockSize()}");
            foreach (OpKind op in spec.Name == "token_embd.weight" ? [OpKind.Embed, OpKind.MatMul] : (OpKind[])[OpKind.MatMul])
                if (!_device.Supports(new OpQuery(op, type, spec.Rows, spec.Cols)).Supported)
                    throw new ModelLoadException(spec.Name, $"the device cannot run {op} on {type.Name()} weights of [{spec.Rows}, {spec.Cols}]");
            long srcRow = t.Type.RowBytes(spec.Cols), dstRow = type.RowBytes(spec.Cols);
            byte[] encoded = GC.AllocateUninitializedArray<byte>(checked((int)(dstRow * spec.Rows)));
            Parallel.For(0, spec.Rows, () => new float[spec.Cols], (r, _, row) =>
            {
                Dequantizer.DequantizeRow(t.Type, _file.GetTensorBytes(t).Slice((int)(r * srcRow), (int)srcRow), row);
                Quantizer.Quantize(type, row, encoded.AsSpan((int)(r * dstRow), (int)dstRow));
                return row;
            }, _ => { });
            IDeviceWeight weight;
            fixed (byte* p = encoded)
                weight = _model.Own(_device.PrepareWeight(new WeightSource(spec.Name, (nint)p, encoded.Length, type, spec.Rows, spec.Cols, Persistent: false)));
            _model.WeightBytes += encoded.Length;
            _allInPlace = false;
            _model.WeightsMapped = false;
            Advance(t.ByteSize);
            return weight;
        }

        /// <summary>A 1-D tensor of <paramref name="length"/> elements, converted to F32 on the host.</summary>
        public TensorView Vector(string name, int length) => Small(_file.FindTensor(name) ?? throw new ModelLoadException(name, "missing required tensor"), length);

        public TensorView? OptionalVector(string name, int length) => _file.FindTensor(name) is { } t ? Small(t, length) : null;

        public float[] HostFloats(GgufTensorInfo t, int length)
        {
            if (t.Dims.Length != 1 || t.Dims[0] != length)
                throw new ModelLoadException(t.Name, $"shape [{string.Join(", ", t.Dims)}], expected [{length}]");
            if (!t.IsImplementedType)
                throw new ModelLoadException(t.Name, $"tensor type {t.TypeName} is not supported for a vector");
            var values = new float[length];
            Dequantizer.DequantizeRow(t.Type, _file.GetTensorBytes(t), values);
            if (!values.All(float.IsFinite)) throw new ModelLoadException(t.Name, "holds NaN or Inf");
            Advance(t.ByteSize);
            return values;
        }

        private TensorView Small(GgufTensorInfo t, int length)
        {
            // Norms and biases are tiny (D floats); one buffer each keeps the views simple.
            float[] values = HostFloats(t, length);
            var b = _model.Own(_device.Allocate(length * sizeof(float)));
            _device.Upload(b, 0, MemoryMarshal.AsBytes(values.AsSpan()));
            return new TensorView(b, 0, DataType.F32, 1, length);
        }

        private void Advance(long n)
        {
            _done += n;
            _progress?.Report((_done, _total));
        }

        public void Finish()
        {
            // Nothing reads the tensor data in place: the whole region goes back, including the pages tensors share at
            // their edges and any the kernel read around a fault after their tensor was given back.
            if (!_anyInPlace)
                _file.ReleasePages(_file.DataOffset, _file.FileLength - _file.DataOffset);
            _progress?.Report((_total, _total));
        }
    }
}
