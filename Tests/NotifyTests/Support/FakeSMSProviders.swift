import AsyncHTTPClient
import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Testing

/// Local stand-ins for the SMS providers' HTTP APIs, which live on the internet (so doubles are allowed), speaking
/// their real protocols and checking what they check:
/// - Twilio `POST /2010-04-01/Accounts/{sid}/Messages.json`: HTTP Basic `accountSID:authToken` with the path's sid
///   (else 401 `{"code": 20003}`); a form body with `To` (E.164, else 21604 when missing, 21211 when malformed),
///   `Body` (21602) and `From` or `MessagingServiceSid` (21603), errors as Twilio's `{"code", "message", "more_info",
///   "status"}`. The `To` number chooses the answer: `…0000` 400 21211, `…0001` 400 21610 (unsubscribed), `…0429` 429
///   20429 with Retry-After: 1, `…0503` 503 once per number, anything else 201 with the message resource (`sid`
///   `SM` and 32 hex digits), recorded in `sent`.
/// - Vonage `POST /sms/json`: `api_key`/`api_secret` (else status "4"), `from`, `to` (international digits without
///   `+`, else status "3") and `text` (else status "2"); a `to` ending `0000` answers status "3"; otherwise status
///   "0" with a `message-id`, recorded in `sent`. Vonage answers 200 whatever the status.
/// - Twilio's webhooks, played to the gateway: `sendStatusCallback` and `sendInbound` post the form Twilio posts,
///   signed (`X-Twilio-Signature`) by this file's own implementation of Twilio's algorithm.
final class FakeSMSProviders: Sendable {
    static let accountSID = "AC0123456789abcdef0123456789abcdef"
    static let authToken = "test-twilio-auth-token-7f3a"
    static let from = "+15005550006"
    static let vonageKey = "vonage-test-key"
    static let vonageSecret = "vonage-test-secret-9c1e"

    struct Sent: Sendable, Equatable {
        /// "twilio" or "vonage".
        var provider: String
        /// As the provider received it: E.164 for Twilio, digits for Vonage.
        var to: String
        var from: String?
        var messagingServiceSID: String?
        var body: String
        /// Twilio's `StatusCallback`, Vonage's `callback`.
        var statusCallback: String?
        /// Vonage's `type` (`unicode`) and `client-ref`.
        var type: String?
        var clientRef: String?
        /// The id the fake answered: Twilio's `sid`, Vonage's `message-id`.
        var id: String
    }

    let sent = NIOLockedValueBox<[Sent]>([])
    /// Every request received per provider, including refused ones.
    let requests = NIOLockedValueBox<[String: Int]>([:])
    let failedOnce = NIOLockedValueBox<Set<String>>([])
    let port = NIOLockedValueBox<Int>(0)

    var url: String { "http://127.0.0.1:\(port.withLockedValue { $0 })" }
    /// The base URL a `TwilioProvider` is given.
    var twilioURL: String { url }
    /// The base URL a `VonageProvider` is given.
    var vonageURL: String { url }

    func requestCount(_ provider: String) -> Int { requests.withLockedValue { $0[provider] ?? 0 } }

    func sent(id: String) -> Sent? { sent.withLockedValue { $0.first { $0.id == id } } }

    static func with<T: Sendable>(_ body: @Sendable (FakeSMSProviders) async throws -> T) async throws -> T {
        let fake = FakeSMSProviders()
        let app = fake.makeApplication()
        return try await withThrowingTaskGroup(of: Void.self) { group -> T in
            group.addTask { try await app.run() }
            defer { group.cancelAll() }
            _ = try await eventually("SMS provider stand-ins listening") { fake.port.withLockedValue { $0 } > 0 ? true : nil }
            return try await body(fake)
        }
    }

