namespace Serving.Backends.Cuda.Kernels;

/// <summary>
/// How a kernel spreads one unit of work (an output row, a (row, head) pair) over the 32 lanes of a warp. Every kernel
/// is generic over its mode; ILGPU specializes it per mode, so a mode costs nothing at run time.
/// <list type="bullet">
/// <item><see cref="WarpLanes"/>, <see cref="WarpDp4aLanes"/>: one warp per unit, lane l does lane l's share, then a
/// warp reduction through ILGPU.Algorithms (the GPU form).</item>
/// <item><see cref="SerialLanes"/>: one thread per unit that computes the 32 lanes' shares one after another and adds
/// them in the same tree the warp reduction uses (ILGPU.Algorithms' shuffle-down order), so it gives the warp form's
/// bits. ILGPU's CPU accelerator runs a warp as 32 OS threads synchronising at every shuffle (milliseconds per
/// reduction on two cores); the test device runs this mode instead, and a test checks it bit for bit against the warp
/// form on the CPU accelerator (docs in backends/Cuda/README.md).</item>
/// </list>
/// </summary>
internal interface IKernelMode
{
    /// <summary>True: one thread per unit, lanes in a loop.</summary>
    bool Serial { get; }

    /// <summary>True: int8 dot products through PTX <c>dp4a</c> (sm_61 and later); false: portable int8 arithmetic.</summary>
    bool Dp4a { get; }
}

/// <summary>One warp per unit, portable int8 arithmetic (GPUs before sm_61, and the CPU accelerator's warp check).</summary>
internal struct WarpLanes : IKernelMode
{
    /// <inheritdoc/>
    public readonly bool Serial => false;

    /// <inheritdoc/>
    public readonly bool Dp4a => false;
}

/// <summary>One warp per unit, int8 dot products through PTX <c>dp4a</c> (sm_61 and later).</summary>
internal struct WarpDp4aLanes : IKernelMode
{
    /// <inheritdoc/>
    public readonly bool Serial => false;

    /// <inheritdoc/>
    public readonly bool Dp4a => true;
}

/// <summary>One thread per unit computing the 32 lanes in turn (the CPU test device).</summary>
internal struct SerialLanes : IKernelMode
{
    /// <inheritdoc/>
    public readonly bool Serial => true;

    /// <inheritdoc/>
    public readonly bool Dp4a => false;
}
