import Foundation
import NotificationModel

/// Reads a JSON object field by field and collects every problem, so one response lists them all.
public struct FieldValidator {
    public let object: [String: JSONValue]
    public private(set) var errors: [FieldError] = []

    public init(_ object: [String: JSONValue]) { self.object = object }

    public mutating func fail(_ field: String, _ message: String) {
        errors.append(FieldError(field: field, message: message))
    }

    public mutating func string(_ field: String, required: Bool = true, maxLength: Int = 10_000, allowEmpty: Bool = false) -> String? {
        switch object[field] {
        case nil, .null?:
            if required { fail(field, "is required") }
            return nil
        case .string(let value)?:
            if value.unicodeScalars.contains("\u{0}") {
                fail(field, "must not contain NUL characters")
                return nil
            }
            // Blank as Foundation's .whitespacesAndNewlines has it (Unicode's White_Space and U+200B), without its bridge.
            if !allowEmpty, value.unicodeScalars.allSatisfy({ $0.properties.isWhitespace || $0 == "\u{200B}" }) {
                fail(field, "must not be empty")
                return nil
            }
            if value.count > maxLength {
                fail(field, "must be at most \(maxLength) characters")
                return nil
            }
            return value
        default:
            fail(field, "must be a string")
            return nil
        }
    }

    public mutating func oneOf(_ field: String, _ allowed: [String], required: Bool = true) -> String? {
        guard let value = string(field, required: required, maxLength: 64) else { return nil }
        guard allowed.contains(value) else {
            fail(field, "must be one of: " + allowed.joined(separator: ", "))
            return nil
        }
        return value
    }

    public mutating func uuid(_ field: String, required: Bool = true) -> UUID? {
        guard let value = string(field, required: required, maxLength: 64) else { return nil }
        guard let uuid = UUID(text: value) else {
            fail(field, "must be a UUID")
            return nil
        }
        return uuid
    }

    public mutating func int(_ field: String, required: Bool = false, range: ClosedRange<Int>) -> Int? {
        switch object[field] {
        case nil, .null?:
            if required { fail(field, "is required") }
            return nil
        case .number(let number)?:
            guard number.rounded() == number, let value = Int(exactly: number) else {
                fail(field, "must be an integer")
                return nil
            }
            guard range.contains(value) else {
                fail(field, "must be between \(range.lowerBound) and \(range.upperBound)")
                return nil
            }
            return value
        default:
            fail(field, "must be an integer")
            return nil
        }
    }

    public mutating func bool(_ field: String) -> Bool? {
        switch object[field] {
        case nil, .null?: return nil
        case .bool(let value)?: return value
        default:
            fail(field, "must be a boolean")
            return nil
        }
    }

    public mutating func object(_ field: String, required: Bool = false) -> [String: JSONValue]? {
        switch object[field] {
        case nil, .null?:
            if required { fail(field, "is required") }
            return nil
        case .object(let value)?:
            // PostgreSQL's jsonb cannot hold U+0000; refuse it here rather than fail at the database.
            guard !JSONValue.object(value).containsNUL else {
                fail(field, "must not contain NUL characters (\\u0000)")
                return nil
            }
            return value
        default:
            fail(field, "must be an object")
            return nil
        }
    }

    /// An optional BCP 47 language tag such as `en`, `fr-CA` or `zh-Hant-TW`.
    public mutating func languageTag(_ field: String) -> String? {
        guard let value = string(field, required: false, maxLength: 35) else { return nil }
        guard Self.isLanguageTag(value) else {
            fail(field, "must be a language tag such as en or fr-CA")
            return nil
        }
        return value
    }

    public static func isLanguageTag(_ value: String) -> Bool {
        let parts = value.split(separator: "-", omittingEmptySubsequences: false)
        guard value.utf8.count <= 35, let first = parts.first, (2...8).contains(first.count),
            first.allSatisfy({ $0.isASCII && $0.isLetter })
        else { return false }
        return parts.dropFirst().allSatisfy { part in (1...8).contains(part.count) && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) } }
    }

    /// Codes (templates): ASCII letters, digits, `_`, `-` and `.`.
    public static func isCode(_ value: String) -> Bool {
        // On bytes: ASCII letters, digits, "_", "-" and "." (any other byte, a part of a non-ASCII character among them, fails).
        !value.isEmpty
            && value.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                    UInt8(ascii: "_"), UInt8(ascii: "-"), UInt8(ascii: "."):
                    return true
                default: return false
                }
            }
    }

    public mutating func email(_ field: String, required: Bool = true) -> String? {
        guard let value = string(field, required: required, maxLength: 254) else { return nil }
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, parts[1].contains("."), !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
            !value.contains(where: { $0.isWhitespace || $0 == "<" || $0 == ">" || $0 == "," })
        else {
            fail(field, "must be an email address")
            return nil
        }
        return value
    }

    /// Throws the collected problems as one 400 `VALIDATION_ERROR`.
    public func check() throws {
        if !errors.isEmpty { throw APIError.validation(errors) }
    }
}
