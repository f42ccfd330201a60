namespace Serving.Engine.Models;

/// <summary>
/// A model file that is valid GGUF but not a model we can run: a missing or inconsistent hyper-parameter or
/// tensor. <see cref="Field"/> names the key or tensor at fault.
/// </summary>
public sealed class ModelLoadException(string field, string message) : Exception($"{field}: {message}")
{
    /// <summary>The metadata key or tensor name at fault.</summary>
    public string Field { get; } = field;
}
