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
