namespace Serving.Backends.Vulkan.Kernels;

/// <summary>
/// How an op's shader is called: the shader's name (Shaders/&lt;Shader&gt;.comp, embedded as &lt;Shader&gt;.spv), its
/// storage-buffer bindings (set 0, bindings 0..Bindings-1, in the order the op passes them) and the bytes of the op's own
/// push constants. The dispatcher puts one uint per binding first in the push-constant block (the binding's start in
/// 32-bit words: views may begin anywhere a word begins, the descriptor starts at an aligned offset below it), then the
/// op's bytes. Specialization constants are passed per dispatch (<see cref="Spec"/>): constant_id i = value i.
/// </summary>
/// <param name="Shader">Shader file name without extension.</param>
/// <param name="Bindings">Storage buffers, bound at 0..Bindings-1.</param>
/// <param name="PushBytes">Bytes of the op's own push constants (a multiple of 4), after the binding offsets.</param>
internal sealed record KernelSpec(string Shader, int Bindings, int PushBytes)
{
    /// <summary>Total push-constant bytes: one word per binding plus the op's.</summary>
    public int TotalPushBytes => 4 * Bindings + PushBytes;
}

/// <summary>
/// Specialization constants shared by convention (constant_id → meaning); ops may use more ids after these.
/// </summary>
internal static class Spec
{
    /// <summary>constant_id 0: workgroup size x (the shaders declare <c>layout(local_size_x_id = 0) in;</c>).</summary>
    public const int WorkgroupSize = 0;

    /// <summary>constant_id 1: rows (or items) per workgroup.</summary>
    public const int RowsPerWorkgroup = 1;

    /// <summary>constant_id 2: reduction mode, reserved for choices within one build (a shader's shared-memory and
    /// subgroup reductions are two builds of its file, -DSUBGROUP → &lt;name&gt;.subgroup.spv, because subgroup SPIR-V
    /// declares capabilities a device without them must not even load).</summary>
    public const int ReductionMode = 2;
}
