namespace Serving.Protocol.MessagePack;

/// <summary>
/// Finds where one MessagePack message ends without allocating values, enforcing every limit and validating
/// structure (never-used bytes, timestamp payloads). Iterative, with an explicit stack of "items still due per
/// open container", so nesting can never overflow the call stack. Resumable: when the bytes end inside the
/// message it remembers how far it got, and the next call (with the same message start and more bytes) goes on
/// from there — streaming a message costs O(bytes), not O(bytes²).
/// </summary>
internal struct MsgPackScanner
{
    private readonly MsgPackLimits _limits;
    private long[]? _due;     // _due[d] = items still expected in the open container at depth d+1
    private int _depth;       // open containers
    private int _offset;      // bytes of the current message already accepted
    private long _elements;   // tokens accepted so far in the current message

    public MsgPackScanner(MsgPackLimits limits)
    {
        _limits = limits;
    }

    /// <summary>Bytes of the current (incomplete) message accepted so far; 0 when between messages.</summary>
    public readonly int ScannedBytes => _offset;

    /// <summary>Forgets any progress (the next call starts a new message).</summary>
    public void Reset()
    {
        _depth = 0;
        _offset = 0;
        _elements = 0;
    }

    /// <summary>
    /// Scans the message starting at <paramref name="message"/>[0]. Returns true with its byte length when it is
    /// complete (and resets for the next message); false when more bytes are needed.
    /// </summary>
    /// <exception cref="MsgPackException">Malformed input or a limit exceeded.</exception>
    public bool TryScan(ReadOnlySpan<byte> message, out int length)
    {
        length = 0;
        while (true)
        {
            int at = _offset;
            if (!MsgPackToken.TryParse(message[at..], at, out var t))
            {
                return NeedMore(message.Length);
            }

            long payload = t.PayloadLength;
            long total = t.HeaderLength + payload;
            switch (t.Kind)
            {
                case TokenKind.Str when t.Length > (uint)_limits.MaxStringBytes:
                    throw Limit(at, $"String of {t.Length} bytes exceeds the limit of {_limits.MaxStringBytes}");
                case TokenKind.Bin or TokenKind.Ext when t.Length > (uint)_limits.MaxBinaryBytes:
                    throw Limit(at, $"Binary/ext payload of {t.Length} bytes exceeds the limit of {_limits.MaxBinaryBytes}");
                case TokenKind.Ext when t.ExtType == -1 && t.Length is not (4 or 8 or 12):
                    throw new MsgPackException(MsgPackErrorCode.Malformed, at,
                        $"Timestamp extension must be 4, 8 or 12 bytes, not {t.Length}");
            }
            if (at + total > _limits.MaxMessageBytes)
            {
                throw Limit(at, $"Message exceeds the limit of {_limits.MaxMessageBytes} bytes");
            }
            if (message.Length - at < total)
            {
                return NeedMore(message.Length);
            }
            if (t.Kind == TokenKind.Ext && t.ExtType == -1)
            {
                MsgPackToken.ReadTimestamp(message.Slice(at + t.HeaderLength, (int)payload), at);
            }

            // Accept the token.
            if (++_elements > _limits.MaxTotalElements)
            {
                throw Limit(at, $"Message has more than {_limits.MaxTotalElements} elements");
            }
            _offset = at + (int)total;
            if (_depth > 0)
            {
                _due![_depth - 1]--;
            }
            if (t.Kind is TokenKind.Array or TokenKind.Map && t.Length > 0)
            {
                OpenContainer(t, at);
            }
            while (_depth > 0 && _due![_depth - 1] == 0)
            {
                _depth--;
            }
            if (_depth == 0)
            {
                length = _offset;
                Reset();
                return true;
            }
        }
    }

    private void OpenContainer(in MsgPackToken t, int at)
    {
        long items;
        if (t.Kind == TokenKind.Array)
        {
            if (t.Length > (uint)_limits.MaxArrayCount)
            {
                throw Limit(at, $"Array of {t.Length} items exceeds the limit of {_limits.MaxArrayCount}");
            }
            items = t.Length;
        }
        else
        {
            if (t.Length > (uint)_limits.MaxMapCount)
            {
                throw Limit(at, $"Map of {t.Length} pairs exceeds the limit of {_limits.MaxMapCount}");
            }
            items = 2L * t.Length;
        }
        // Every item takes at least one byte, so a count the message limit cannot back is refused now, before
        // any consumer allocates for it.
        if (items > _limits.MaxMessageBytes - (long)_offset)
        {
            throw Limit(at, $"Declared count {t.Length} cannot fit in the {_limits.MaxMessageBytes}-byte message limit");
        }
        if (_elements + items > _limits.MaxTotalElements)
        {
            throw Limit(at, $"Message has more than {_limits.MaxTotalElements} elements");
        }
        if (_depth >= _limits.MaxDepth)
        {
            throw new MsgPackException(MsgPackErrorCode.DepthExceeded, at,
                $"Nesting deeper than the limit of {_limits.MaxDepth}");
        }
        if (_due is null || _due.Length == _depth)
        {
            Array.Resize(ref _due, Math.Min(_limits.MaxDepth, Math.Max(8, _depth * 2)));
        }
        _due[_depth++] = items;
    }

    private readonly bool NeedMore(int available)
    {
        if (available >= _limits.MaxMessageBytes)
        {
            throw Limit(_offset, $"Message exceeds the limit of {_limits.MaxMessageBytes} bytes");
        }
        return false;
    }

    private static MsgPackException Limit(long at, string message) =>
        new(MsgPackErrorCode.LimitExceeded, at, message);
}
