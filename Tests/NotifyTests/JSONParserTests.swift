import Foundation
import NotificationModel
import NotifyHTTP
import Testing

/// The request-body reader (`JSONValue.parse`) against `JSONDecoder`, which it replaced on the hot path: the same
/// value for what both accept, a refusal for what `JSONDecoder` refuses.
@Suite("JSON parser and writer")
struct JSONParserTests {
    static func viaDecoder(_ bytes: [UInt8]) -> JSONValue? {
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    static func viaParser(_ bytes: [UInt8]) -> JSONValue? {
        bytes.withUnsafeBytes { try? JSONValue.parse(bytes: $0) }
    }

    static let valid = [
        #"{}"#, #"[]"#, #" { "a" : 1 } "#, "\t\r\n{\"a\":[1,2,{\"b\":null}]}\n", #"{"a":true,"b":false,"c":null}"#,
        #"{"s":"plain","e":"q\"b\\s\/n\nt\tr\rb\bf\f","u":"\u00e9\u4e2d\ud83d\ude00"}"#, #"{"utf8":"héllo 中文 😀"}"#,
        #"{"n":[0,-0,1,-1,1.5,-1.25e3,1E+2,2e-2,123456789012345678901234567890,0.1,9007199254740993]}"#, #""text""#, "42",
        "-3.5e-7", "true", "null", #"[[[[[[[[[[]]]]]]]]]]"#, #"{"":""}"#, "\u{FEFF}{\"bom\":1}",
    ]

    static let invalid = [
        "", " ", "{", "}", "{\"a\" 1}", "{a:1}", "{'a':1}", "[1 2]", "tru", "nul", "falsey", "01", "1.",
        ".5", "-", "+1", "1e", "1e+", "0x10", "1e400", "-1e400", "NaN", "Infinity", "\"unterminated", "\"tab\there\"",
        "\"nl\nhere\"", #""\x""#, #""\u12""#, #""\u12G4""#, #""\ud800""#, #""\udc00""#, #""\ud800\u0041""#, "{} {}", "[] x",
        "{\"a\":1}garbage", "/* c */ {}",
    ]

    @Test("the same values as JSONDecoder for valid documents")
    func validDocuments() throws {
        for text in Self.valid {
            let bytes = Array(text.utf8)
            let expected = try #require(Self.viaDecoder(bytes), "JSONDecoder refused \(text)")
            #expect(Self.viaParser(bytes) == expected, "\(text)")
        }
        // Exactly what the escapes stand for.
        let escaped = try #require(Self.viaParser(Array(#"{"u":"\u00e9\ud83d\ude00\/\""}"#.utf8)))
        #expect(escaped == .object(["u": .string("é😀/\"")]))
    }

    @Test("refuses what JSONDecoder refuses (bad syntax, control characters, lone surrogates, invalid UTF-8, too deep) and trailing commas")
    func invalidDocuments() {
        for text in Self.invalid {
            let bytes = Array(text.utf8)
            #expect(Self.viaParser(bytes) == nil, "accepted \(text.debugDescription)")
            #expect(Self.viaDecoder(bytes) == nil, "JSONDecoder accepted \(text.debugDescription)")
        }
        for bytes: [UInt8] in [
            [0x22, 0xFF, 0x22], [0x22, 0xC3, 0x22], [0x7B, 0x22, 0xE2, 0x82, 0x22, 0x3A, 0x31, 0x7D], [0x22, 0xED, 0xA0, 0x80, 0x22],
        ] {
            #expect(Self.viaParser(bytes) == nil, "accepted invalid UTF-8 \(bytes)")
            #expect(Self.viaDecoder(bytes) == nil, "JSONDecoder accepted invalid UTF-8 \(bytes)")
        }
        // Trailing commas are not JSON (RFC 8259); JSONDecoder let them through, this reader does not.
        for text in ["[1,]", "{\"a\":1,}", "[1,2,]"] {
            #expect(Self.viaParser(Array(text.utf8)) == nil, "accepted \(text)")
        }
        let deep = Array((String(repeating: "[", count: 513) + String(repeating: "]", count: 513)).utf8)
        #expect(Self.viaParser(deep) == nil)
        let deepEnough = Array((String(repeating: "[", count: 500) + String(repeating: "]", count: 500)).utf8)
        #expect(Self.viaParser(deepEnough) != nil)
    }

    @Test("random documents and their mutations: the same answer as JSONDecoder")
    func randomDocuments() throws {
        var generator = SplitMix(seed: 0x5EED)
        func random(_ depth: Int) -> JSONValue {
            switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &generator) {
            case 0: return .null
            case 1: return .bool(Bool.random(using: &generator))
            case 2:
                return .number(
                    Bool.random(using: &generator)
                        ? Double(Int.random(in: -1_000_000...1_000_000, using: &generator)) : Double.random(in: -1e6...1e6, using: &generator)
                )
            case 3:
                let alphabet = Array("aZ09 \"\\/\n\t\u{1}é中😀\u{7F}")
                return .string(String((0..<Int.random(in: 0...8, using: &generator)).map { _ in alphabet.randomElement(using: &generator)! }))
            case 4: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in random(depth + 1) })
            default:
                var object: [String: JSONValue] = [:]
                for index in 0..<Int.random(in: 0...4, using: &generator) { object["k\(index)"] = random(depth + 1) }
                return .object(object)
            }
        }
        var mutated = 0
        for _ in 0..<400 {
            let value = random(0)
            let bytes = Array(try JSONEncoder().encode(value))
            #expect(Self.viaParser(bytes) == Self.viaDecoder(bytes), "\(String(decoding: bytes, as: UTF8.self))")
            // One byte changed, dropped or doubled: both accept (the same value) or both refuse.
            guard !bytes.isEmpty else { continue }
            var changed = bytes
            let position = Int.random(in: 0..<changed.count, using: &generator)
            switch Int.random(in: 0..<3, using: &generator) {
            case 0: changed[position] = Array("{}[],:\"\\0-e.tn \u{1}".utf8).randomElement(using: &generator)!
            case 1: changed.remove(at: position)
            default: changed.insert(changed[position], at: position)
            }
            var expected = Self.viaDecoder(changed)
            let text = String(decoding: changed, as: UTF8.self).filter { !$0.isWhitespace }
            if text.contains(",]") || text.contains(",}") { expected = nil }  // a trailing comma (above)
            if expected == nil { mutated += 1 }
            #expect(Self.viaParser(changed) == expected, "\(String(decoding: changed, as: UTF8.self).debugDescription)")
        }
        #expect(mutated > 50, "the mutations should break many documents")
    }
}

