namespace Serving.Client; internal static class AssemblyMarker { }
