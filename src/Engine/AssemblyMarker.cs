namespace Serving.Engine; internal static class AssemblyMarker { }