/// A payload written both ways: `JSONEncoder` as the envelope does (snake_case keys, ISO-8601 dates, unescaped
/// slashes) and `JSONBytes`.
struct WrittenBothWays: Encodable, JSONWritable {
    var requestID: String
    var optionalText: String?
    var count: Int
    var done: Bool
    var createdAt: Date
    var errors: [FieldError]
    var page: PageMeta

    func write(to json: inout JSONBytes) {
        json.beginObject()
        json.key("request_id")
        json.string(requestID)
        json.key("optional_text")
        json.string(optionalText)
        json.key("count")
        json.int(count)
        json.key("done")
        json.bool(done)
        json.key("created_at")
        json.date(createdAt)
        json.key("errors")
        json.array(errors)
        json.key("page")
        json.value(page)
        json.endObject()
    }

    func encode(to encoder: any Encoder) throws {
        enum Keys: String, CodingKey { case requestID, optionalText, count, done, createdAt, errors, page }
        var container = encoder.container(keyedBy: Keys.self)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(optionalText, forKey: .optionalText)
        try container.encode(count, forKey: .count)
        try container.encode(done, forKey: .done)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(errors, forKey: .errors)
        try container.encode(page, forKey: .page)
    }
}

extension JSONParserTests {
    @Test("JSONBytes writes what JSONEncoder writes for the same payload (escapes, dates, nulls, nesting)")
    func writerMatchesEncoder() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let texts = ["plain", "q\"uote\\back/slash", "line\nbreak\ttab\rcr\u{8}\u{C}", "ctl\u{1}\u{1F}", "é中😀", ""]
        let dates = [Date(timeIntervalSince1970: 0), Date(timeIntervalSince1970: 1_796_525_136.987), Date(timeIntervalSince1970: 4_102_444_799.5)]
        for (index, text) in texts.enumerated() {
            let payload = WrittenBothWays(
                requestID: text,
                optionalText: index.isMultiple(of: 2) ? nil : text,
                count: index * -12_345,
                done: index.isMultiple(of: 3),
                createdAt: dates[index % dates.count],
                errors: index == 0 ? [] : [FieldError(field: text, message: "m\(index)"), FieldError(field: "b", message: text)],
                page: PageMeta(total: index * 7, limit: 3, page: 2)
            )
            var json = JSONBytes()
            payload.write(to: &json)
            let expected = try encoder.encode(payload)
            #expect(Self.viaParser(json.bytes) == Self.viaParser(Array(expected)), "\(String(decoding: json.bytes, as: UTF8.self))")
            #expect(Self.viaParser(json.bytes) != nil)
            // The strings' escapes and the dates are byte for byte those of JSONEncoder (whose key order on Linux
            // changes from run to run; JSONBytes keeps the order written).
            let written = String(decoding: json.bytes, as: UTF8.self)
            #expect(written.contains(String(decoding: try encoder.encode(text), as: UTF8.self)), "\(written)")
            #expect(written.contains(String(decoding: try encoder.encode(payload.createdAt), as: UTF8.self)), "\(written)")
            #expect(written.hasPrefix(#"{"request_id":"#))
        }
    }
}

/// A seeded generator: the same documents on every run.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
