/// A strict JSON (RFC 8259) reader of UTF-8 bytes into `JSONValue`, for request bodies: one pass over the bytes,
/// no intermediate tree. `JSONDecoder` into `JSONValue` tried each type in turn and threw an error for every wrong
/// guess, which cost a twentieth of the gateway's CPU per create.
///
/// Rejects what `JSONDecoder` rejects: anything but whitespace around the value, invalid UTF-8, unescaped control
/// characters, lone surrogates, numbers outside `Double`, nesting deeper than 512. A repeated key keeps its last value.
struct JSONParser {
    struct Invalid: Error, Equatable {
        var offset: Int
    }

    static let maximumDepth = 512

    let bytes: UnsafeRawBufferPointer
    var index = 0
    var depth = 0

    static func parse(_ bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        // A UTF-8 byte order mark is allowed before the value.
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { parser.index = 3 }
        let value = try parser.value()
        parser.skipWhitespace()
        guard parser.index == bytes.count else { throw Invalid(offset: parser.index) }
        return value
    }

    mutating func skipWhitespace() {
        while index < bytes.count {
            switch bytes[index] {
            case 0x20, 0x09, 0x0A, 0x0D: index += 1
            default: return
            }
        }
    }

    func fail() -> Invalid { Invalid(offset: index) }

    mutating func value() throws -> JSONValue {
        skipWhitespace()
        guard index < bytes.count else { throw fail() }
        switch bytes[index] {
        case UInt8(ascii: "{"): return try object()
        case UInt8(ascii: "["): return try array()
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number(try number())
        default: throw fail()
        }
    }

    mutating func literal(_ word: StaticString, _ value: JSONValue) throws -> JSONValue {
        let count = word.utf8CodeUnitCount
        guard index + count <= bytes.count else { throw fail() }
        for offset in 0..<count where bytes[index + offset] != word.utf8Start[offset] { throw fail() }
        index += count
        return value
    }

    mutating func enter() throws {
        depth += 1
        guard depth <= Self.maximumDepth else { throw fail() }
        index += 1
    }

    mutating func object() throws -> JSONValue {
        try enter()
        var result: [String: JSONValue] = [:]
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "}") {
            index += 1
            depth -= 1
            return .object(result)
        }
        while true {
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { throw fail() }
            let key = try string()
            skipWhitespace()
            guard index < bytes.count, bytes[index] == UInt8(ascii: ":") else { throw fail() }
            index += 1
            result[key] = try value()
            skipWhitespace()
            guard index < bytes.count else { throw fail() }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "}") else { throw fail() }
            index += 1
            depth -= 1
            return .object(result)
        }
    }

    mutating func array() throws -> JSONValue {
        try enter()
        var result: [JSONValue] = []
        skipWhitespace()
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") {
            index += 1
            depth -= 1
            return .array(result)
        }
        while true {
            result.append(try value())
            skipWhitespace()
            guard index < bytes.count else { throw fail() }
            if bytes[index] == UInt8(ascii: ",") {
                index += 1
                continue
            }
            guard bytes[index] == UInt8(ascii: "]") else { throw fail() }
            index += 1
            depth -= 1
            return .array(result)
        }
    }

    /// A string literal at `index` (its opening quote).
    mutating func string() throws -> String {
        index += 1
        let start = index
        // The common case: no escapes, so the bytes between the quotes are the string (once checked as UTF-8).
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "\"") {
                let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<index])
                index += 1
                guard let text = String(validating: raw, as: UTF8.self) else { throw Invalid(offset: start) }
                return text
            }
            if byte == UInt8(ascii: "\\") { break }
            if byte < 0x20 { throw fail() }
            index += 1
        }
        guard index < bytes.count else { throw fail() }
        // With escapes: the bytes so far, then the rest piece by piece.
        var decoded = Array(bytes[start..<index])
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\""):
                index += 1
                guard let text = String(validating: decoded, as: UTF8.self) else { throw Invalid(offset: start) }
                return text
            case UInt8(ascii: "\\"):
                index += 1
                guard index < bytes.count else { throw fail() }
                let escaped = bytes[index]
                index += 1
                switch escaped {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): decoded.append(escaped)
                case UInt8(ascii: "b"): decoded.append(0x08)
                case UInt8(ascii: "f"): decoded.append(0x0C)
                case UInt8(ascii: "n"): decoded.append(0x0A)
                case UInt8(ascii: "r"): decoded.append(0x0D)
                case UInt8(ascii: "t"): decoded.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800...0xDBFF).contains(scalar) {
                        // A high surrogate must be followed by an escaped low one.
                        guard index + 1 < bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") else {
                            throw fail()
                        }
                        index += 2
                        let low = try hex4()
                        guard (0xDC00...0xDFFF).contains(low) else { throw fail() }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(scalar) {
                        throw fail()
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { throw fail() }
                    decoded.append(contentsOf: String(Character(unicode)).utf8)
                default:
                    throw fail()
                }
            default:
                if byte < 0x20 { throw fail() }
                decoded.append(byte)
                index += 1
            }
        }
        throw fail()
    }

    mutating func hex4() throws -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail() }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = bytes[index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw fail()
            }
            value = value << 4 | UInt32(digit)
            index += 1
        }
        return value
    }

    /// A number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?, finite as a Double.
    mutating func number() throws -> Double {
        let start = index
        func digits(_ parser: inout JSONParser) -> Int {
            let first = parser.index
            while parser.index < parser.bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(parser.bytes[parser.index]) {
                parser.index += 1
            }
            return parser.index - first
        }
        if bytes[index] == UInt8(ascii: "-") { index += 1 }
        guard index < bytes.count else { throw fail() }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            guard digits(&self) > 0 else { throw fail() }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw fail() }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < bytes.count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw fail() }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        guard let number = Double(text), number.isFinite else { throw Invalid(offset: start) }
        return number
    }
}

extension JSONValue {
    /// Any JSON value from UTF-8 bytes (strict; see `JSONParser`).
    public static func parse(bytes: UnsafeRawBufferPointer) throws -> JSONValue {
        try JSONParser.parse(bytes)
    }

    /// A JSON object from UTF-8 bytes; anything else throws.
    public static func parseObject(bytes: UnsafeRawBufferPointer) throws -> [String: JSONValue] {
        guard case .object(let object) = try JSONParser.parse(bytes) else { throw NotAnObject() }
        return object
    }
}