    // MARK: - Server

    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        router.post("/2010-04-01/Accounts/:sid/Messages.json") { request, context -> Response in
            self.requests.withLockedValue { $0["twilio", default: 0] += 1 }
            let credentials = Self.basicCredentials(request.headers[.authorization])
            guard credentials?.user == Self.accountSID, credentials?.password == Self.authToken,
                context.parameters.get("sid") == Self.accountSID
            else {
                return Self.twilioError(401, 20003, "Authenticate")
            }
            let body = try await request.body.collect(upTo: 1 << 20)
            guard request.headers[.contentType]?.lowercased().hasPrefix("application/x-www-form-urlencoded") == true else {
                return Self.twilioError(400, 21604, "A 'To' phone number is required.")
            }
            let form = Self.formFields(String(buffer: body))
            func field(_ name: String) -> String? { form.last { $0.name == name }.flatMap { $0.value.isEmpty ? nil : $0.value } }
            guard let to = field("To") else { return Self.twilioError(400, 21604, "A 'To' phone number is required.") }
            guard Self.isE164(to) else { return Self.twilioError(400, 21211, "Invalid 'To' Phone Number: \(to)") }
            guard let text = field("Body") else { return Self.twilioError(400, 21602, "Message body is required.") }
            let from = field("From")
            let service = field("MessagingServiceSid")
            guard from != nil || service != nil else { return Self.twilioError(400, 21603, "A 'From' phone number is required.") }
            if to.hasSuffix("0000") { return Self.twilioError(400, 21211, "Invalid 'To' Phone Number: \(to)") }
            if to.hasSuffix("0001") { return Self.twilioError(400, 21610, "Attempt to send to unsubscribed recipient") }
            if to.hasSuffix("0429") { return Self.twilioError(429, 20429, "Too Many Requests", retryAfter: "1") }
            if to.hasSuffix("0503"), self.failedOnce.withLockedValue({ $0.insert(to).inserted }) {
                return Self.twilioError(503, 20500, "Service Unavailable")
            }
            let sid = "SM" + Self.hex(count: 32)
            let callback = field("StatusCallback")
            self.sent.withLockedValue {
                $0.append(
                    Sent(provider: "twilio", to: to, from: from, messagingServiceSID: service, body: text, statusCallback: callback, id: sid)
                )
            }
            let resource: [String: Any] = [
                "sid": sid, "account_sid": Self.accountSID, "status": "queued", "to": to, "from": from.map { $0 as Any } ?? NSNull(),
                "messaging_service_sid": service.map { $0 as Any } ?? NSNull(), "body": text, "num_segments": "1", "direction": "outbound-api",
                "api_version": "2010-04-01", "uri": "/2010-04-01/Accounts/\(Self.accountSID)/Messages/\(sid).json",
            ]
            return Self.json(201, resource)
        }
        router.post("/sms/json") { request, _ -> Response in
            self.requests.withLockedValue { $0["vonage", default: 0] += 1 }
            let form = Self.formFields(String(buffer: try await request.body.collect(upTo: 1 << 20)))
            func field(_ name: String) -> String? { form.last { $0.name == name }.flatMap { $0.value.isEmpty ? nil : $0.value } }
            func refusal(_ status: String, _ text: String) -> Response {
                Self.json(200, ["message-count": "1", "messages": [["status": status, "error-text": text]]])
            }
            guard field("api_key") == Self.vonageKey, field("api_secret") == Self.vonageSecret else { return refusal("4", "Bad Credentials") }
            guard let from = field("from") else { return refusal("2", "Missing from param") }
            guard let to = field("to") else { return refusal("2", "Missing to param") }
            guard let text = field("text") else { return refusal("2", "Missing text param") }
            guard to.allSatisfy({ $0.isASCII && $0.isNumber }), to.count >= 8, !to.hasSuffix("0000") else {
                return refusal("3", "Invalid to number")
            }
            let id = UUID().uuidString.lowercased()
            self.sent.withLockedValue {
                $0.append(
                    Sent(
                        provider: "vonage",
                        to: to,
                        from: from,
                        body: text,
                        statusCallback: field("callback"),
                        type: field("type"),
                        clientRef: field("client-ref"),
                        id: id
                    )
                )
            }
            let part: [String: Any] = [
                "to": to, "message-id": id, "status": "0", "remaining-balance": "3.14159265", "message-price": "0.03330000",
                "network": "23410", "client-ref": field("client-ref") ?? "",
            ]
            return Self.json(200, ["message-count": "1", "messages": [part]])
        }
        let port = self.port
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port ?? 0 } }
        )
    }

    // MARK: - Twilio's webhooks

    /// Plays Twilio's status callback for the message `sid` to `url`, signed with `token`; returns the HTTP status.
    func sendStatusCallback(to url: String, sid: String, status: String, errorCode: String? = nil, signWith token: String) async throws -> Int {
        let message = sent(id: sid)
        var fields = [
            ("MessageSid", sid), ("SmsSid", sid), ("MessageStatus", status), ("SmsStatus", status), ("AccountSid", Self.accountSID),
            ("To", message?.to ?? "+15005550001"), ("From", message?.from ?? Self.from),
        ]
        if let errorCode { fields.append(("ErrorCode", errorCode)) }
        fields.append(("ApiVersion", "2010-04-01"))
        return try await Self.postSigned(to: url, fields: fields, token: token)
    }

    /// Plays an inbound SMS (a reply such as STOP) from `from` to our number `to`, signed with `token`.
    func sendInbound(to url: String, from: String, to number: String, body: String, signWith token: String) async throws -> Int {
        let sid = "SM" + Self.hex(count: 32)
        let fields = [
            ("MessageSid", sid), ("SmsSid", sid), ("AccountSid", Self.accountSID), ("From", from), ("To", number), ("Body", body),
            ("NumMedia", "0"), ("NumSegments", "1"), ("ApiVersion", "2010-04-01"),
        ]
        return try await Self.postSigned(to: url, fields: fields, token: token)
    }

    /// Twilio's signature, written from its documentation independently of the module under test: the URL, then each
    /// parameter's name and value sorted by name, HMAC-SHA1 keyed with the auth token, base64.
    static func twilioSignature(url: String, fields: [(String, String)], token: String) -> String {
        let sorted = fields.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
        let text = sorted.reduce(url) { $0 + $1.0 + $1.1 }
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Data(text.utf8), using: SymmetricKey(data: Data(token.utf8)))
        return Data(mac).base64EncodedString()
    }

    private static func postSigned(to url: String, fields: [(String, String)], token: String) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded; charset=utf-8")
        request.headers.add(name: "User-Agent", value: "TwilioProxy/1.1")
        request.headers.add(name: "X-Twilio-Signature", value: twilioSignature(url: url, fields: fields, token: token))
        // Twilio writes spaces as `+`, as HTML forms do.
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~ ")
        allowed.remove(charactersIn: "+")
        let encode = { (text: String) in
            (text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text).replacingOccurrences(of: " ", with: "+")
        }
        request.body = .bytes(ByteBuffer(string: fields.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&")))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        _ = try await response.body.collect(upTo: 1 << 20)
        return Int(response.status.code)
    }

    // MARK: - Helpers

    static func twilioError(_ status: Int, _ code: Int, _ message: String, retryAfter: String? = nil) -> Response {
        var headers: HTTPFields = [:]
        if let retryAfter { headers[.retryAfter] = retryAfter }
        return json(
            status,
            ["code": code, "message": message, "more_info": "https://www.twilio.com/docs/errors/\(code)", "status": status],
            headers: headers
        )
    }

    static func json(_ status: Int, _ object: [String: Any], headers: HTTPFields = [:]) -> Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(
            status: .init(code: status),
            headers: fields,
            body: .init(byteBuffer: ByteBuffer(data: try! JSONSerialization.data(withJSONObject: object)))
        )
    }

    static func isE164(_ number: String) -> Bool {
        let digits = number.dropFirst()
        return number.hasPrefix("+") && (8...15).contains(digits.count) && digits.first != "0"
            && digits.allSatisfy { $0.isASCII && $0.isNumber }
    }

    private static func basicCredentials(_ header: String?) -> (user: String, password: String)? {
        guard let parts = header?.split(separator: " ", maxSplits: 1), parts.count == 2, parts[0].lowercased() == "basic",
            let data = Data(base64Encoded: String(parts[1]))
        else { return nil }
        let decoded = String(decoding: data, as: UTF8.self)
        guard let colon = decoded.firstIndex(of: ":") else { return nil }
        return (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))
    }

    private static func formFields(_ body: String) -> [(name: String, value: String)] {
        func decode(_ part: Substring) -> String {
            let spaced = part.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        return body.split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (name: decode(parts[0]), value: parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    private static func hex(count: Int) -> String {
        String((0..<count).map { _ in Array("0123456789abcdef").randomElement()! })
    }
}
