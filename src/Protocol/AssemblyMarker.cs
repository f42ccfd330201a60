namespace Serving.Protocol; internal static class AssemblyMarker { }
