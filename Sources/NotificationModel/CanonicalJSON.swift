import Foundation

/// JSON written straight into bytes, in one form per value: no whitespace, the members of a `JSONValue` object in the
/// order of their keys' UTF-8 bytes, strings escaped as `JSONEncoder` escapes them (quote, backslash, control
/// characters; slashes and non-ASCII characters as they are), whole numbers below 2^53 without a fraction (as
/// `JSONValue` encodes them) and other numbers in Swift's shortest form that reads back to the same `Double`, dates
/// as `JSONEncoder`'s `.iso8601` writes them. Used for the text PostgreSQL stores as `jsonb`, for payload hashes
/// (`JSONEncoder` with sorted keys cost 5 % of the gateway's CPU per create) and, as `JSONBytes`, for the answers of
/// the hot paths (a struct's members in the order its `write(to:)` gives them). A number that is not finite has no
/// JSON form: it is written as Swift prints it and `isValidJSON` turns false.
public struct CanonicalJSON {
    public private(set) var bytes: [UInt8] = []
    /// False once a non-finite number was written: the bytes still identify the value (for a hash) but are not JSON.
    public private(set) var isValidJSON = true
    /// True right after a container opened: its first item needs no comma.
    var first = true

    public init(capacity: Int = 256) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        first = true
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        first = true
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        first = false
    }

    /// The key of the next member of the open object, escaped like any string.
    public mutating func member(_ name: String) {
        string(name)
        bytes.append(UInt8(ascii: ":"))
        first = true
    }

    /// A key known when the code was written (the API's own names): written as it is, without escapes.
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        bytes.append(contentsOf: UnsafeBufferPointer(start: name.utf8Start, count: name.utf8CodeUnitCount))
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        first = true
    }

    mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func int(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    public mutating func number(_ value: Double) {
        if value.rounded() == value, abs(value) < 9_007_199_254_740_992 {
            int(Int(value))
            return
        }
        separate()
        if !value.isFinite { isValidJSON = false }
        bytes.append(contentsOf: value.description.utf8)
    }

    public mutating func string(_ value: String) {
        separate()
        Self.appendQuoted(value, to: &bytes)
    }

    public mutating func string(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    public mutating func value(_ value: JSONValue) {
        switch value {
        case .null: null()
        case .bool(let bool): self.bool(bool)
        case .number(let number): self.number(number)
        case .string(let string): self.string(string)
        case .array(let array):
            beginArray()
            for item in array { self.value(item) }
            endArray()
        case .object(let object): self.object(object)
        }
    }

    public mutating func object(_ object: [String: JSONValue]) {
        beginObject()
        for (key, item) in object.sorted(by: { $0.key.utf8.lexicographicallyPrecedes($1.key.utf8) }) {
            member(key)
            value(item)
        }
        endObject()
    }

    /// `2026-12-06T02:45:29Z`: UTC, whole seconds (what `JSONEncoder`'s `.iso8601` writes).
    public mutating func date(_ value: Date) {
        separate()
        var seconds = time_t(value.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ number: Int32, _ width: Int) {
            var divisor: Int32 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = number
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        bytes.append(UInt8(ascii: "\""))
        digits(parts.tm_year + 1900, 4)
        bytes.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2)
        bytes.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2)
        bytes.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2)
        bytes.append(contentsOf: "Z\"".utf8)
    }

    /// The JSON text of an object, or nil when it holds a number JSON cannot write.
    public static func text(_ object: [String: JSONValue]) -> String? {
        var json = CanonicalJSON()
        json.object(object)
        return json.isValidJSON ? String(decoding: json.bytes, as: UTF8.self) : nil
    }

    static let hexDigits = Array("0123456789abcdef".utf8)

    /// A string literal: quote, backslash and control characters escaped as `JSONEncoder` does.
    public static func appendQuoted(_ value: String, to bytes: inout [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"): bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0x08: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "b")])
            case 0x0C: bytes.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "f")])
            case 0..<0x20:
                bytes.append(contentsOf: "\\u00".utf8)
                bytes.append(hexDigits[Int(byte >> 4)])
                bytes.append(hexDigits[Int(byte & 0xF)])
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }
}
