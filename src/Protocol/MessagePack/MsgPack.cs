using System.Buffers;
using System.Text;
using MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// Encodes and decodes <see cref="MsgValue"/> trees with MessagePack-CSharp's <see cref="MessagePackWriter"/> and
/// <see cref="MessagePackReader"/>. Writing uses the smallest form of every value (the library's choice; floats
/// keep their width; timestamps the shortest of the three forms). Reading first validates the whole message with
/// <see cref="MsgPackFramer"/> (limits, depth, never-used bytes, timestamps: nothing is allocated for bytes that
/// fail), then builds the tree. Both walks recurse over the first 16 levels only (messages are shallow, and recursion
/// costs nothing to set up) and go on iteratively below, so deep trees cannot overflow the call stack.
/// </summary>
public static class MsgPack
{
    // Strict UTF-8: a str that is not valid UTF-8 (including encoded surrogates) is refused rather than silently
    // repaired with U+FFFD as the library's reader would.
    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>Encodes <paramref name="value"/> into a new array.</summary>
    public static byte[] Encode(MsgValue value)
    {
        var output = new ArrayBufferWriter<byte>();
        Write(output, value);
        return output.WrittenSpan.ToArray();
    }

    /// <summary>Appends the encoding of <paramref name="value"/> to <paramref name="output"/> (not owned).</summary>
    public static void Write(IBufferWriter<byte> output, MsgValue value)
    {
        var writer = new MessagePackWriter(output);
        Write(ref writer, value);
        writer.Flush();
    }

    /// <summary>
    /// Writes <paramref name="value"/> with <paramref name="writer"/> (the caller flushes). The first 16 levels are
    /// written by recursion, deeper ones through an explicit stack, so even very deep trees built in code cannot
    /// overflow the call stack.
    /// </summary>
    public static void Write(ref MessagePackWriter writer, MsgValue value) => WriteShallow(ref writer, value, 0);

    // Messages nest a few levels: recursion costs nothing to set up. Past ShallowDepth levels (bounded, so the call
    // stack is safe) the rest of the subtree goes to the iterative walk, which takes any depth.
    private static void WriteShallow(ref MessagePackWriter writer, MsgValue value, int depth)
    {
        if (depth == ShallowDepth)
        {
            WriteDeep(ref writer, value);
            return;
        }
        if (!WriteOpen(ref writer, value))
        {
            return;
        }
        if (value.Kind == MsgValueKind.Array)
        {
            foreach (var item in value.AsArray())
            {
                WriteShallow(ref writer, item, depth + 1);
            }
            return;
        }
        foreach (var entry in value.AsMap())
        {
            WriteShallow(ref writer, entry.Key, depth + 1);
            WriteShallow(ref writer, entry.Value, depth + 1);
        }
    }

    private const int ShallowDepth = 16;

    private static void WriteDeep(ref MessagePackWriter writer, MsgValue value)
    {
        if (!WriteOpen(ref writer, value))
        {
            return;
        }
        var inline = new WriteBuffer();
        Span<(MsgValue Container, int Next)> stack = inline; // deeper: a heap array
        int depth = 0;
        stack[depth++] = (value, 0);
        while (depth > 0)
        {
            ref var top = ref stack[depth - 1];
            int total = top.Container.Kind == MsgValueKind.Array ? top.Container.Count : 2 * top.Container.Count;
            if (top.Next == total)
            {
                stack[--depth] = default;
                continue;
            }
            var item = ItemAt(top.Container, top.Next++);
            if (WriteOpen(ref writer, item))
            {
                if (depth == stack.Length)
                {
                    var bigger = new (MsgValue, int)[stack.Length * 2];
                    stack.CopyTo(bigger);
                    stack = bigger;
                }
                stack[depth++] = (item, 0);
            }
        }
    }

    [System.Runtime.CompilerServices.InlineArray(InlineFrames)]
    private struct WriteBuffer
    {
        private (MsgValue Container, int Next) _first;
    }

    private static MsgValue ItemAt(MsgValue container, int index) =>
        container.Kind == MsgValueKind.Array
            ? container.AsArray()[index]
            : (index & 1) == 0 ? container.AsMap()[index >> 1].Key : container.AsMap()[index >> 1].Value;

