import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat

/// Local stand-ins for the email providers' HTTP APIs, which live on the internet (so doubles are allowed), speaking
/// their real protocols and checking what they check:
/// - SendGrid v3 `POST /v3/mail/send`: `Authorization: Bearer <sendGridKey>` (else 401 with SendGrid's errors body);
///   `Content-Type: application/json`; `personalizations` a non-empty array, each with a non-empty `to` array of
///   `{email, name?}` (valid, unique addresses across to/cc/bcc); `from.email`; `subject` unless every
///   personalization has one; `content` a non-empty array of `{type, value}` with `text/plain` first and `text/html`
///   next when present; optional `reply_to.email`, `headers` (string values, no reserved header such as From, To,
///   Subject, Content-Type or Reply-To) and `custom_args` (string values), also per personalization. Violations answer
///   400 `{"errors":[{"message","field","help"}]}`; success 202 with an empty body and `X-Message-Id`, recording one
///   `Sent` per `to` recipient.
/// - Mailgun `POST /v3/{domain}/messages`: HTTP Basic `api:<mailgunKey>` (else 401 `Forbidden`); the domain must be
///   `mailgunDomain` (else 404); the body is `application/x-www-form-urlencoded` or `multipart/form-data`; `from` (an
///   RFC 5322 mailbox), `to` (one or more, repeated or comma-separated), `subject` and one of `text`/`html` are
///   required (400 `{"message"}` in Mailgun's words); `h:Reply-To` becomes `replyTo`, other `h:` fields headers, `v:`
///   fields (and `h:X-Mailgun-Variables`) variables, `o:` options are ignored. Success 200 `{"id": "<…@domain>",
///   "message": "Queued. Thank you."}`, recording one `Sent` per recipient.
/// - Per provider, `setMode` makes it answer `.down` (503, Retry-After: 1), `.rateLimited` (429, Retry-After: 2),
///   `.reject` (400, after the checks pass) or `.unauthorized` (401 whatever the credentials); refused requests are
///   counted in `requests` but not recorded in `sent`.
/// - Webhook senders: `sendGridWebhook`/`sendGridEvent` build Event Webhook posts signed with ECDSA P-256 as SendGrid
///   does; `mailgunWebhook` builds a webhook post signed with HMAC-SHA256 as Mailgun does.
final class FakeEmailProviders: Sendable {
    static let sendGridKey = "SG.test-sendgrid-key"
    /// Mailgun takes it as the password of HTTP Basic auth, with the user `api`.
    static let mailgunKey = "key-test-mailgun"
    static let mailgunDomain = "mg.notify.test"
    static let mailgunSigningKey = "mailgun-webhook-signing-key-test"
    /// SendGrid signs its Event Webhook with ECDSA P-256; one key for the whole run.
    static let sendGridWebhookKey = P256.Signing.PrivateKey()
    /// The verification key as SendGrid shows it in its settings: base64 of the DER SubjectPublicKeyInfo.
    static var sendGridWebhookPublicKey: String { sendGridWebhookKey.publicKey.derRepresentation.base64EncodedString() }

    enum Mode: Sendable, Equatable {
        /// Checks the request and accepts it when valid.
        case ok
        /// 503 with Retry-After: 1.
        case down
        /// 429 with Retry-After: 2.
        case rateLimited
        /// 400 with the provider's error body (once the request passed the checks).
        case reject
        /// 401 whatever the credentials.
        case unauthorized
    }

    struct Sent: Sendable {
        /// "sendgrid" or "mailgun".
        var provider: String
        var to: String
        var toName: String?
        var from: String
        var fromName: String?
        var replyTo: String?
        var subject: String
        var text: String?
        var html: String?
        /// Custom headers: SendGrid's `headers` objects; Mailgun's `h:Name` fields (but Reply-To and X-Mailgun-Variables).
        var headers: [String: String]
        /// SendGrid's top-level `custom_args` overridden by the personalization's; Mailgun's `v:name` fields.
        var variables: [String: String]
        /// The id the fake answered: SendGrid's X-Message-Id, Mailgun's `id` (with its angle brackets).
        var messageID: String
    }

    let sent = NIOLockedValueBox<[Sent]>([])
    /// By provider name ("sendgrid", "mailgun"); absent means `.ok`.
    let modes = NIOLockedValueBox<[String: Mode]>([:])
    /// Every request received per provider, including refused ones.
    let requests = NIOLockedValueBox<[String: Int]>([:])
    let port = NIOLockedValueBox<Int>(0)

