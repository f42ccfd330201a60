namespace Serving.Conformance.Tests;

/// <summary>The conformance suite on the Vulkan backend (plugins/Serving.Backends.Vulkan), device 0, with the Khronos
/// validation layer on (Infrastructure/Backends.cs, OptionsFor): any validation message fails the test. Ops without a
/// shader yet are skipped with the device's reason.</summary>
public sealed class VulkanConformance() : ConformanceSuite("vulkan");