    // Writes a scalar entirely, or the header of a container. True only for a non-empty container, whose items
    // the caller writes next.
    private static bool WriteOpen(ref MessagePackWriter writer, MsgValue value)
    {
        switch (value.Kind)
        {
            case MsgValueKind.Nil: writer.WriteNil(); break;
            case MsgValueKind.Bool: writer.Write(value.AsBool()); break;
            case MsgValueKind.Int: writer.Write(value.AsInt64()); break;
            case MsgValueKind.UInt: value.TryGetUInt64(out ulong u); writer.Write(u); break;
            case MsgValueKind.Float32: writer.Write(value.AsFloat32()); break;
            case MsgValueKind.Float64: writer.Write(value.AsFloat64()); break;
            case MsgValueKind.Str: writer.Write(value.AsString()); break;
            case MsgValueKind.Bin: writer.Write(value.AsBinary().Span); break;
            case MsgValueKind.Ext:
            {
                var data = value.AsBinary().Span;
                writer.WriteExtensionFormatHeader(new ExtensionHeader(value.ExtType, (uint)data.Length));
                writer.WriteRaw(data);
                break;
            }
            case MsgValueKind.Timestamp:
            {
                var (seconds, nanoseconds) = value.AsTimestamp();
                MsgPackTimestamp.Write(ref writer, seconds, nanoseconds);
                break;
            }
            case MsgValueKind.Array:
                writer.WriteArrayHeader(value.Count);
                return value.Count > 0;
            case MsgValueKind.Map:
                writer.WriteMapHeader(value.Count);
                return value.Count > 0;
        }
        return false;
    }

    /// <summary>
    /// Decodes a buffer that must hold exactly one value under <paramref name="limits"/> (default limits when null).
    /// </summary>
    /// <exception cref="RpcException">A protocol error: Truncated (the bytes end inside the value), Malformed
    /// (including trailing bytes after the value), LimitExceeded or DepthExceeded.</exception>
    public static MsgValue Decode(ReadOnlyMemory<byte> message, MsgPackLimits? limits = null) =>
        Decode(new ReadOnlySequence<byte>(message), limits);

    /// <inheritdoc cref="Decode(ReadOnlyMemory{byte}, MsgPackLimits?)"/>
    public static MsgValue Decode(in ReadOnlySequence<byte> message, MsgPackLimits? limits = null)
    {
        var framer = new MsgPackFramer(limits);
        var rest = message;
        if (!framer.TryReadFrame(ref rest, out var frame))
        {
            throw RpcException.Protocol(RpcProtocolFault.Truncated, "Input ended inside a MessagePack value", framer.PendingBytes);
        }
        if (!rest.IsEmpty)
        {
            throw RpcException.Protocol(RpcProtocolFault.Malformed, $"{rest.Length} trailing bytes after the value", frame.Length);
        }
        return DecodeFrame(frame);
    }

    /// <summary>
    /// Builds the value of a whole message that <see cref="MsgPackFramer"/> returned (so its structure, sizes and
    /// depth are known to be within limits). Strings are checked to be UTF-8 here.
    /// </summary>
    /// <exception cref="RpcException">Malformed: a str that is not valid UTF-8.</exception>
    public static MsgValue DecodeFrame(in ReadOnlySequence<byte> frame)
    {
        var reader = new MessagePackReader(frame);
        return ReadValue(ref reader);
    }

    /// <summary>
    /// Reads the next value of a framed (validated) message. Messages nest a few levels, so the first
    /// <see cref="ShallowDepth"/> levels are read by recursion (nothing to set up; the call stack stays small and
    /// bounded); a subtree below that goes to <see cref="ReadDeep"/>, which takes any depth without recursion.
    /// </summary>
    internal static MsgValue ReadValue(ref MessagePackReader reader) => ReadShallow(ref reader, 0);

    private static MsgValue ReadShallow(ref MessagePackReader reader, int depth)
    {
        if (depth == ShallowDepth)
        {
            return ReadDeep(ref reader);
        }
        var value = ReadScalarOrOpen(ref reader, out var kind, out int count);
        if (kind == Open.Array)
        {
            var items = new MsgValue[count];
            for (int i = 0; i < items.Length; i++)
            {
                items[i] = ReadShallow(ref reader, depth + 1);
            }
            return MsgValue.FromArray(items);
        }
        if (kind == Open.Map)
        {
            var pairs = new KeyValuePair<MsgValue, MsgValue>[count];
            for (int i = 0; i < pairs.Length; i++)
            {
                var key = ReadShallow(ref reader, depth + 1);
                pairs[i] = new(key, ReadShallow(ref reader, depth + 1));
            }
            return MsgValue.FromMap(pairs);
        }
        return value;
    }

    /// <summary>
    /// Reads the next value without recursion: scalars directly, containers through an explicit stack of partly
    /// filled arrays and maps (its first <see cref="InlineFrames"/> levels inline, then a heap array).
    /// </summary>
    private static MsgValue ReadDeep(ref MessagePackReader reader)
    {
        var value = ReadScalarOrOpen(ref reader, out var kind, out int count);
        if (kind == Open.None)
        {
            return value;
        }
        var inline = new FrameBuffer();
        Span<Frame> frames = inline; // deeper than the inline frames: a heap array (depth is bounded by the framer)
        int depth = 0;
        Push(ref frames, ref depth, kind, count);
        while (true)
        {
            value = ReadScalarOrOpen(ref reader, out kind, out count);
            if (kind != Open.None)
            {
                Push(ref frames, ref depth, kind, count);
                continue;
            }
            // Hand the finished value to its parent; a parent that becomes full is itself finished.
            while (frames[depth - 1].Add(value, out var finished))
            {
                frames[--depth] = default;
                if (depth == 0)
                {
                    return finished;
                }
                value = finished;
            }
        }
    }

