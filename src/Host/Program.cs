namespace Serving.Host;

internal static class Program
{
    private static int Main(string[] args)
    {
        Console.WriteLine("serving: skeleton");
        return 0;
    }
}
