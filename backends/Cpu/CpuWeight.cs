using System.Runtime.InteropServices;
using Serving.Abstractions;
using Serving.Backends.Cpu.Kernels;

namespace Serving.Backends.Cpu;

/// <summary>
/// A weight prepared by <see cref="CpuAccelerator.PrepareWeight"/>: the GGUF rows exactly as the file stores them
/// (the kernels stream the block layout as it is), either read in place from the caller's persistent memory (a
/// memory-mapped file: zero copy) or copied once into 64-byte aligned native memory this weight owns.
/// </summary>
internal sealed unsafe class CpuWeight : IDeviceWeight
{
    private readonly CpuAccelerator _owner;
    private byte* _pointer;
    private int _disposed;
    private int _halvesFinite; // 0 not yet known, 1 yes, 2 no

    /// <summary>Wraps <paramref name="pointer"/>; <paramref name="owned"/> says whether Dispose frees it.</summary>
    internal CpuWeight(CpuAccelerator owner, in WeightSource source, WeightFormat format, byte* pointer, bool owned)
    {
        _owner = owner;
        _pointer = pointer;
        Name = source.Name;
        Type = source.Type;
        Rows = source.Rows;
        Cols = source.Cols;
        RowBytes = source.RowBytes;
        Format = format;
        Owned = owned;
        DeviceBytes = owned ? source.Bytes : 0;
    }

    /// <inheritdoc/>
    public IAccelerator Device => _owner;

    /// <summary>The tensor's name, for messages.</summary>
    internal string Name { get; }

    /// <inheritdoc/>
    public DataType Type { get; }

    /// <inheritdoc/>
    public int Rows { get; }

    /// <inheritdoc/>
    public int Cols { get; }

    /// <summary>Bytes of one row (GGUF layout).</summary>
    internal long RowBytes { get; }

    /// <summary>The kernels of the weight's type.</summary>
    internal WeightFormat Format { get; }

    /// <summary>True when Dispose frees the memory (a copy); false when it reads the source in place.</summary>
    internal bool Owned { get; }

    /// <inheritdoc/>
    public long DeviceBytes { get; }

    /// <inheritdoc/>
    public bool ReadsSourceInPlace => !Owned;

    /// <inheritdoc/>
    public bool IsDisposed => Volatile.Read(ref _disposed) != 0;

    /// <summary>Row 0. Throws ObjectDisposedException after Dispose.</summary>
    internal byte* Pointer
    {
        get
        {
            ObjectDisposedException.ThrowIf(IsDisposed, this);
            return _pointer;
        }
    }

    /// <summary>
    /// For an F16 weight: true when no element is ∞ or NaN, so MatMul may widen with <c>F16FiniteRow</c>. Found by one
    /// pass over the rows the first time it is asked (the memory is unchanged for the weight's lifetime, by the
    /// contract of <see cref="WeightSource"/>) and kept; false for every other type.
    /// </summary>
    internal bool HalvesFinite
    {
        get
        {
            int known = Volatile.Read(ref _halvesFinite);
            if (known == 0)
            {
                known = Type == DataType.F16 && !Kernels.HalfVector.HasSpecial(Pointer, checked((int)RowBytes), Rows, Cols) ? 1 : 2;
                Volatile.Write(ref _halvesFinite, known);
            }
            return known == 1;
        }
    }

    /// <summary>Frees an owned copy (once) and tells the accelerator.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
            return;
        if (Owned)
            Interop.PageMemory.Free(_pointer);
        _pointer = null;
        _owner.OnWeightDisposed(this);
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} [{Rows}, {Cols}] {Type.Name()}";
}
