using System.Buffers;
using System.Buffers.Binary;
using MessagePack;
using Serving.Protocol.Rpc;

namespace Serving.Protocol.MessagePack;

/// <summary>
/// Cuts a byte stream (a socket's pipe buffers) into whole MessagePack messages, validating each under
/// <see cref="MsgPackLimits"/> before anything is decoded or allocated: the never-used byte 0xc1, declared
/// str/bin/ext sizes and array/map counts against the caps and against what the message limit can back, total
/// elements, nesting depth (through <see cref="MessagePackSecurity.DepthStep"/> of
/// <see cref="MessagePackSecurity.UntrustedData"/>), and timestamp payloads. Tokens are read with MessagePack-CSharp's
/// <see cref="MessagePackReader"/>; the walk is iterative (an explicit stack of "items still due per open
/// container"), so nesting can never overflow the call stack.
/// </summary>
/// <remarks>
/// Resumable: when the bytes end inside a message the framer remembers the last whole token it accepted, and the
/// next call — given the same message start and more bytes — goes on from there, so a message trickling in costs
/// O(bytes) in total, not O(bytes²). A token cut by the end of the bytes is found with the library's
/// <see cref="EndOfStreamException"/>, which costs a few microseconds, at most once per call; it is caught outside
/// the token loop, since a try block inside it costs the loop about as much as the library's own reads. Not
/// thread-safe: one reader loop owns it. A struct: copy it only before use.
/// </remarks>
public struct MsgPackFramer
{
    private readonly MsgPackLimits _limits;
    private readonly MessagePackSecurity _security;
    private long[]? _due;     // _due[d] = items still expected in the open container at depth d+1
    private int _depth;       // open containers (mirrored in MessagePackReader.Depth for DepthStep)
    private long _offset;     // bytes of the current message accepted so far
    private long _elements;   // tokens accepted so far in the current message
    private long _openingAt;  // offset of the container being opened (for a depth error raised by the library)
    private long _lastElements; // values in the last whole message cut

    /// <summary>Creates a framer applying <paramref name="limits"/> (default: <see cref="MsgPackLimits.Default"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A limit is not positive.</exception>
    public MsgPackFramer(MsgPackLimits? limits)
    {
        _limits = limits ?? MsgPackLimits.Default;
        _limits.Validate();
        _security = _limits.Security;
    }

    /// <summary>The limits in force.</summary>
    /// <exception cref="InvalidOperationException">A default instance (not made by the constructor).</exception>
    public readonly MsgPackLimits Limits => _limits ?? throw new InvalidOperationException("Create a MsgPackFramer with its constructor.");

    /// <summary>Bytes of the current incomplete message accepted so far; 0 between messages.</summary>
    public readonly long PendingBytes => _offset;

    /// <summary>
    /// Values (every scalar, array, map, key and value) in the last whole message <see cref="TryReadFrame"/> returned:
    /// with its length, what decoding it will allocate is bounded before it is decoded.
    /// </summary>
    public readonly long LastFrameElements => _lastElements;

    /// <summary>Forgets any progress: the next call starts a new message.</summary>
    public void Reset()
    {
        _depth = 0;
        _offset = 0;
        _elements = 0;
    }

    /// <summary>
    /// Cuts the next whole message off the front of <paramref name="buffer"/>, which must start where the previous
    /// message ended (or, after a false return, at the same place as before, with more bytes). On true,
    /// <paramref name="frame"/> is the message (a slice of <paramref name="buffer"/>, no copy) and
    /// <paramref name="buffer"/> is what follows it; on false nothing changes: more bytes are needed.
    /// </summary>
    /// <exception cref="RpcException">A protocol error (<see cref="RpcProtocolFault.Malformed"/>,
    /// <see cref="RpcProtocolFault.LimitExceeded"/> — including an incomplete message that already fills
    /// <see cref="MsgPackLimits.MaxMessageBytes"/> — or <see cref="RpcProtocolFault.DepthExceeded"/>); the stream
    /// cannot be resynchronized and must be closed.</exception>
    public bool TryReadFrame(ref ReadOnlySequence<byte> buffer, out ReadOnlySequence<byte> frame)
    {
        long length = 0;
        bool whole;
        try
        {
            whole = !buffer.IsEmpty && TryScan(buffer, out length);
        }
        catch (EndOfStreamException)
        {
            // A token cut by the end of the bytes; everything before it is committed.
            whole = NeedMore(buffer.Length);
        }
        catch (InsufficientExecutionStackException)
        {
            // MessagePackSecurity.DepthStep: one more container than MaxDepth.
            throw Fault(RpcProtocolFault.DepthExceeded, _openingAt, $"Nesting deeper than the limit of {Limits.MaxDepth}");
        }
        if (!whole)
        {
            frame = default;
            return false;
        }
        frame = buffer.Slice(0, length);
        buffer = buffer.Slice(length);
        return true;
    }