    var url: String { "http://127.0.0.1:\(port.withLockedValue { $0 })" }

    func setMode(_ provider: String, _ mode: Mode) {
        modes.withLockedValue { $0[provider] = mode }
    }

    func sent(to address: String) -> [Sent] {
        let wanted = address.lowercased()
        return self.sent.withLockedValue { $0.filter { $0.to.lowercased() == wanted } }
    }

    /// Counts a request to `provider` and tells the mode it is in.
    private func receive(_ provider: String) -> Mode {
        requests.withLockedValue { $0[provider, default: 0] += 1 }
        return modes.withLockedValue { $0[provider] ?? .ok }
    }

    // MARK: - Server

    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        router.post("/v3/mail/send") { request, _ -> Response in
            let mode = self.receive("sendgrid")
            if mode == .down { return Response(status: .serviceUnavailable, headers: [.retryAfter: "1"]) }
            guard mode != .unauthorized, Self.bearerToken(request.headers[.authorization]) == Self.sendGridKey else {
                return Self.sendGridError(
                    401,
                    Refusal(message: "The provided authorization grant is invalid, expired, or revoked", field: nil, help: nil)
                )
            }
            if mode == .rateLimited {
                let error: [String: Any] = ["field": NSNull(), "message": "too many requests"]
                return Self.json(429, ["errors": [error]], headers: [.retryAfter: "2"])
            }
            let contentType = request.headers[.contentType]?.lowercased() ?? ""
            guard contentType.hasPrefix("application/json") else {
                return Self.sendGridError(400, Refusal(message: "Content-Type should be application/json.", field: nil, help: nil))
            }
            let body = try await request.body.collect(upTo: 1 << 24)
            guard let mail = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any] else {
                return Self.sendGridError(400, Refusal(message: "Bad Request", field: nil, help: nil))
            }
            let messageID = Self.randomID(22)
            let messages: [Sent]
            do {
                messages = try Self.sendGridMessages(mail, messageID: messageID)
            } catch let refusal as Refusal {
                return Self.sendGridError(400, refusal)
            }
            if mode == .reject {
                return Self.sendGridError(
                    400,
                    .sendGrid("Does not contain a valid address.", field: "personalizations.0.to", anchor: "personalizations.to")
                )
            }
            self.sent.withLockedValue { $0.append(contentsOf: messages) }
            return Response(status: .accepted, headers: [HTTPField.Name("X-Message-Id")!: messageID])
        }
        router.post("/v3/:domain/messages") { request, context -> Response in
            let mode = self.receive("mailgun")
            if mode == .down { return Response(status: .serviceUnavailable, headers: [.retryAfter: "1"]) }
            let credentials = Self.basicCredentials(request.headers[.authorization])
            guard mode != .unauthorized, credentials?.user == "api", credentials?.password == Self.mailgunKey else {
                return Response(
                    status: .unauthorized,
                    headers: [.contentType: "text/plain; charset=utf-8", .wwwAuthenticate: "Basic realm=\"MG API\""],
                    body: .init(byteBuffer: ByteBuffer(string: "Forbidden"))
                )
            }
            let domain = context.parameters.get("domain") ?? ""
            guard domain == Self.mailgunDomain else { return Self.json(404, ["message": "Domain not found: \(domain)"]) }
            if mode == .rateLimited {
                return Self.json(429, ["message": "Too many requests, please retry later"], headers: [.retryAfter: "2"])
            }
            let body = try await request.body.collect(upTo: 1 << 24)
            let fields = Self.formFields(Data(body.readableBytesView), contentType: request.headers[.contentType] ?? "")
            let messageID = Self.mailgunMessageID()
            let messages: [Sent]
            do {
                messages = try Self.mailgunMessages(fields, messageID: messageID)
            } catch let refusal as Refusal {
                return Self.json(400, ["message": refusal.message])
            }
            if mode == .reject {
                return Self.json(400, ["message": "to parameter is not a valid address. please check documentation"])
            }
            self.sent.withLockedValue { $0.append(contentsOf: messages) }
            return Self.json(200, ["id": messageID, "message": "Queued. Thank you."])
        }
        let port = self.port
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port ?? 0 } }
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

    /// Why a provider refused a request; `field` and `help` are SendGrid's.
    private struct Refusal: Error {
        var message: String
        var field: String?
        var help: String?

        static func sendGrid(_ message: String, field: String?, anchor: String) -> Refusal {
            Refusal(
                message: message,
                field: field,
                help: "http://sendgrid.com/docs/API_Reference/Web_API_v3/Mail/errors.html#message.\(anchor)"
            )
        }
    }

    private static func sendGridError(_ status: Int, _ refusal: Refusal) -> Response {
        let error: [String: Any] = [
            "message": refusal.message,
            "field": refusal.field.map { $0 as Any } ?? NSNull(),
            "help": refusal.help.map { $0 as Any } ?? NSNull(),
        ]
        return json(status, ["errors": [error]])
    }

    // MARK: - SendGrid's checks

    /// Headers SendGrid sets itself and refuses in `headers`.
    private static let sendGridReservedHeaders: Set<String> = [
        "x-sg-id", "x-sg-eid", "received", "dkim-signature", "content-type", "content-transfer-encoding", "to", "from",
        "subject", "reply-to", "cc", "bcc",
    ]

    /// Checks a v3 mail send body as SendGrid does; one `Sent` per `to` recipient.
    private static func sendGridMessages(_ mail: [String: Any], messageID: String) throws -> [Sent] {
        guard let personalizations = mail["personalizations"] as? [Any], !personalizations.isEmpty else {
            throw Refusal.sendGrid(
                "The personalizations field is required and must have at least one personalization.",
                field: "personalizations",
                anchor: "personalizations"
            )
        }
        guard let from = mail["from"] as? [String: Any], let fromEmail = nonEmpty(from["email"]) else {
            throw Refusal.sendGrid(
                "The from object must be provided for every email send. It is an object that requires the email parameter, "
                    + "but may also contain a name parameter.",
                field: "from.email",
                anchor: "from"
            )
        }
        guard isAddress(fromEmail) else {
            throw Refusal.sendGrid("The from email does not contain a valid address.", field: "from.email", anchor: "from")
        }
        let fromName = nonEmpty(from["name"])
        let topSubject = nonEmpty(mail["subject"])
        let (text, html) = try sendGridContent(mail["content"])
        var replyTo: String?
        if let value = mail["reply_to"], !(value is NSNull) {
            guard let object = value as? [String: Any], let email = nonEmpty(object["email"]), isAddress(email) else {
                throw Refusal.sendGrid("The reply_to email does not contain a valid address.", field: "reply_to.email", anchor: "reply_to")
            }
            replyTo = email
        }
        let headers = try sendGridHeaders(mail["headers"], field: "headers")
        let customArgs = try sendGridStrings(mail["custom_args"], field: "custom_args")

        var messages: [Sent] = []
        for (index, item) in personalizations.enumerated() {
            let field = "personalizations.\(index)"
            guard let personalization = item as? [String: Any] else {
                throw Refusal.sendGrid("Invalid type. Expected: object.", field: field, anchor: "personalizations")
            }
            guard let to = personalization["to"] as? [Any], !to.isEmpty else {
                throw Refusal.sendGrid(
                    "The to array is required for all personalization objects, and must have at least one email object with a valid "
                        + "email address.",
                    field: "\(field).to",
                    anchor: "personalizations.to"
                )
            }
            var seen: Set<String> = []
            var recipients: [(email: String, name: String?)] = []
            for kind in ["to", "cc", "bcc"] {
                guard let value = personalization[kind], !(value is NSNull) else { continue }
                guard let list = value as? [Any] else {
                    throw Refusal.sendGrid("Invalid type. Expected: array.", field: "\(field).\(kind)", anchor: "personalizations.\(kind)")
                }
                for (position, entry) in list.enumerated() {
                    guard let object = entry as? [String: Any], let email = nonEmpty(object["email"]), isAddress(email) else {
                        throw Refusal.sendGrid(
                            "Does not contain a valid address.",
                            field: "\(field).\(kind).\(position).email",
                            anchor: "personalizations.\(kind)"
                        )
                    }
                    guard seen.insert(email.lowercased()).inserted else {
                        throw Refusal.sendGrid(
                            "Each email address in the personalization block should be unique between to, cc, and bcc. We found the "
                                + "first duplicate instance of [\(email)] in the \(field).\(kind) field.",
                            field: "\(field).\(kind)",
                            anchor: "personalizations"
                        )
                    }
                    if kind == "to" { recipients.append((email, nonEmpty(object["name"]))) }
                }
            }
            guard let subject = nonEmpty(personalization["subject"]) ?? topSubject else {
                throw Refusal.sendGrid(
                    "The subject is required. You can get around this requirement if you use a template with a subject defined or "
                        + "if every personalization has a subject defined.",
                    field: "subject",
                    anchor: "subject"
                )
            }
            let personalHeaders = try sendGridHeaders(personalization["headers"], field: "\(field).headers")
            let personalArgs = try sendGridStrings(personalization["custom_args"], field: "\(field).custom_args")
            for recipient in recipients {
                messages.append(
                    Sent(
                        provider: "sendgrid",
                        to: recipient.email,
                        toName: recipient.name,
                        from: fromEmail,
                        fromName: fromName,
                        replyTo: replyTo,
                        subject: subject,
                        text: text,
                        html: html,
                        headers: headers.merging(personalHeaders) { $1 },
                        variables: customArgs.merging(personalArgs) { $1 },
                        messageID: messageID
                    )
                )
            }
        }
        return messages
    }

    /// The `content` array: non-empty blocks of unique types, text/plain first and text/html next when present.
    private static func sendGridContent(_ value: Any?) throws -> (text: String?, html: String?) {
        guard let blocks = value as? [Any], !blocks.isEmpty else {
            throw Refusal.sendGrid(
                "Unless a valid template_id is provided, the content parameter is required. There must be at least one defined "
                    + "content block. We typically suggest both text/plain and text/html blocks are included, but only one block "
                    + "is required.",
                field: "content",
                anchor: "content"
            )
        }
        var text: String?
        var html: String?
        var seen: Set<String> = []
        for (index, item) in blocks.enumerated() {
            guard let block = item as? [String: Any], let type = nonEmpty(block["type"]) else {
                throw Refusal.sendGrid(
                    "The content type must be a string at least one character in length.",
                    field: "content.\(index).type",
                    anchor: "content.type"
                )
            }
            guard let value = nonEmpty(block["value"]) else {
                throw Refusal.sendGrid(
                    "The content value must be a string at least one character in length.",
                    field: "content.\(index).value",
                    anchor: "content.value"
                )
            }
            let kind = type.lowercased()
            guard seen.insert(kind).inserted else {
                throw Refusal.sendGrid("The content type must be unique.", field: "content.\(index).type", anchor: "content.type")
            }
            let misordered = Refusal.sendGrid(
                "If present, text/plain and text/html may only be provided in the order of text/plain first and then text/html.",
                field: "content",
                anchor: "content"
            )
            if kind == "text/plain" {
                guard index == 0 else { throw misordered }
                text = value
            } else if kind == "text/html" {
                guard index == (text == nil ? 0 : 1) else { throw misordered }
                html = value
            }
        }
        return (text, html)
    }

    /// A `headers` object: string values, no header SendGrid reserves.
    private static func sendGridHeaders(_ value: Any?, field: String) throws -> [String: String] {
        let headers = try sendGridStrings(value, field: field)
        if let reserved = headers.keys.sorted().first(where: { sendGridReservedHeaders.contains($0.lowercased()) }) {
            throw Refusal.sendGrid(
                "The header \(reserved) is reserved and cannot be set in the headers object.",
                field: field,
                anchor: "headers"
            )
        }
        return headers
    }

    /// An object whose values must all be strings (`headers`, `custom_args`); absent or null is empty.
    private static func sendGridStrings(_ value: Any?, field: String) throws -> [String: String] {
        guard let value, !(value is NSNull) else { return [:] }
        let anchor = field.hasSuffix("custom_args") ? "custom_args" : "headers"
        guard let object = value as? [String: Any] else {
            throw Refusal.sendGrid("Invalid type. Expected: object.", field: field, anchor: anchor)
        }
        var strings: [String: String] = [:]
        for (name, entry) in object {
            guard let string = entry as? String else {
                throw Refusal.sendGrid("Invalid type. Expected: string.", field: "\(field).\(name)", anchor: anchor)
            }
            strings[name] = string
        }
        return strings
    }

    // MARK: - Mailgun's checks

    /// Checks a Mailgun messages form as Mailgun does; one `Sent` per recipient.
    private static func mailgunMessages(_ fields: [(name: String, value: String)], messageID: String) throws -> [Sent] {
        func first(_ name: String) -> String? {
            fields.first { $0.name == name }.flatMap { $0.value.isEmpty ? nil : $0.value }
        }
        guard let fromField = first("from") else { throw Refusal(message: "'from' parameter is missing") }
        let toFields = fields.filter { $0.name == "to" }.flatMap { addressList($0.value) }
        guard !toFields.isEmpty else { throw Refusal(message: "'to' parameter is missing") }
        guard let subject = first("subject") else { throw Refusal(message: "'subject' parameter is missing") }
        let text = first("text")
        let html = first("html")
        guard text != nil || html != nil else { throw Refusal(message: "Need at least one of 'text' or 'html' parameters specified") }
        guard let from = mailbox(fromField) else {
            throw Refusal(message: "from parameter is not a valid address. please check documentation")
        }
        var recipients: [(name: String?, address: String)] = []
        for field in toFields {
            guard let recipient = mailbox(field) else {
                throw Refusal(message: "to parameter is not a valid address. please check documentation")
            }
            recipients.append(recipient)
        }
        var headers: [String: String] = [:]
        var variables: [String: String] = [:]
        var replyTo: String?
        for field in fields {
            if field.name.hasPrefix("h:") {
                let name = String(field.name.dropFirst(2))
                switch name.lowercased() {
                case "reply-to":
                    replyTo = mailbox(field.value)?.address ?? field.value
                case "x-mailgun-variables":
                    let object = (try? JSONSerialization.jsonObject(with: Data(field.value.utf8))) as? [String: Any] ?? [:]
                    for (key, value) in object { variables[key] = value as? String ?? "\(value)" }
                default:
                    headers[name] = field.value
                }
            } else if field.name.hasPrefix("v:") {
                variables[String(field.name.dropFirst(2))] = field.value
            }
        }
        return recipients.map { recipient in
            Sent(
                provider: "mailgun",
                to: recipient.address,
                toName: recipient.name,
                from: from.address,
                fromName: from.name,
                replyTo: replyTo,
                subject: subject,
                text: text,
                html: html,
                headers: headers,
                variables: variables,
                messageID: messageID
            )
        }
    }

    /// A Mailgun message id as its API answers it: `<yyyyMMddHHmmss.hex@domain>`.
    private static func mailgunMessageID() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMddHHmmss"
        return "<\(formatter.string(from: Date())).\(hex((0..<8).map { _ in UInt8.random(in: .min ... .max) }))@\(mailgunDomain)>"
    }

    // MARK: - Webhooks

    /// SendGrid Event Webhook: the body is a JSON array of event objects (followed by CRLF, as SendGrid sends it; post it
    /// with `Content-Type: application/json`); the headers are
    /// `X-Twilio-Email-Event-Webhook-Signature` = base64(DER ECDSA-P256-SHA256 signature over UTF8(timestamp) + body) and
    /// `X-Twilio-Email-Event-Webhook-Timestamp` = timestamp (unix seconds).
    static func sendGridWebhook(
        _ events: [[String: Any]],
        timestamp: Int = Int(Date().timeIntervalSince1970),
        key: P256.Signing.PrivateKey = FakeEmailProviders.sendGridWebhookKey
    ) -> (body: Data, headers: [String: String]) {
        let body = try! JSONSerialization.data(withJSONObject: events) + Data("\r\n".utf8)
        let stamp = String(timestamp)
        let signature = try! key.signature(for: Data(stamp.utf8) + body)
        return (
            body,
            [
                "X-Twilio-Email-Event-Webhook-Signature": signature.derRepresentation.base64EncodedString(),
                "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            ]
        )
    }

    /// A SendGrid event with its usual fields: email, timestamp, event ("delivered", "bounce", "dropped", "spamreport",
    /// "deferred", …), sg_event_id, sg_message_id (the X-Message-Id followed by SendGrid's filter suffix), smtp-id, the
    /// custom args copied at top level (as SendGrid does), and per event: bounce `type` ("bounce"; "blocked" via `extra`),
    /// `reason`, `status` "5.1.1"; dropped `reason`; deferred `response`, `attempt`; delivered `response`. `extra` wins.
    static func sendGridEvent(
        _ event: String,
        email: String,
        messageID: String,
        customArgs: [String: String],
        extra: [String: Any] = [:]
    ) -> [String: Any] {
        var object: [String: Any] = [:]
        for (name, value) in customArgs { object[name] = value }
        object["email"] = email
        object["timestamp"] = Int(Date().timeIntervalSince1970)
        object["event"] = event
        object["sg_event_id"] = randomID(22)
        object["sg_message_id"] = "\(messageID).filterdrecv-5645d9c87f-6r4hk-1-675143A0-2.0"
        object["smtp-id"] = "<\(messageID)@ismtpd0001p1las1.sendgrid.net>"
        switch event {
        case "bounce":
            object["type"] = "bounce"
            object["reason"] = "550 5.1.1 The email account that you tried to reach does not exist."
            object["status"] = "5.1.1"
            object["bounce_classification"] = "Invalid Address"
        case "dropped":
            object["reason"] = "Bounced Address"
        case "deferred":
            object["response"] = "451 4.3.0 Try again later"
            object["attempt"] = "1"
        case "delivered":
            object["response"] = "250 2.0.0 OK"
        default:
            break
        }
        for (name, value) in extra { object[name] = value }
        return object
    }

    /// Mailgun webhook body (JSON): `signature` {timestamp, token (50 hex), signature = hex(HMAC-SHA256(key: signing
    /// key, data: timestamp + token))} and `event-data` {event, severity (failed only; "permanent" unless given), reason,
    /// recipient, timestamp, id, log-level, message.headers.message-id (without angle brackets), user-variables,
    /// delivery-status {code, message} for delivered and failed}.
    static func mailgunWebhook(
        event: String,
        severity: String? = nil,
        recipient: String,
        messageID: String,
        variables: [String: String],
        signingKey: String = FakeEmailProviders.mailgunSigningKey,
        timestamp: Int = Int(Date().timeIntervalSince1970)
    ) -> Data {
        let token = hex((0..<25).map { _ in UInt8.random(in: .min ... .max) })
        let stamp = String(timestamp)
        let mac = HMAC<SHA256>.authenticationCode(for: Data((stamp + token).utf8), using: SymmetricKey(data: Data(signingKey.utf8)))
        var messageHeaderID = messageID.trimmingCharacters(in: .whitespaces)
        if messageHeaderID.hasPrefix("<"), messageHeaderID.hasSuffix(">") {
            messageHeaderID = String(messageHeaderID.dropFirst().dropLast())
        }
        var eventData: [String: Any] = [
            "event": event,
            "recipient": recipient,
            "timestamp": Double(timestamp),
            "id": randomID(22),
            "message": ["headers": ["message-id": messageHeaderID, "to": recipient]],
            "user-variables": variables,
        ]
        switch event {
        case "delivered":
            eventData["log-level"] = "info"
            let status: [String: Any] = ["code": 250, "message": "OK", "attempt-no": 1]
            eventData["delivery-status"] = status
        case "failed":
            let level = severity ?? "permanent"
            eventData["severity"] = level
            if level == "permanent" {
                eventData["log-level"] = "error"
                eventData["reason"] = "bounce"
                let status: [String: Any] = [
                    "code": 550, "message": "5.1.1 The email account that you tried to reach does not exist.", "attempt-no": 1,
                ]
                eventData["delivery-status"] = status
            } else {
                eventData["log-level"] = "warn"
                eventData["reason"] = "generic"
                let status: [String: Any] = [
                    "code": 452, "message": "4.2.2 The email account that you tried to reach is over quota.", "attempt-no": 1,
                ]
                eventData["delivery-status"] = status
            }
        default:
            eventData["log-level"] = event == "complained" ? "warn" : "info"
            if let severity { eventData["severity"] = severity }
        }
        let body: [String: Any] = [
            "signature": ["timestamp": stamp, "token": token, "signature": hex(mac)],
            "event-data": eventData,
        ]
        return try! JSONSerialization.data(withJSONObject: body, options: [.withoutEscapingSlashes])
    }

    // MARK: - Parsing helpers

    /// The token of `Authorization: Bearer <token>`.
    private static func bearerToken(_ header: String?) -> String? {
        guard let parts = header?.split(separator: " ", maxSplits: 1), parts.count == 2, parts[0].lowercased() == "bearer" else {
            return nil
        }
        return parts[1].trimmingCharacters(in: .whitespaces)
    }

    /// The user and password of `Authorization: Basic base64(user:password)`.
    private static func basicCredentials(_ header: String?) -> (user: String, password: String)? {
        guard let parts = header?.split(separator: " ", maxSplits: 1), parts.count == 2, parts[0].lowercased() == "basic",
            let data = Data(base64Encoded: parts[1].trimmingCharacters(in: .whitespaces))
        else { return nil }
        let decoded = String(decoding: data, as: UTF8.self)
        guard let colon = decoded.firstIndex(of: ":") else { return nil }
        return (String(decoded[..<colon]), String(decoded[decoded.index(after: colon)...]))
    }

    /// The fields of an `application/x-www-form-urlencoded` or `multipart/form-data` body, in order (files skipped).
    private static func formFields(_ body: Data, contentType: String) -> [(name: String, value: String)] {
        let mediaType = contentType.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased() ?? ""
        switch mediaType {
        case "application/x-www-form-urlencoded":
            return urlEncodedFields(String(decoding: body, as: UTF8.self))
        case "multipart/form-data":
            guard let boundary = headerParameters(contentType)["boundary"], !boundary.isEmpty else { return [] }
            return multipartFields(body, boundary: boundary)
        default:
            return []
        }
    }

    private static func urlEncodedFields(_ body: String) -> [(name: String, value: String)] {
        func decode(_ part: Substring) -> String {
            let spaced = part.replacingOccurrences(of: "+", with: " ")
            return spaced.removingPercentEncoding ?? spaced
        }
        return body.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "&").map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            return (name: decode(parts[0]), value: parts.count > 1 ? decode(parts[1]) : "")
        }
    }

    /// The parts of a multipart body, each `Content-Disposition: form-data; name="…"`; parts with a filename are skipped.
    private static func multipartFields(_ body: Data, boundary: String) -> [(name: String, value: String)] {
        let data = Data("\r\n".utf8) + body
        let delimiter = Data("\n--\(boundary)".utf8)
        var fields: [(name: String, value: String)] = []
        guard var found = data.range(of: delimiter, in: data.startIndex..<data.endIndex) else { return [] }
        while true {
            let afterDelimiter = found.upperBound
            if data[afterDelimiter...].starts(with: "--".utf8) { break }
            guard let lineEnd = data[afterDelimiter...].firstIndex(of: UInt8(ascii: "\n")) else { break }
            let partStart = lineEnd + 1
            guard let next = data.range(of: delimiter, in: partStart..<data.endIndex) else { break }
            var partEnd = next.lowerBound
            if partEnd > partStart, data[partEnd - 1] == UInt8(ascii: "\r") { partEnd -= 1 }
            if let field = multipartField(Data(data[partStart..<partEnd])) { fields.append(field) }
            found = next
        }
        return fields
    }

    private static func multipartField(_ part: Data) -> (name: String, value: String)? {
        guard let separator = part.range(of: Data("\r\n\r\n".utf8)) ?? part.range(of: Data("\n\n".utf8)) else { return nil }
        let head = String(decoding: part[part.startIndex..<separator.lowerBound], as: UTF8.self)
        let value = String(decoding: part[separator.upperBound...], as: UTF8.self)
        for line in head.split(whereSeparator: \.isNewline) {
            guard let colon = line.firstIndex(of: ":"), line[..<colon].lowercased() == "content-disposition" else { continue }
            let parameters = headerParameters(String(line[line.index(after: colon)...]))
            guard parameters["filename"] == nil, let name = parameters["name"] else { return nil }
            return (name, value)
        }
        return nil
    }

    /// The `name=value` parameters after the first `;` of a header value, names lowercased, quoted values unescaped.
    private static func headerParameters(_ value: String) -> [String: String] {
        guard let semicolon = value.firstIndex(of: ";") else { return [:] }
        var rest = value[value.index(after: semicolon)...]
        var parameters: [String: String] = [:]
        while true {
            rest = rest.drop { $0 == " " || $0 == "\t" || $0 == ";" }
            guard let equals = rest.firstIndex(of: "=") else { break }
            let name = rest[..<equals].trimmingCharacters(in: .whitespaces).lowercased()
            rest = rest[rest.index(after: equals)...].drop { $0 == " " || $0 == "\t" }
            var parameter = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                var escaped = false
                while let character = rest.first {
                    rest = rest.dropFirst()
                    if escaped {
                        parameter.append(character)
                        escaped = false
                    } else if character == "\\" {
                        escaped = true
                    } else if character == "\"" {
                        break
                    } else {
                        parameter.append(character)
                    }
                }
            } else {
                let end = rest.firstIndex(of: ";") ?? rest.endIndex
                parameter = rest[..<end].trimmingCharacters(in: .whitespaces)
                rest = rest[end...]
            }
            parameters[name] = parameter
        }
        return parameters
    }

    /// Splits an address list on the commas outside quotes and angle brackets.
    private static func addressList(_ value: String) -> [String] {
        var addresses: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        var bracketed = false
        for character in value {
            if escaped {
                escaped = false
            } else if quoted, character == "\\" {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if !quoted, character == "<" {
                bracketed = true
            } else if !quoted, character == ">" {
                bracketed = false
            } else if !quoted, !bracketed, character == "," {
                addresses.append(current)
                current = ""
                continue
            }
            current.append(character)
        }
        addresses.append(current)
        return addresses.map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// An RFC 5322 mailbox: `"Name" <a@b>`, `Name <a@b>`, `<a@b>` or `a@b`; the name unquoted and RFC 2047 decoded.
    private static func mailbox(_ value: String) -> (name: String?, address: String)? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        guard let open = trimmed.lastIndex(of: "<"), trimmed.hasSuffix(">") else {
            return isAddress(trimmed) ? (nil, trimmed) : nil
        }
        let address = trimmed[trimmed.index(after: open)..<trimmed.index(before: trimmed.endIndex)].trimmingCharacters(in: .whitespaces)
        guard isAddress(address) else { return nil }
        var name = trimmed[..<open].trimmingCharacters(in: .whitespaces)
        if name.count >= 2, name.hasPrefix("\""), name.hasSuffix("\"") {
            var unquoted = ""
            var escaped = false
            for character in name.dropFirst().dropLast() {
                if !escaped, character == "\\" {
                    escaped = true
                } else {
                    unquoted.append(character)
                    escaped = false
                }
            }
            name = unquoted
        }
        name = decodeEncodedWords(name)
        return (name.isEmpty ? nil : name, address)
    }

    /// Decodes RFC 2047 UTF-8 encoded words (`=?UTF-8?B?…?=`, `=?UTF-8?Q?…?=`) in a display name.
    private static func decodeEncodedWords(_ value: String) -> String {
        guard value.contains("=?") else { return value }
        var decoded = ""
        var previousWasEncoded = false
        for word in value.split(separator: " ") {
            let parts = word.split(separator: "?", omittingEmptySubsequences: false)
            var text: String?
            if parts.count == 5, parts[0] == "=", parts[4] == "=", parts[1].lowercased() == "utf-8" {
                switch parts[2].lowercased() {
                case "b": text = Data(base64Encoded: String(parts[3])).map { String(decoding: $0, as: UTF8.self) }
                case "q": text = decodeQ(parts[3])
                default: text = nil
                }
            }
            if let text {
                decoded += (previousWasEncoded || decoded.isEmpty ? "" : " ") + text
                previousWasEncoded = true
            } else {
                decoded += (decoded.isEmpty ? "" : " ") + String(word)
                previousWasEncoded = false
            }
        }
        return decoded
    }

    /// RFC 2047 "Q" encoding: `_` is a space, `=XX` a byte.
    private static func decodeQ(_ text: Substring) -> String? {
        let input = Array(text.utf8)
        var bytes: [UInt8] = []
        var index = 0
        while index < input.count {
            switch input[index] {
            case UInt8(ascii: "_"):
                bytes.append(UInt8(ascii: " "))
                index += 1
            case UInt8(ascii: "="):
                guard index + 2 < input.count, let byte = UInt8(String(decoding: input[index + 1...index + 2], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(byte)
                index += 3
            default:
                bytes.append(input[index])
                index += 1
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// An addr-spec as both providers accept it: one `@`, non-empty local part and domain, no spaces or delimiters.
    private static func isAddress(_ value: String) -> Bool {
        let parts = value.split(separator: "@", omittingEmptySubsequences: false)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return false }
        let domain = parts[1]
        guard !domain.hasPrefix("."), !domain.hasSuffix("."), !domain.contains("..") else { return false }
        return !value.contains { $0.isWhitespace || "<>,;:\"()[]\\".contains($0) }
    }

    /// A string value, nil when absent, not a string, or empty.
    private static func nonEmpty(_ value: Any?) -> String? {
        guard let string = value as? String, !string.isEmpty else { return nil }
        return string
    }

    /// Random base64url characters, the shape of SendGrid's ids.
    private static func randomID(_ length: Int) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        return String((0..<length).map { _ in alphabet.randomElement()! })
    }

    private static func hex<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0x0f)]] })
    }
}
