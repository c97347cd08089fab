import Foundation
import NIOHTTP1
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO
import SMTPTransport
import Synchronization
import Testing

@testable import Gateway
@testable import NotifyHTTP
@testable import Rendering

/// The hand-written forms that replaced Foundation on the paths of a create and of a delivery: canonical JSON (the
/// stored variables and the payload hash), the queue message's job ids, header quoting, code checks, template scans.
@Suite("Canonical forms", .serialized)
struct CanonicalFormsTests {
    /// A random JSON value of at most `depth` levels: every kind, keys and strings with escapes and non-ASCII text.
    static func randomValue(_ generator: inout SplitMix, depth: Int) -> JSONValue {
        let texts = ["", "a", "B", "ä", "Z", "_", "1", "\"", "\\", "/", "\n", "\u{1}", "\u{7F}", "中文", "😀", "é", "e\u{301}", " "]
        func text() -> String { (0..<Int.random(in: 0...4, using: &generator)).map { _ in texts.randomElement(using: &generator)! }.joined() }
        switch Int.random(in: 0...(depth > 0 ? 6 : 4), using: &generator) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2:
            let numbers: [Double] = [0, -0.0, 1, -1, 0.1, 1.5, -2.25, 1e-7, 1e20, 123_456_789, 9_007_199_254_740_992, 3.141592653589793, 5e-324]
            return .number(
                Bool.random(using: &generator) ? numbers.randomElement(using: &generator)! : Double.random(in: -1e6...1e6, using: &generator)
            )
        case 3, 4: return .string(text())
        case 5: return .array((0..<Int.random(in: 0...3, using: &generator)).map { _ in randomValue(&generator, depth: depth - 1) })
        default:
            var object: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0...4, using: &generator) { object[text()] = randomValue(&generator, depth: depth - 1) }
            return .object(object)
        }
    }

    @Test("canonical JSON reads back as the same value, with the keys of each object in byte order")
    func canonicalJSONRoundTrips() throws {
        var generator = SplitMix(seed: 22)
        for _ in 0..<2_000 {
            guard case .object(let object) = Self.randomValue(&generator, depth: 3) else { continue }
            let text = try #require(CanonicalJSON.text(object))
            #expect(try JSONValue.parseObject(Data(text.utf8)) == object, "\(text)")
            #expect(try JSONDecoder().decode([String: JSONValue].self, from: Data(text.utf8)) == object, "\(text)")
            // One form per value: however the dictionary was built, the same bytes.
            let rebuilt = Dictionary(uniqueKeysWithValues: object.map { ($0.key, $0.value) }.reversed())
            #expect(CanonicalJSON.text(rebuilt) == text)
        }
        #expect(CanonicalJSON.text(["b": .number(2), "a": .array([.number(1.5), .string("x")]), "B": .null]) == #"{"B":null,"a":[1.5,"x"],"b":2}"#)
        #expect(CanonicalJSON.text(["n": .number(.infinity)]) == nil)
    }

    @Test("strings are escaped exactly as JSONEncoder escapes them, for every scalar up to U+3100")
    func stringEscapes() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        for value in (0..<0x3100).compactMap(Unicode.Scalar.init).map({ "a" + String($0) + "z" }) {
            var bytes: [UInt8] = []
            CanonicalJSON.appendQuoted(value, to: &bytes)
            #expect(bytes == Array(try encoder.encode(value)), "\(value.unicodeScalars.map(\.value))")
        }
    }

    static func request(variables: [String: JSONValue] = ["name": .string("Ada"), "n": .number(3)]) -> NewNotification {
        NewNotification(
            channel: .email,
            userID: UUID(uuidString: "0b6a7c8e-25d1-4e4b-9d38-2f7ad4f3a6c1"),
            templateCode: "welcome",
            variables: variables,
            requestID: "r-1",
            priority: 1,
            metadata: ["source": .string("signup")],
            language: "en",
            sendAt: Date(timeIntervalSince1970: 1_796_000_000.25)
        )
    }

    @Test("the payload hash is versioned, ignores key order and held_until, and changes with every field")
    func payloadHash() {
        let base = Self.request()
        #expect(base.payloadHash.hasPrefix("v2:"))
        #expect(base.payloadHash.count == 3 + 64)
        #expect(Self.request(variables: ["n": .number(3), "name": .string("Ada")]).payloadHash == base.payloadHash)
        var held = base
        held.heldUntil = Date()
        #expect(held.payloadHash == base.payloadHash)
        // The same second, as the encoding before version 2 had it.
        var sameSecond = base
        sameSecond.sendAt = Date(timeIntervalSince1970: 1_796_000_000.75)
        #expect(sameSecond.payloadHash == base.payloadHash)
        var changes: [NewNotification] = []
        for change in 0..<13 {
            var other = base
            switch change {
            case 0: other.channel = .sms
            case 1: other.userID = nil
            case 2: other.templateCode = "welcome2"
            case 3: other.variables["name"] = .string("Ada ")
            case 4: other.requestID = "r-2"
            case 5: other.priority = 2
            case 6: other.metadata = nil
            case 7: other.language = nil
            case 8: other.sendAt = nil
            case 9: other.deliverTo = "a@example.com"
            case 10: other.recipient = DirectRecipient(email: "a@example.com")
            case 11: other.variables["n"] = .string("3")
            default: other.sendAt = Date(timeIntervalSince1970: 1_796_000_001)
            }
            changes.append(other)
        }
        let hashes = Set(changes.map(\.payloadHash) + [base.payloadHash])
        #expect(hashes.count == changes.count + 1)
        // A stored hash of either version is recognised, and only for its own payload.
        #expect(base.matches(storedHash: base.payloadHash))
        #expect(base.matches(storedHash: base.legacyPayloadHash))
        #expect(!base.legacyPayloadHash.hasPrefix("v2:"))
        for other in changes {
            #expect(!base.matches(storedHash: other.payloadHash))
            #expect(!base.matches(storedHash: other.legacyPayloadHash))
        }
    }

    @Test("a request_id stored with a hash from before version 2 still replays the original, and a changed payload still conflicts")
    func legacyHashReplays() async throws {
        try await RouterHarness.with(.gateway) { stack in
            try await stack.createTemplate(["code": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi", "body": "Hi {{name}}"])
            let user = try await stack.createUser()
            let body: [String: Any] = [
                "notification_type": "email", "user_id": user, "template_code": "welcome", "variables": ["name": "Ada"],
                "request_id": "legacy-1", "priority": 1,
            ]
            let first = try await stack.send(body)
            #expect(first.status == 202)
            let id = try #require((first.data["notification_id"] as? String).flatMap(UUID.init(uuidString:)))
            // What a gateway before version 2 stored for this request.
            let legacy = NewNotification(
                channel: .email,
                userID: UUID(uuidString: user),
                templateCode: "welcome",
                variables: ["name": .string("Ada")],
                requestID: "legacy-1",
                priority: 1
            ).legacyPayloadHash
            let stored = try await stack.infra.withDatabase(.notifications) { client in
                var hash = ""
                for try await (value, ) in try await client.query(
                    "SELECT payload_hash FROM notifications WHERE id = \(id)",
                    logger: TestInfrastructure.logger
                )
                .decode((String,).self) { hash = value }
                try await client.query("UPDATE notifications SET payload_hash = \(legacy) WHERE id = \(id)", logger: TestInfrastructure.logger)
                return hash
            }
            #expect(stored.hasPrefix("v2:"))
            let again = try await stack.send(body)
            #expect(again.status == 200)
            #expect(again.headers.first(name: "Idempotent-Replayed") == "true")
            #expect(again.data["notification_id"] as? String == id.uuidString.lowercased())
            var changed = body
            changed["variables"] = ["name": "Grace"]
            let conflict = try await stack.send(changed)
            #expect(conflict.status == 422)
            #expect(conflict.error == "IDEMPOTENCY_CONFLICT")
        }
    }

    @Test("a queue message's job ids: a batch's in order, a single message's, nothing from a body that names none")
    func queueJobIDs() throws {
        let single = QueueMessage(
            notificationID: UUID(),
            jobID: 41,
            userID: nil,
            templateCode: "t",
            variables: ["a": .array([.number(1), .object(["b": .null])])],
            requestID: "r",
            priority: 0,
            metadata: ["m": .bool(true)],
            attempt: 0
        )
        let encoded = String(decoding: try JSONEncoder().encode(single), as: UTF8.self)
        var second = single
        second.jobID = 7
        let other = String(decoding: try JSONEncoder().encode(second), as: UTF8.self)
        #expect(QueueBatch.jobIDs(in: Data(encoded.utf8)) == [41])
        #expect(QueueBatch.jobIDs(in: Data(QueueBatch.body([encoded, other, encoded]).utf8)) == [41, 7, 41])
        for body in [
            "this is not json", "{}", #"{"jobs":[]}"#, #"{"jobs":[{"job_id":"x"}]}"#, #"{"job_id":1.5}"#, #"{"jobs":[{"job_id":1},{}]}"#, "[1]",
        ] {
            #expect(QueueBatch.jobIDs(in: Data(body.utf8)) == nil, "\(body)")
        }
    }

    @Test("display names are quoted with their quotes and backslashes escaped; header values lose their line breaks")
    func headerQuoting() {
        #expect(EmailMessage.mailbox(name: "Ada Lovelace", address: "ada@example.com") == #""Ada Lovelace" <ada@example.com>"#)
        #expect(EmailMessage.mailbox(name: #"Ada "the" \ Countess"#, address: "ada@example.com") == #""Ada \"the\" \\ Countess" <ada@example.com>"#)
        #expect(EmailMessage.mailbox(name: "Adà", address: "ada@example.com") == "=?UTF-8?B?QWTDoA==?= <ada@example.com>")
        #expect(EmailMessage.mailbox(name: nil, address: "a@example.com\r\nBcc: x@example.com") == "<a@example.com  Bcc: x@example.com>")
        #expect(EmailMessage.headerSafe("plain value") == "plain value")
        #expect(EmailMessage.headerSafe("a\r\nb\nc\rd") == "a  b c d")
        #expect(EmailMessage.headerSafe("é\r\n中") == "é  中")
    }

    @Test("a code is ASCII letters, digits, '_', '-' and '.', exactly as the Character test had it, for every scalar up to U+3100")
    func codes() {
        func characterTest(_ value: String) -> Bool {
            !value.isEmpty && value.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }
        }
        var samples = ["", "welcome", "a.b-c_D9", "\r\n", "a\r\nb", "e\u{301}", "a b"]
        samples += (0..<0x3100).compactMap(Unicode.Scalar.init).map { "x" + String($0) }
        for sample in samples {
            #expect(FieldValidator.isCode(sample) == characterTest(sample), "\(sample.unicodeScalars.map(\.value))")
        }
    }

    @Test("the variables a template needs are scanned once per text and answered the same from then on")
    func templateNames() {
        let texts = ["Hi {{name}}", "{{#items}}{{title}}{{/items}} {{{ raw }}} {{& amp}} {{! note}} {{user.email}}", "<p>{{name}}</p>"]
        let expected = ["name", "items", "raw", "amp", "user"]
        #expect(TemplateVariables.scan(texts) == expected)
        #expect(TemplateVariables.names(in: texts) == expected)
        #expect(TemplateVariables.names(in: texts) == expected)
        #expect(TemplateVariables.scanned.withLock { $0[texts] } == expected)
        #expect(TemplateVariables.missing(in: texts, variables: ["name": .string("x"), "items": .array([]), "raw": .null]) == ["amp", "user"])
    }
}
