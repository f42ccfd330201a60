using Serving.Protocol.MessagePack;

namespace Serving.Protocol.Tests.MessagePack;

/// <summary>Every exam of the kawanet suite, both ways: each listed encoding decodes to the value, and our
/// encoder's output is one of the listed encodings.</summary>
public class VectorTests
{
    public static IEnumerable<object[]> Exams() => TestVectors.ExamIds();

    [Theory]
    [MemberData(nameof(Exams))]
    public void EveryEncodingDecodesToTheValue(string group, int index)
    {
        Assert.True(index >= 0, $"MessagePack test vectors not found at {TestVectors.ExpectedLocation}");
        var exam = TestVectors.Exam(group, index);
        var expected = TestVectors.ExpectedValues(exam);
        Assert.NotEmpty(expected);
        foreach (var hex in exam.GetProperty("msgpack").EnumerateArray())
        {
            byte[] bytes = TestVectors.ParseHex(hex.GetString()!);
            var decoded = MsgPack.Decode(bytes);
            Assert.True(expected.Any(e => TestVectors.Matches(decoded, e)),
                $"{group}[{index}] {hex}: decoded {decoded}, expected one of {string.Join(" | ", expected)}");
        }
    }

    [Theory]
    [MemberData(nameof(Exams))]
    public void EncodingIsOneOfTheListed(string group, int index)
    {
        Assert.True(index >= 0, $"MessagePack test vectors not found at {TestVectors.ExpectedLocation}");
        var exam = TestVectors.Exam(group, index);
        var listed = exam.GetProperty("msgpack").EnumerateArray().Select(h => h.GetString()!).ToList();
        // An exam may name the value twice (number and bignum); every naming must encode to a listed form.
        foreach (var value in TestVectors.ExpectedValues(exam))
        {
            string encoded = TestVectors.ToHyphenatedHex(MsgPack.Encode(value));
            Assert.True(listed.Contains(encoded), $"{group}[{index}] {value}: encoded {encoded}, listed {string.Join(" | ", listed)}");
            // Smallest form: no listed encoding is shorter. Floats keep their width (a float 64 is never narrowed to
            // float 32), so only they may be longer.
            if (value.Kind != MsgValueKind.Float64)
            {
                Assert.Equal(listed.Where(l => !l.StartsWith("ca", StringComparison.Ordinal) && !l.StartsWith("cb", StringComparison.Ordinal))
                    .Min(l => l.Length), encoded.Length);
            }
        }
    }

    [Fact]
    public void SuiteHasTheDocumentedSize()
    {
        // README: 15 groups, 85 exams, 233 encodings. Guards against a silently truncated data file.
        Assert.Equal(85, TestVectors.ExamIds().Count());
        Assert.Equal(233, TestVectors.AllEncodings().Count());
    }
}
