import Foundation

/// Arbitrary JSON (template variables, metadata) kept exactly as the client sent it: keys are never rewritten.
public enum JSONValue: Codable, Sendable, Hashable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let bool = try? container.decode(Bool.self) {
            self = .bool(bool)
        } else if let number = try? container.decode(Double.self) {
            self = .number(number)
        } else if let string = try? container.decode(String.self) {
            self = .string(string)
        } else if let array = try? container.decode([JSONValue].self) {
            self = .array(array)
        } else {
            self = .object(try container.decode([String: JSONValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let bool): try container.encode(bool)
        case .number(let number):
            if number.rounded() == number, abs(number) < 9_007_199_254_740_992 {
                try container.encode(Int64(number))
            } else {
                try container.encode(number)
            }
        case .string(let string): try container.encode(string)
        case .array(let array): try container.encode(array)
        case .object(let object): try container.encode(object)
        }
    }

    public var stringValue: String? {
        if case .string(let string) = self { return string }
        return nil
    }

    public static func parseObject(_ data: Data) throws -> [String: JSONValue] {
        try data.withUnsafeBytes { try parseObject(bytes: $0) }
    }

    struct NotAnObject: Error {}
}

extension JSONEncoder {
    /// Sorted keys, no escaped slashes: the same value always encodes to the same bytes (used for payload hashes).
    public static var canonical: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return encoder
    }
}

extension JSONValue {
    /// Whether any string or key inside holds U+0000 (which PostgreSQL's jsonb and text cannot store).
    public var containsNUL: Bool {
        switch self {
        case .string(let value): return value.unicodeScalars.contains("\u{0}")
        case .array(let values): return values.contains { $0.containsNUL }
        case .object(let values): return values.contains { $0.key.unicodeScalars.contains("\u{0}") || $0.value.containsNUL }
        default: return false
        }
    }
}
