using System.Globalization;
using System.Text;
using Serving.Abstractions;
using Serving.Engine.Gguf;
using Serving.Engine.Models;

namespace Serving.Engine.Tuning;

/// <summary>One weight-matrix shape a model multiplies by in every step: type, N × K, and how many such matrices a step reads.</summary>
/// <param name="Type">Weight type.</param>
/// <param name="Rows">N (output features).</param>
/// <param name="Cols">K (input features).</param>
/// <param name="PerStep">How many matrices of this shape one step multiplies by (e.g. 16 layers × gate and up = 32).</param>
/// <param name="Role">What they are, for tables ("ffn_gate, ffn_up").</param>
public sealed record MatrixShape(DataType Type, int Rows, int Cols, int PerStep, string Role)
{
    /// <summary>Bytes of one such matrix as the file stores it.</summary>
    public long Bytes => Type.RowBytes(Cols) * Rows;
}

/// <summary>
/// What the tuner needs to know about a model: its hyper-parameters and the types and shapes of the ops one step runs
/// (the real shapes kernels are chosen for), and a canonical text of all of it (<see cref="Key"/>, part of the
/// profile cache key). Two files with the same shape and weight types share a profile.
/// </summary>
public sealed class ModelShape
{
    private ModelShape(LlamaConfig config, IReadOnlyList<MatrixShape> matrices, bool tiedOutput, bool hasBias)
    {
        Config = config;
        Matrices = matrices;
        TiedOutput = tiedOutput;
        HasBias = hasBias;
        WeightBytesPerStep = matrices.Sum(m => m.Bytes * m.PerStep);
        Key = BuildKey();
    }

    /// <summary>Hyper-parameters.</summary>
    public LlamaConfig Config { get; }

    /// <summary>Distinct (type, N, K) MatMul shapes, with how many of each one step reads (the output head included).</summary>
    public IReadOnlyList<MatrixShape> Matrices { get; }

    /// <summary>True when the output head reuses the token embedding.</summary>
    public bool TiedOutput { get; }

    /// <summary>True when q/k/v carry biases (qwen2).</summary>
    public bool HasBias { get; }

    /// <summary>Weight bytes one decode step reads (every matrix once; the embedding table's single row is not counted).</summary>
    public long WeightBytesPerStep { get; }

    /// <summary>Multiply-adds per token of one decode step, over every matrix.</summary>
    public long MultiplyAddsPerToken => Matrices.Sum(m => (long)m.Rows * m.Cols * m.PerStep);

    /// <summary>Bytes per weight averaged over what a step reads (for the roofline's knee).</summary>
    public double BytesPerWeight => (double)WeightBytesPerStep / MultiplyAddsPerToken;

    /// <summary>The weight type most of the step's bytes have.</summary>
    public DataType DominantType => Matrices.GroupBy(m => m.Type).OrderByDescending(g => g.Sum(m => m.Bytes * m.PerStep)).First().Key;

    /// <summary>Canonical text of the shape and types ("llama d2048 l16 h32 kv8 dh64 f8192 v32000 …"); part of the cache key.</summary>
    public string Key { get; }

    /// <summary>Reads the shape of the model in <paramref name="file"/>. Throws <see cref="ModelLoadException"/> as loading would.</summary>
    public static ModelShape FromGguf(GgufFile file)
    {
        ArgumentNullException.ThrowIfNull(file);
        var config = LlamaConfig.FromGguf(file);
        bool tied = file.FindTensor("output.weight") is null;
        var byShape = new Dictionary<(DataType, int, int), (int Count, SortedSet<string> Roles)>();
        foreach (var m in ModelRequirements.Matrices(config, file))
        {
            if (m.Name == "token_embd.weight" && !tied) continue; // an embedding table only gives rows, it is not multiplied
            var t = ModelRequirements.Tensor(file, m);
            string role = m.Name.StartsWith("blk.", StringComparison.Ordinal) ? m.Name[(m.Name.IndexOf('.', 4) + 1)..].Replace(".weight", "", StringComparison.Ordinal)
                : "output";
            var key = (t.Type, m.Rows, m.Cols);
            if (!byShape.TryGetValue(key, out var entry)) entry = (0, new SortedSet<string>(StringComparer.Ordinal));
            entry.Roles.Add(role);
            byShape[key] = (entry.Count + 1, entry.Roles);
        }
        var matrices = byShape.Select(kv => new MatrixShape(kv.Key.Item1, kv.Key.Item2, kv.Key.Item3, kv.Value.Count, string.Join(", ", kv.Value.Roles)))
            .OrderByDescending(m => m.Bytes * m.PerStep).ToList();
        return new ModelShape(config, matrices, tied, file.FindTensor("blk.0.attn_q.bias") is not null);
    }

    /// <summary>A shape built directly (tests, synthetic devices).</summary>
    public static ModelShape Create(LlamaConfig config, IReadOnlyList<MatrixShape> matrices, bool tiedOutput = true, bool hasBias = false)
    {
        ArgumentNullException.ThrowIfNull(config);
        ArgumentNullException.ThrowIfNull(matrices);
        if (matrices.Count == 0) throw new ArgumentException("a model multiplies by at least one matrix", nameof(matrices));
        return new ModelShape(config, matrices, tiedOutput, hasBias);
    }

    private string BuildKey()
    {
        var c = Config;
        var s = new StringBuilder();
        s.Append(CultureInfo.InvariantCulture, $"{c.Architecture} d{c.Dim} l{c.Layers} h{c.Heads} kv{c.KvHeads} dh{c.HeadDim} f{c.FfnDim} v{c.VocabSize}");
        s.Append(TiedOutput ? " tied" : " untied").Append(HasBias ? " bias" : "");
        foreach (var m in Matrices.OrderBy(m => m.Type).ThenBy(m => m.Rows).ThenBy(m => m.Cols))
            s.Append(CultureInfo.InvariantCulture, $" {m.Type.Name()}[{m.Rows}x{m.Cols}]x{m.PerStep}");
        return s.ToString();
    }

    /// <inheritdoc/>
    public override string ToString() => Key;
}