    private bool TryScan(in ReadOnlySequence<byte> message, out long length)
    {
        var limits = Limits;
        length = 0;
        long available = message.Length;
        long start = _offset;
        var reader = new MessagePackReader(start == 0 ? message : message.Slice(start)) { Depth = _depth };
        while (true)
        {
            long at = start + reader.Consumed;
            if (at == available)
            {
                return NeedMore(available);
            }
            byte code = reader.NextCode;
            long total; // bytes of the whole token, header and payload
            var type = MessagePackCode.ToMessagePackType(code);
            switch (type)
            {
                case MessagePackType.Unknown:
                    throw Fault(RpcProtocolFault.Malformed, at, "Byte 0xc1 is never used in MessagePack");

                case MessagePackType.Array:
                case MessagePackType.Map:
                {
                    bool isArray = type == MessagePackType.Array;
                    if (!(isArray ? reader.TryReadArrayHeader(out int signed) : reader.TryReadMapHeader(out signed)))
                    {
                        return NeedMore(available); // the reader is dropped: the next call restarts at _offset
                    }
                    Accept(at, limits);
                    // The library reads 32-bit counts as int; counts of 2^31 and more come out negative.
                    OpenContainer(ref reader, isArray, unchecked((uint)signed), at, start + reader.Consumed, limits);
                    break;
                }

                case MessagePackType.String:
                case MessagePackType.Binary:
                {
                    bool isString = type == MessagePackType.String;
                    if (!TryPeekPayloadLength(reader, code, out int header, out uint payload))
                    {
                        return NeedMore(available);
                    }
                    if (isString && payload > (uint)limits.MaxStringBytes)
                    {
                        throw Limit(at, $"String of {payload} bytes exceeds the limit of {limits.MaxStringBytes}");
                    }
                    if (!isString && payload > (uint)limits.MaxBinaryBytes)
                    {
                        throw Limit(at, $"Binary payload of {payload} bytes exceeds the limit of {limits.MaxBinaryBytes}");
                    }
                    total = header + (long)payload;
                    if (!HasRoom(at, total, available, limits))
                    {
                        return NeedMore(available);
                    }
                    Accept(at, limits);
                    reader.Skip(); // all there (checked above): advances without slicing the payload
                    break;
                }

                case MessagePackType.Extension:
                {
                    var peek = reader;
                    if (!peek.TryReadExtensionFormatHeader(out var ext))
                    {
                        return NeedMore(available);
                    }
                    if (ext.Length > (uint)limits.MaxBinaryBytes)
                    {
                        throw Limit(at, $"Ext payload of {ext.Length} bytes exceeds the limit of {limits.MaxBinaryBytes}");
                    }
                    if (ext.TypeCode == MsgPackTimestamp.ExtType && ext.Length is not (4 or 8 or 12))
                    {
                        throw Fault(RpcProtocolFault.Malformed, at, $"Timestamp extension must be 4, 8 or 12 bytes, not {ext.Length}");
                    }
                    long headerBytes = peek.Consumed - reader.Consumed;
                    if (!HasRoom(at, headerBytes + ext.Length, available, limits))
                    {
                        return NeedMore(available);
                    }
                    var data = peek.ReadRaw(ext.Length);
                    if (ext.TypeCode == MsgPackTimestamp.ExtType)
                    {
                        MsgPackTimestamp.Read(data, at);
                    }
                    Accept(at, limits);
                    reader = peek;
                    break;
                }

                default: // nil, bool, integer, float: the library knows the size (EndOfStreamException when cut)
                    reader.Skip();
                    Accept(at, limits);
                    break;
            }

            // The token is whole: commit it, then close every container it completed.
            _offset = start + reader.Consumed;
            if (_offset > limits.MaxMessageBytes)
            {
                throw Limit(at, $"Message exceeds the limit of {limits.MaxMessageBytes} bytes");
            }
            while (_depth > 0 && _due![_depth - 1] == 0)
            {
                _depth--;
                reader.Depth--;
            }
            if (_depth == 0)
            {
                length = _offset;
                _lastElements = _elements;
                Reset();
                return true;
            }
        }
    }

