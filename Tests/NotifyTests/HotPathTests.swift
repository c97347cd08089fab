import Foundation
import Logging
import NotificationModel
import NotifyConfig
import Testing

@testable import NotifyHTTP
@testable import NotifyLogging

/// The helpers that replaced Foundation calls on the gateway's path of a create: ids, trimming, log escapes.
@Suite("Hot path helpers")
struct HotPathTests {
    static func bytes(_ id: UUID) -> [UInt8] { withUnsafeBytes(of: id.uuid) { Array($0) } }

    @Test("a time-ordered id is a version 7 UUID carrying its millisecond, and ids of later milliseconds sort after")
    func timeOrdered() {
        let start: UInt64 = 1_796_000_000_123
        var previous = ""
        var seen = Set<UUID>()
        for step in 0..<2_000 {
            let millisecond = start + UInt64(step)
            let id = UUID.timeOrdered(at: Date(timeIntervalSince1970: Double(millisecond) / 1000))
            let raw = Self.bytes(id)
            #expect(raw[6] >> 4 == 7, "version")
            #expect(raw[8] >> 6 == 0b10, "variant")
            #expect(raw[0..<6].reduce(UInt64(0)) { $0 << 8 | UInt64($1) } == millisecond)
            // PostgreSQL orders uuids by their bytes, as their lowercase text sorts.
            let text = id.uuidString.lowercased()
            #expect(text > previous)
            previous = text
            seen.insert(id)
        }
        #expect(seen.count == 2_000)
        // In one millisecond the 74 random bits keep ids apart.
        let now = Date()
        let same = Set((0..<10_000).map { _ in UUID.timeOrdered(at: now) })
        #expect(same.count == 10_000)
    }

    @Test("a random id is a version 4 UUID with fresh bits each time")
    func random() {
        var seen = Set<UUID>()
        var ones = 0
        for _ in 0..<10_000 {
            let id = UUID.random()
            let raw = Self.bytes(id)
            #expect(raw[6] >> 4 == 4, "version")
            #expect(raw[8] >> 6 == 0b10, "variant")
            ones += raw.reduce(0) { $0 + $1.nonzeroBitCount }
            seen.insert(id)
        }
        #expect(seen.count == 10_000)
        // 122 random bits each (about 61 set on average) and two set bits of the version and variant.
        let meanOnes = Double(ones) / 10_000
        #expect(meanOnes > 62 && meanOnes < 64, "mean set bits \(meanOnes)")
    }

    /// Every scalar of the Basic Multilingual Plane up to U+3100 (past the last space of any kind, U+3000), alone and
    /// around a word.
    static let scalars = (0..<0x3100).compactMap(Unicode.Scalar.init).map(String.init)

    @Test("trimming spaces removes what Foundation's .whitespaces removes, and only that")
    func trimming() {
        for scalar in Self.scalars {
            for sample in [scalar, scalar + "key" + scalar, scalar + scalar, "a" + scalar + "b"] {
                let expected = sample.trimmingCharacters(in: .whitespaces)
                #expect(sample.trimmingSpaces() == expected, "\(sample.unicodeScalars.map(\.value))")
                // The same as a Substring (cut by scalars: a combining mark would join the "x" as one Character).
                #expect(Substring(("x" + sample + "x").unicodeScalars.dropFirst().dropLast()).trimmingSpaces() == expected)
            }
        }
    }

    @Test("a field is blank (\"must not be empty\") exactly when Foundation's .whitespacesAndNewlines trims it to nothing")
    func blankField() {
        for scalar in Self.scalars where scalar != "\u{0}" {
            for text in [scalar, scalar + scalar, " " + scalar] {
                var validator = FieldValidator(["f": .string(text)])
                let blank = text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                #expect((validator.string("f") == nil) == blank, "\(text.unicodeScalars.map(\.value))")
                #expect(validator.errors.map(\.message) == (blank ? ["must not be empty"] : []))
            }
        }
    }

    @Test("a log value is escaped so that JSON reads back the same string, on the quick path and the slow one")
    func logEscape() throws {
        let samples = [
            "", "plain", "with space", "héllo 中文 😀", "quote\"", "back\\slash", "new\nline", "tab\t", "nul\u{0}",
            "bell\u{7}", "del\u{7F}", "slash/", "\u{1F}", "mixed \"\\\n\u{1}é",
        ]
        for sample in samples {
            var line: [UInt8] = []
            JSONLogHandler.escape(sample, into: &line)
            let read = try JSONDecoder().decode(String.self, from: Data(line))
            #expect(read == sample)
            #expect(!line.dropFirst().dropLast().contains { $0 < 0x20 })
        }
    }

