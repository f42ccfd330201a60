using System.Reflection;
using Xunit.Sdk;

namespace Serving.Conformance.Tests;

/// <summary>
/// Runs one suite class's tests without a test host: <c>dotnet exec Serving.Conformance.Tests.dll suite CudaConformance</c>.
/// For machines that carry only the .NET runtime (the GPU machine: no SDK, so no <c>dotnet test</c>). Every [Fact] and
/// [Theory] (skippable ones included, with their MemberData and InlineData rows) runs in declaration order; a
/// SkipTestException is a skip with its reason, anything else a failure. Ends with "N passed, N failed, N skipped".
/// </summary>
internal static class SuiteRunner
{
    /// <summary>Runs the class named <paramref name="className"/>; exit 0 when nothing failed and something passed.</summary>
    public static int Run(string className)
    {
        Type? type = typeof(SuiteRunner).Assembly.GetType($"{typeof(SuiteRunner).Namespace}.{className}");
        if (type is null || type.IsAbstract)
        {
            Console.Error.WriteLine($"no test class {className}");
            return 2;
        }
        int passed = 0, failed = 0, skipped = 0;
        foreach (MethodInfo method in type.GetMethods(BindingFlags.Public | BindingFlags.Instance).OrderBy(m => m.MetadataToken))
        {
            var fact = method.GetCustomAttribute<FactAttribute>(inherit: true);
            if (fact is null) continue;
            var rows = fact is TheoryAttribute ? Rows(type, method) : [[]];
            foreach (object?[] row in rows)
            {
                string name = row.Length == 0 ? method.Name : $"{method.Name}({string.Join(", ", row)})";
                if (fact.Skip is { } why)
                {
                    skipped++;
                    Console.WriteLine($"SKIP {name}: {why}");
                    continue;
                }
                var clock = System.Diagnostics.Stopwatch.StartNew();
                try
                {
                    object instance = Activator.CreateInstance(type)!;
                    if (method.Invoke(instance, row) is Task task) task.GetAwaiter().GetResult();
                    passed++;
                    Console.WriteLine($"PASS {name} ({clock.Elapsed.TotalSeconds:0.0} s)");
                }
                catch (Exception e)
                {
                    Exception inner = e is TargetInvocationException { InnerException: { } i } ? i : e;
                    if (inner is SkipTestException)
                    {
                        skipped++;
                        Console.WriteLine($"SKIP {name}: {inner.Message}");
                    }
                    else
                    {
                        failed++;
                        Console.WriteLine($"FAIL {name}: {inner.GetType().Name}: {inner.Message}");
                    }
                }
            }
        }
        Console.WriteLine($"{className}: {passed} passed, {failed} failed, {skipped} skipped");
        return failed == 0 && passed > 0 ? 0 : 1;
    }

    private static List<object?[]> Rows(Type type, MethodInfo method)
    {
        var rows = new List<object?[]>();
        foreach (var inline in method.GetCustomAttributes<InlineDataAttribute>())
            rows.AddRange(inline.GetData(method));
        foreach (var member in method.GetCustomAttributes<MemberDataAttribute>())
        {
            const BindingFlags flags = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Static | BindingFlags.FlattenHierarchy;
            MemberInfo? found = type.GetMember(member.MemberName, flags).FirstOrDefault();
            object? data = found switch
            {
                MethodInfo m => m.Invoke(null, member.Parameters),
                PropertyInfo p => p.GetValue(null),
                FieldInfo f => f.GetValue(null),
                _ => throw new InvalidOperationException($"{type.Name}.{member.MemberName} not found"),
            };
            foreach (object?[] row in (IEnumerable<object?[]>)data!)
                rows.Add(row);
        }
        return rows;
    }
}
