using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;

namespace Serving.Server;

/// <summary>
/// The client address that per-address limits count by: an IPv4 address (IPv4-mapped IPv6 too) as is, an IPv6 address
/// by its /64 prefix (one host or site usually holds a whole /64, so counting single IPv6 addresses would let one client
/// pose as many). Hashed with <see cref="HashCode"/>, which is seeded per process, so clients cannot choose collisions.
/// </summary>
internal readonly record struct AddressKey(ulong High, ulong Low, bool IsV6)
{
    /// <summary>The key of <paramref name="endPoint"/>; the default key (all zero) when it is not an IP endpoint.</summary>
    public static AddressKey Of(EndPoint? endPoint)
    {
        if (endPoint is not IPEndPoint ip)
        {
            return default;
        }
        var address = ip.Address.IsIPv4MappedToIPv6 ? ip.Address.MapToIPv4() : ip.Address;
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out int written))
        {
            return default;
        }
        return address.AddressFamily == AddressFamily.InterNetwork
            ? new AddressKey(0, BinaryPrimitives.ReadUInt32BigEndian(bytes[..written]), false)
            : new AddressKey(BinaryPrimitives.ReadUInt64BigEndian(bytes), 0, true);
    }

    /// <summary>"192.0.2.7" or "2001:db8:1:2::/64".</summary>
    public override string ToString()
    {
        Span<byte> bytes = stackalloc byte[16];
        if (!IsV6)
        {
            BinaryPrimitives.WriteUInt32BigEndian(bytes, (uint)Low);
            return new IPAddress(bytes[..4]).ToString();
        }
        bytes.Clear();
        BinaryPrimitives.WriteUInt64BigEndian(bytes, High);
        return new IPAddress(bytes).ToString() + "/64";
    }
}