    private static void Push(ref Span<Frame> frames, ref int depth, Open kind, int count)
    {
        if (depth == frames.Length)
        {
            var bigger = new Frame[frames.Length * 2];
            frames.CopyTo(bigger);
            frames = bigger;
        }
        frames[depth++] = kind == Open.Array
            ? new Frame { Items = new MsgValue[count] }
            : new Frame { Pairs = new KeyValuePair<MsgValue, MsgValue>[count] };
    }

    private enum Open : byte { None, Array, Map }

    private const int InlineFrames = 8;

    [System.Runtime.CompilerServices.InlineArray(InlineFrames)]
    private struct FrameBuffer
    {
        private Frame _first;
    }

    /// <summary>A container being filled: an array's items or a map's pairs.</summary>
    private struct Frame
    {
        public MsgValue[]? Items;
        public KeyValuePair<MsgValue, MsgValue>[]? Pairs;
        public int Index;
        public MsgValue Key;
        public bool HasKey;

        // Adds the next item (or map key, or map value); true with the finished container when it is full.
        public bool Add(MsgValue value, out MsgValue finished)
        {
            finished = default;
            if (Items is not null)
            {
                Items[Index++] = value;
                if (Index < Items.Length)
                {
                    return false;
                }
                finished = MsgValue.FromArray(Items);
                return true;
            }
            if (!HasKey)
            {
                Key = value;
                HasKey = true;
                return false;
            }
            Pairs![Index++] = new(Key, value);
            HasKey = false;
            if (Index < Pairs.Length)
            {
                return false;
            }
            finished = MsgValue.FromMap(Pairs);
            return true;
        }
    }

    // Reads a scalar or an empty container (returned; kind None), or the header of a non-empty one (kind and count set).
    private static MsgValue ReadScalarOrOpen(ref MessagePackReader reader, out Open kind, out int count)
    {
        kind = Open.None;
        count = 0;
        long at = reader.Consumed;
        byte code = reader.NextCode;
        switch (MessagePackCode.ToMessagePackType(code))
        {
            case MessagePackType.Nil:
                reader.ReadNil();
                return MsgValue.Nil;
            case MessagePackType.Boolean:
                return MsgValue.FromBool(reader.ReadBoolean());
            case MessagePackType.Integer:
                return code == MessagePackCode.UInt64 ? MsgValue.FromUInt64(reader.ReadUInt64()) : MsgValue.FromInt64(reader.ReadInt64());
            case MessagePackType.Float:
                return code == MessagePackCode.Float32 ? MsgValue.FromFloat32(reader.ReadSingle()) : MsgValue.FromFloat64(reader.ReadDouble());
            case MessagePackType.String:
                return MsgValue.FromString(ReadString(ref reader, at));
            case MessagePackType.Binary:
                return MsgValue.FromBinary(reader.ReadBytes()!.Value.ToArray());
            case MessagePackType.Extension:
            {
                var header = reader.ReadExtensionFormatHeader();
                var data = reader.ReadRaw(header.Length);
                if (header.TypeCode == MsgPackTimestamp.ExtType)
                {
                    var (seconds, nanoseconds) = MsgPackTimestamp.Read(data, at);
                    return MsgValue.FromTimestamp(seconds, nanoseconds);
                }
                return MsgValue.FromExt(header.TypeCode, data.ToArray());
            }
            case MessagePackType.Array:
                count = reader.ReadArrayHeader();
                kind = count == 0 ? Open.None : Open.Array;
                return count == 0 ? MsgValue.EmptyArray : default;
            case MessagePackType.Map:
                count = reader.ReadMapHeader();
                kind = count == 0 ? Open.None : Open.Map;
                return count == 0 ? MsgValue.EmptyMap : default;
            default:
                // Unreachable after framing (0xc1 is refused there); kept so a misuse cannot go unnoticed.
                throw RpcException.Protocol(RpcProtocolFault.Malformed, "Byte 0xc1 is never used in MessagePack", at);
        }
    }

    /// <summary>Reads a str as a string: strict UTF-8; the protocol's own names come back as their constants (no allocation).</summary>
    /// <param name="at">Offset of the token in its message, for the error.</param>
    /// <exception cref="RpcException">Malformed: not valid UTF-8.</exception>
    internal static string ReadString(ref MessagePackReader reader, long at)
    {
        try
        {
            if (reader.TryReadStringSpan(out var span))
            {
                return KnownNames.Find(span) ?? StrictUtf8.GetString(span);
            }
            // Split across pipe segments: decode from the pieces.
            return StrictUtf8.GetString(reader.ReadStringSequence()!.Value);
        }
        catch (DecoderFallbackException)
        {
            throw RpcException.Protocol(RpcProtocolFault.Malformed, "String is not valid UTF-8", at);
        }
    }
}