    @Test("a log line is one JSON object with sorted keys: the event's metadata over the logger's, the line's own fields over both")
    func logLine() throws {
        var handler = JSONLogHandler(label: "notify.test")
        handler[metadataKey: "component"] = "gateway"
        handler[metadataKey: "client"] = "from the logger"
        handler[metadataKey: "message"] = "not the message"
        let event = LogEvent(
            level: .warning,
            message: "a \"quoted\" message",
            metadata: ["client": "from the event", "ids": .array(["1", "2"]), "nested": .dictionary(["b": "2", "a": "1"]), "time": "not the time"],
            source: "test",
            file: #fileID,
            function: #function,
            line: #line
        )
        let line = handler.line(for: event, time: "2026-12-07T21:00:00.000Z")
        #expect(line.last == UInt8(ascii: "\n"))
        #expect(line.dropLast().allSatisfy { $0 != UInt8(ascii: "\n") })
        let text = String(decoding: line.dropLast(), as: UTF8.self)
        #expect(
            text == #"{"client":"from the event","component":"gateway","ids":["1","2"],"level":"warning","logger":"notify.test","#
                + #""message":"a \"quoted\" message","nested":{"a":"1","b":"2"},"time":"2026-12-07T21:00:00.000Z"}"#
        )
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
        #expect(object["message"] as? String == "a \"quoted\" message")
    }

    @Test("a UUID's text forms are Foundation's, and its parser takes exactly the 8-4-4-4-12 hex form in either case")
    func uuidText() {
        var generator = SplitMix(seed: 5)
        for _ in 0..<5_000 {
            var id: uuid_t = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
            withUnsafeMutableBytes(of: &id) { bytes in
                for index in 0..<16 { bytes[index] = UInt8.random(in: .min ... .max, using: &generator) }
            }
            let uuid = UUID(uuid: id)
            #expect(uuid.lowercased == uuid.uuidString.lowercased())
            #expect(uuid.uppercased == uuid.uuidString)
            #expect(UUID(text: uuid.lowercased) == uuid)
            #expect(UUID(text: uuid.uuidString) == uuid)
        }
        let valid = "0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0e"
        #expect(UUID(text: valid) == UUID(uuidString: valid))
        #expect(UUID(text: valid[...]) == UUID(uuidString: valid))
        #expect(UUID(text: "0191F3A2-7c4e-7B1D-9a3e-5F6A7B8C9D0E") == UUID(uuidString: valid))
        let malformed = [
            "", "0191f3a2", "0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0", "0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0e0",
            "0191f3a27c4e7b1d9a3e5f6a7b8c9d0e", "{0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0e}", " 191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0e",
            "+191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0e", "0191f3a2_7c4e-7b1d-9a3e-5f6a7b8c9d0e", "0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0g",
            "0191f3a2-7c4e-7b1d-9a3e5-f6a7b8c9d0e", "0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0é", "0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0e\n",
        ]
        for text in malformed { #expect(UUID(text: text) == nil, "\(text)") }
    }

    @Test("a log line's time is what ISO8601DateFormatter writes with milliseconds, in UTC")
    func logTimestamp() {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        var generator = SplitMix(seed: 11)
        var samples = [(0, 0), (951_782_400, 999), (1_796_000_000, 5), (4_102_444_799, 120)]
        samples += (0..<2_000).map { _ in (Int.random(in: 0...4_102_444_799, using: &generator), Int.random(in: 0...999, using: &generator)) }
        for (seconds, milliseconds) in samples {
            let date = Date(timeIntervalSince1970: Double(seconds) + Double(milliseconds) / 1000 + 0.0001)
            #expect(JSONLogHandler.timestamp(seconds: seconds, milliseconds: milliseconds) == formatter.string(from: date), "\(seconds)")
        }
        #expect(JSONLogHandler.timestamp().utf8.count == 24)
    }

    @Test("hexString writes two lowercase digits a byte, as String(format:) does")
    func hex() {
        var generator = SplitMix(seed: 7)
        for length in [0, 1, 2, 15, 16, 32, 33, 100] {
            let bytes = (0..<length).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
            #expect(bytes.hexString == bytes.map { String(format: "%02x", $0) }.joined())
        }
        #expect(([0x00, 0x0f, 0xf0, 0xff, 0xa5] as [UInt8]).hexString == "000ff0ffa5")
    }
}