    // Counts the token (checks the total-elements cap) and takes one item off the innermost open container.
    private void Accept(long at, MsgPackLimits limits)
    {
        if (++_elements > limits.MaxTotalElements)
        {
            throw Limit(at, $"Message has more than {limits.MaxTotalElements} elements");
        }
        if (_depth > 0)
        {
            _due![_depth - 1]--;
        }
    }

    // after: offset of the first byte after the container's header.
    private void OpenContainer(ref MessagePackReader reader, bool isArray, uint count, long at, long after, MsgPackLimits limits)
    {
        if (count == 0)
        {
            return; // an empty container opens no level
        }
        long items;
        if (isArray)
        {
            if (count > (uint)limits.MaxArrayCount)
            {
                throw Limit(at, $"Array of {count} items exceeds the limit of {limits.MaxArrayCount}");
            }
            items = count;
        }
        else
        {
            if (count > (uint)limits.MaxMapCount)
            {
                throw Limit(at, $"Map of {count} pairs exceeds the limit of {limits.MaxMapCount}");
            }
            items = 2L * count;
        }
        // Every item takes at least one byte, so a count the message limit cannot back is refused now, before
        // any consumer allocates for it.
        if (items > limits.MaxMessageBytes - after)
        {
            throw Limit(at, $"Declared count {count} cannot fit in the {limits.MaxMessageBytes}-byte message limit");
        }
        if (_elements + items > limits.MaxTotalElements)
        {
            throw Limit(at, $"Message has more than {limits.MaxTotalElements} elements");
        }
        _openingAt = at;
        _security.DepthStep(ref reader); // InsufficientExecutionStackException past MaxDepth, turned into DepthExceeded above
        if (_due is null || _due.Length == _depth)
        {
            Array.Resize(ref _due, Math.Min(limits.MaxDepth, Math.Max(8, _depth * 2)));
        }
        _due[_depth++] = items;
    }

    private static bool HasRoom(long at, long total, long available, MsgPackLimits limits)
    {
        if (at + total > limits.MaxMessageBytes)
        {
            throw Limit(at, $"Message exceeds the limit of {limits.MaxMessageBytes} bytes");
        }
        return available - at >= total;
    }

    private readonly bool NeedMore(long available)
    {
        if (available >= Limits.MaxMessageBytes)
        {
            throw Limit(_offset, $"Message exceeds the limit of {Limits.MaxMessageBytes} bytes");
        }
        return false;
    }

    /// <summary>
    /// The header size and declared payload length of the str or bin token at the reader, without requiring the
    /// payload to be there (the library's reads check the payload first, so a huge declared size could not be told
    /// apart from a short read). False when the header itself is cut.
    /// </summary>
    private static bool TryPeekPayloadLength(in MessagePackReader reader, byte code, out int header, out uint payload)
    {
        header = code switch
        {
            MessagePackCode.Str8 or MessagePackCode.Bin8 => 2,
            MessagePackCode.Str16 or MessagePackCode.Bin16 => 3,
            MessagePackCode.Str32 or MessagePackCode.Bin32 => 5,
            _ => 1, // fixstr: the length is in the code
        };
        payload = 0;
        if (header == 1)
        {
            payload = (uint)(code & 0x1f);
            return true;
        }
        var rest = reader.Sequence.Slice(reader.Position);
        if (rest.Length < header)
        {
            return false;
        }
        Span<byte> bytes = stackalloc byte[5];
        rest.Slice(0, header).CopyTo(bytes);
        payload = header switch
        {
            2 => bytes[1],
            3 => BinaryPrimitives.ReadUInt16BigEndian(bytes[1..]),
            _ => BinaryPrimitives.ReadUInt32BigEndian(bytes[1..]),
        };
        return true;
    }

    private static RpcException Limit(long at, string message) => Fault(RpcProtocolFault.LimitExceeded, at, message);

    private static RpcException Fault(RpcProtocolFault fault, long at, string message) => RpcException.Protocol(fault, message, at);
}
