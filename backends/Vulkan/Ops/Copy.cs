using Serving.Abstractions;
using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Ops;

/// <summary>
/// Byte copy between views. Whole aligned words go through Shaders/copy.comp (what kernels' loads and stores see: the
/// tuner's bandwidth probe); any other byte count or offset through vkCmdCopyBuffer, which has no alignment rule.
/// </summary>
internal static class Copy
{
    /// <summary>Bindings source, destination; push: words.</summary>
    public static readonly KernelSpec Kernel = new("copy", Bindings: 2, PushBytes: 4);

    private const uint Workgroup = 256;
    private const uint WordsPerInvocation = 4;


    private struct Push
    {
        public uint Words;
    }

    /// <summary>Copy moves bytes of any type: one variant per type, named for it.</summary>
    public static IReadOnlyList<KernelVariant> Variants(VulkanAccelerator device, DataType type) => Enum.IsDefined(type)
        ? [new KernelVariant($"copy_{type.Name()}_words", OpKind.Copy, type, "four 32-bit words per invocation; unaligned bytes by vkCmdCopyBuffer")]
        : [];

    /// <summary>Records the op (arguments checked by the front end).</summary>
    public static void Record(VulkanStream s, in TensorView source, in TensorView destination, KernelVariant variant)
    {
        long bytes = source.ByteLength;
        var src = (VulkanBuffer)source.Buffer;
        var dst = (VulkanBuffer)destination.Buffer;
        if (bytes % 4 != 0 || source.Offset % 4 != 0 || destination.Offset % 4 != 0 || bytes / 4 > uint.MaxValue)
        {
            s.RecordCopy(src, source.Offset, dst, destination.Offset, bytes);
            return;
        }
        // A binding spans at most maxStorageBufferRange (128 MiB on lavapipe): a larger copy (the bandwidth probe's
        // 512 MiB) goes in chunks, each a dispatch of its own; leave room for the offset's alignment slack.
        VulkanAccelerator device = s.Accelerator;
        long align = Math.Max(16, (long)device.Facts.Limits.MinStorageBufferOffsetAlignment);
        long chunk = Math.Max(align, (device.MaxBindingBytes - align) / align * align);
        for (long done = 0; done < bytes; done += chunk)
        {
            long n = Math.Min(chunk, bytes - done);
            long words = n / 4;
            var (x, y) = VulkanStream.Grid((words + Workgroup * WordsPerInvocation - 1) / (Workgroup * WordsPerInvocation));
            s.Dispatch(Kernel, [Workgroup],
                [new BufferRange(src, source.Offset + done, n, false), new BufferRange(dst, destination.Offset + done, n, true)],
                new Push { Words = (uint)words }, x, y);
        }
    }
}
