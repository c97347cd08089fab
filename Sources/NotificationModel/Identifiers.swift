import Foundation

extension UUID {
    /// A version 7 UUID (RFC 9562, section 5.7): the Unix time in milliseconds (rounded) in the first 48 bits, then 74 random
    /// bits. Ids made one after another sort by time, so a table keyed by them (and every index on such a column)
    /// takes new rows at its right edge instead of at random pages. The time is no secret: `created_at` shows it.
    public static func timeOrdered(at date: Date = Date()) -> UUID {
        var bytes = randomBytes()
        let milliseconds = UInt64(max(0, (date.timeIntervalSince1970 * 1000).rounded()))
        for index in 0..<6 { bytes[index] = UInt8(truncatingIfNeeded: milliseconds >> (40 - 8 * UInt64(index))) }
        bytes[6] = 0x70 | (bytes[6] & 0x0F)  // version 7
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // variant 10
        return UUID(bytes)
    }

    /// A version 4 (random) UUID from the system's generator. Foundation's `UUID()` opens, reads and closes
    /// `/dev/urandom` for each (three system calls and a path lookup: 5 % of the gateway's CPU per create).
    public static func random() -> UUID {
        var bytes = randomBytes()
        bytes[6] = 0x40 | (bytes[6] & 0x0F)  // version 4
        bytes[8] = 0x80 | (bytes[8] & 0x3F)  // variant 10
        return UUID(bytes)
    }

    private init(_ bytes: [UInt8]) {
        self.init(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]
            )
        )
    }

    /// Sixteen bytes from the system's CSPRNG (`SystemRandomNumberGenerator`: `getrandom` on Linux).
    private static func randomBytes() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return (0..<16).map { index in UInt8(truncatingIfNeeded: (index < 8 ? high : low) >> (56 - 8 * UInt64(index % 8))) }
    }
}

extension UUID {
    /// The canonical lowercase text form used in every API response, message and header (8-4-4-4-12 hex digits).
    /// Written byte by byte: Foundation's `uuidString` goes through `snprintf`, 2 % of the gateway's CPU per create.
    public var lowercased: String { text(letters: UInt8(ascii: "a")) }

    /// `uuidString`'s form (uppercase), without `snprintf`: where the uppercase form is kept (the payload hash).
    public var uppercased: String { text(letters: UInt8(ascii: "A")) }

    private func text(letters: UInt8) -> String {
        withUnsafeBytes(of: uuid) { bytes in
            String(unsafeUninitializedCapacity: 36) { buffer in
                var out = 0
                for index in 0..<16 {
                    if index == 4 || index == 6 || index == 8 || index == 10 {
                        buffer[out] = UInt8(ascii: "-")
                        out += 1
                    }
                    let high = bytes[index] >> 4
                    let low = bytes[index] & 0x0F
                    buffer[out] = high < 10 ? UInt8(ascii: "0") + high : letters + high - 10
                    buffer[out + 1] = low < 10 ? UInt8(ascii: "0") + low : letters + low - 10
                    out += 2
                }
                return out
            }
        }
    }

    /// A UUID from its 8-4-4-4-12 text form, hex digits in either case; nil for anything else (no spaces, braces or
    /// signs, which Foundation's `sscanf`-based `init(uuidString:)` lets through in places). Parsed byte by byte.
    public init?(text: some StringProtocol) {
        var value: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let parsed = withUnsafeMutableBytes(of: &value) { out -> Bool in
            var position = 0
            var byte = 0
            var high: UInt8?
            for character in text.utf8 {
                defer { position += 1 }
                if position == 8 || position == 13 || position == 18 || position == 23 {
                    guard character == UInt8(ascii: "-") else { return false }
                    continue
                }
                guard position < 36 else { return false }
                let nibble: UInt8
                switch character {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): nibble = character - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): nibble = character - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): nibble = character - UInt8(ascii: "A") + 10
                default: return false
                }
                if let first = high {
                    out[byte] = first << 4 | nibble
                    byte += 1
                    high = nil
                } else {
                    high = nibble
                }
            }
            return position == 36
        }
        guard parsed else { return nil }
        self.init(uuid: value)
    }
}
