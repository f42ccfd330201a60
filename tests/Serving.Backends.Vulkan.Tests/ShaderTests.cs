using System.Diagnostics;

using Serving.Backends.Vulkan.Kernels;

namespace Serving.Backends.Vulkan.Tests;

/// <summary>The committed SPIR-V is what the committed GLSL compiles to (run whenever glslc is present).</summary>
public sealed class ShaderTests
{
    private static string Root()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Serving.sln"))) return dir.FullName;
        throw new InvalidOperationException("repository root (Serving.sln) not found above " + AppContext.BaseDirectory);
    }

    [SkippableFact]
    public void CommittedSpirvMatchesTheShaders()
    {
        string root = Root();
        string? glslc = Environment.GetEnvironmentVariable("PATH")?.Split(':').Select(d => Path.Combine(d, "glslc")).FirstOrDefault(File.Exists);
        Skip.If(glslc is null, "glslc is not installed (Debian: glslc; scripts/setup.sh installs it): the committed .spv cannot be checked");
        var run = Process.Start(new ProcessStartInfo("bash", [Path.Combine(root, "scripts", "build-shaders.sh"), "--check"])
        {
            RedirectStandardError = true,
            RedirectStandardOutput = true,
        })!;
        string err = run.StandardError.ReadToEnd() + run.StandardOutput.ReadToEnd();
        run.WaitForExit();
        Skip.If(run.ExitCode == 3, "a different glslc than the one that built the committed .spv: " + err.Trim());
        Assert.True(run.ExitCode == 0, $"scripts/build-shaders.sh --check failed ({run.ExitCode}); run scripts/build-shaders.sh and commit the .spv:\n{err}");
    }

    [Fact]
    public void EveryShaderIsEmbedded()
    {
        string shaders = Path.Combine(Root(), "backends", "Vulkan", "Shaders");
        var embedded = ShaderLibrary.Names.ToHashSet();
        foreach (string spv in Directory.GetFiles(shaders, "*.spv"))
            Assert.Contains(Path.GetFileNameWithoutExtension(spv), embedded);
        foreach (string comp in Directory.GetFiles(shaders, "*.comp"))
            Assert.Contains(Path.GetFileNameWithoutExtension(comp), embedded);
    }
}
