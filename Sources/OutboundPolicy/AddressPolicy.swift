import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// An IP address, as the kernel takes it: 4 or 16 bytes.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    public init?(bytes: [UInt8]) {
        guard bytes.count == 4 || bytes.count == 16 else { return nil }
        self.bytes = bytes
    }

    /// A literal in the strict forms only (`a.b.c.d`, RFC 4291 text for IPv6; brackets allowed). `2130706433` or
    /// `0x7f.1`, which resolvers take for 127.0.0.1, are not literals here; they are refused as host names.
    public init?(_ text: String) {
        var literal = text
        if literal.hasPrefix("["), literal.hasSuffix("]") { literal = String(literal.dropFirst().dropLast()) }
        if let zone = literal.firstIndex(of: "%") { literal = String(literal[..<zone]) }
        var v4 = in_addr()
        if inet_pton(AF_INET, literal, &v4) == 1 {
            self.bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, literal, &v6) == 1 {
            self.bytes = withUnsafeBytes(of: &v6) { Array($0) }
            return
        }
        return nil
    }

    public var isIPv4: Bool { bytes.count == 4 }

    public var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = isIPv4 ? AF_INET : AF_INET6
        let written = bytes.withUnsafeBytes { raw in inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) }
        guard written != nil else { return "?" }
        return String(cString: buffer)
    }

    /// The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4), to be judged as that one.
    var embeddedIPv4: IPAddress? {
        guard bytes.count == 16 else { return nil }
        let b = bytes
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xff && b[11] == 0xff { return IPAddress(bytes: Array(b[12..<16])) }  // ::ffff:a.b.c.d
        if b[0..<12] == [0x00, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0] { return IPAddress(bytes: Array(b[12..<16])) }  // 64:ff9b::/96
        if b[0] == 0x20 && b[1] == 0x02 { return IPAddress(bytes: Array(b[2..<6])) }  // 2002::/16 (6to4)
        return nil
    }

    func within(_ prefix: [UInt8], bits: Int) -> Bool {
        var remaining = bits
        for (index, byte) in prefix.enumerated() where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
            if bytes[index] & mask != byte & mask { return false }
            remaining -= 8
        }
        return true
    }
}

/// Which destinations the platform's outgoing requests to user-supplied URLs (Web Push endpoints) may reach.
///
/// Not loopback, private (RFC 1918), shared (CGNAT), link-local (cloud metadata at 169.254.169.254), unique-local,
/// multicast, unspecified, documentation, benchmarking or reserved addresses, nor an IPv6 address that carries one
/// of those IPv4 addresses. The check is made when the URL is registered and again on the address actually
/// connected to (`OutboundResolver`), so a name that later resolves inward (DNS rebinding) gains nothing.
public enum AddressPolicy {
    /// Why `address` may not be reached, or nil when it is a public address.
    public static func refusal(_ address: IPAddress) -> String? {
        if let embedded = address.embeddedIPv4 { return refusal(embedded) }
        if address.isIPv4 {
            for (prefix, bits, what) in v4Ranges where address.within(prefix, bits: bits) { return what }
            return nil
        }
        for (prefix, bits, what) in v6Ranges where address.within(prefix, bits: bits) { return what }
        return nil
    }

    public static func isLoopback(_ address: IPAddress) -> Bool {
        if let embedded = address.embeddedIPv4 { return isLoopback(embedded) }
        return address.isIPv4 ? address.within([127], bits: 8) : address.bytes == Array(repeating: 0, count: 15) + [1]
    }

    static let v4Ranges: [([UInt8], Int, String)] = [
        ([0, 0, 0, 0], 8, "an unspecified (0.0.0.0/8) address"),
        ([10, 0, 0, 0], 8, "a private (10.0.0.0/8) address"),
        ([100, 64, 0, 0], 10, "a shared (CGNAT, 100.64.0.0/10) address"),
        ([127, 0, 0, 0], 8, "a loopback address"),
        ([169, 254, 0, 0], 16, "a link-local (169.254.0.0/16, cloud metadata) address"),
        ([172, 16, 0, 0], 12, "a private (172.16.0.0/12) address"),
        ([192, 0, 0, 0], 24, "an IETF protocol (192.0.0.0/24) address"),
        ([192, 0, 2, 0], 24, "a documentation address"),
        ([192, 88, 99, 0], 24, "a 6to4 relay address"),
        ([192, 168, 0, 0], 16, "a private (192.168.0.0/16) address"),
        ([198, 18, 0, 0], 15, "a benchmarking (198.18.0.0/15) address"),
        ([198, 51, 100, 0], 24, "a documentation address"),
        ([203, 0, 113, 0], 24, "a documentation address"),
        ([224, 0, 0, 0], 4, "a multicast address"),
        ([240, 0, 0, 0], 4, "a reserved (240.0.0.0/4) or broadcast address"),
    ]

    static let v6Ranges: [([UInt8], Int, String)] = [
        (Array(repeating: 0, count: 16), 128, "the unspecified address"),
        (Array(repeating: 0, count: 15) + [1], 128, "a loopback address"),
        ([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 96, "an IPv4-compatible address"),
        ([0x00, 0x64, 0xff, 0x9b, 0x00, 0x01], 48, "a local NAT64 address"),
        ([0x01, 0x00, 0, 0, 0, 0, 0, 0], 64, "a discard-only address"),
        ([0x20, 0x01, 0x00, 0x00], 32, "a Teredo address"),
        ([0x20, 0x01, 0x0d, 0xb8], 32, "a documentation address"),
        ([0xfc], 7, "a unique-local (fc00::/7) address"),
        ([0xfe, 0x80], 10, "a link-local (fe80::/10) address"),
        ([0xfe, 0xc0], 10, "a site-local (fec0::/10) address"),
        ([0xff], 8, "a multicast address"),
    ]
}
