import Foundation

/// How an SMS body travels and what it costs: GSM-7 when every character is in the GSM 03.38 default alphabet or its
/// extension table, UCS-2 otherwise, and the number of segments (each billed as one SMS) it is split into.
public struct SMSText: Sendable, Equatable {
    public enum Encoding: String, Sendable {
        case gsm7 = "GSM-7"
        case ucs2 = "UCS-2"
    }

    /// Bodies needing more segments are refused: carriers reassemble long messages unreliably, and each segment is billed.
    public static let maxSegments = 10

    public let encoding: Encoding
    /// In the encoding's units: GSM-7 septets (an extension-table character takes two, its escape and itself) or
    /// UTF-16 code units for UCS-2 (a character outside the BMP takes two, a surrogate pair).
    public let characters: Int
    public let segments: Int

    public init(_ body: String) {
        // Unicode scalars, not Characters: "\r\n" is one Character but two septets.
        let scalars = Array(body.unicodeScalars)
        let gsm7 = scalars.allSatisfy { Self.gsmBasic.contains($0) || Self.gsmExtension.contains($0) }
        let costs = scalars.map { scalar in
            gsm7 ? (Self.gsmExtension.contains(scalar) ? 2 : 1) : scalar.utf16.count
        }
        encoding = gsm7 ? .gsm7 : .ucs2
        characters = costs.reduce(0, +)
        segments = Self.segments(costs, single: gsm7 ? 160 : 70, part: gsm7 ? 153 : 67)
    }

    /// One segment up to `single` units; beyond, parts of `part` units (the rest carries the concatenation header).
    /// A unit pair (an escaped character, a surrogate pair) is never split, so a part may carry one unit less.
    static func segments(_ costs: [Int], single: Int, part: Int) -> Int {
        let total = costs.reduce(0, +)
        if total == 0 { return 0 }
        if total <= single { return 1 }
        var count = 1
        var used = 0
        for cost in costs {
            if used + cost > part {
                count += 1
                used = 0
            }
            used += cost
        }
        return count
    }

    /// The GSM 03.38 default alphabet (the escape code itself excepted: it is no character of its own).
    static let gsmBasic: Set<Unicode.Scalar> = Set(
        "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
            .unicodeScalars
    )

    /// The extension table, each sent as the escape code and a second septet.
    static let gsmExtension: Set<Unicode.Scalar> = Set("\u{0C}^{}\\[~]|€".unicodeScalars)
}
