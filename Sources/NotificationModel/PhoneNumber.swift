import Foundation

/// Phone numbers as the SMS channel stores and sends them: E.164, `+` and 8 to 15 digits, the first not 0.
public enum PhoneNumber {
    /// What an API client is told when a number does not normalize.
    public static let problem = "must be a phone number in E.164 form, e.g. +14155550123"

    /// The canonical `+4915112345678` form of `text`, or nil when it is not E.164. Spaces, hyphens, dots and
    /// parentheses are how people write numbers, so they are dropped; anything else (letters, a national `0` prefix,
    /// a missing `+`, digits other than ASCII) is refused rather than guessed at.
    public static func normalize(_ text: String) -> String? {
        var digits: [Unicode.Scalar] = []
        var sawPlus = false
        for scalar in text.unicodeScalars {
            switch scalar {
            case " ", "-", ".", "(", ")":
                continue
            case "+" where !sawPlus && digits.isEmpty:
                sawPlus = true
            case "0"..."9" where sawPlus:
                digits.append(scalar)
            default:
                return nil
            }
        }
        guard (8...15).contains(digits.count), digits[0] != "0" else { return nil }
        var number = "+"
        number.unicodeScalars.append(contentsOf: digits)
        return number
    }
}
