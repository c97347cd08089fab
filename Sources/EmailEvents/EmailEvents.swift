import Crypto
import Foundation
import NotificationModel

/// What an email provider's event webhook reported about one message, in the platform's terms.
public struct EmailEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case delivered
        /// A hard bounce (the address does not exist or refuses for good) suppresses the address; a soft one does not.
        case bounced(hard: Bool)
        /// The recipient marked the message as spam: the address is suppressed.
        case complained
    }

    public var provider: String
    /// The provider's id of the event (deduplication: providers deliver webhooks at least once).
    public var eventID: String
    public var kind: Kind
    /// From the tracking values the message carried (`custom_args` / `v:` user variables).
    public var notificationID: UUID?
    public var recipient: String
    /// An RFC 3463 enhanced status code (`5.1.1`) when the provider gave one; nothing else of its text is kept.
    public var statusCode: String?

    public init(provider: String, eventID: String, kind: Kind, notificationID: UUID?, recipient: String, statusCode: String?) {
        self.provider = provider
        self.eventID = eventID
        self.kind = kind
        self.notificationID = notificationID
        self.recipient = recipient
        self.statusCode = statusCode
    }

    /// The history's cause: what happened and who said so, never the provider's own words.
    public var cause: String {
        let code = statusCode.map { " (\($0))" } ?? ""
        switch kind {
        case .delivered: return "delivered, reported by \(provider)"
        case .bounced(let hard): return "\(hard ? "hard" : "soft") bounce reported by \(provider)\(code)"
        case .complained: return "spam complaint reported by \(provider)"
        }
    }

    /// Only a well-formed enhanced status code (`class.subject.detail`) is kept.
    static func enhancedStatus(_ text: String?) -> String? {
        guard let text else { return nil }
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, ["2", "4", "5"].contains(parts[0]),
            parts.dropFirst().allSatisfy({ !$0.isEmpty && $0.count <= 3 && $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
        else { return nil }
        return trimmed
    }
}

/// A webhook request that is not the provider's: a missing, malformed or wrong signature, or one too old.
public struct WebhookRejected: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}

/// A signed request that could not be read as the provider's format.
public struct WebhookMalformed: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public var description: String { reason }
}

/// SendGrid's Event Webhook with signature verification: ECDSA P-256 / SHA-256 over the timestamp header followed by
/// the raw body, checked with the verification key from SendGrid's settings (base64 DER), headers
/// `X-Twilio-Email-Event-Webhook-Signature` and `X-Twilio-Email-Event-Webhook-Timestamp`. The body is a JSON array of
/// events; each carries the message's custom args at its top level.
public struct SendGridWebhook: Sendable {
    public static let signatureHeader = "X-Twilio-Email-Event-Webhook-Signature"
    public static let timestampHeader = "X-Twilio-Email-Event-Webhook-Timestamp"
    let key: P256.Signing.PublicKey
    let maxAge: Int

    public init(publicKeyBase64 key: String, maxAgeSeconds: Int = 3600) throws {
        guard let der = Data(base64Encoded: key.trimmingCharacters(in: .whitespacesAndNewlines)),
            let parsed = try? P256.Signing.PublicKey(derRepresentation: der)
        else { throw WebhookMalformed(reason: "the SendGrid verification key is not a base64 DER P-256 public key") }
        self.key = parsed
        self.maxAge = maxAgeSeconds
    }

    public func verify(body: Data, signature: String?, timestamp: String?, now: Date = Date()) throws {
        guard let signature, let timestamp, let seconds = Int(timestamp) else {
            throw WebhookRejected(reason: "missing signature or timestamp")
        }
        guard abs(Int(now.timeIntervalSince1970) - seconds) <= maxAge else { throw WebhookRejected(reason: "timestamp outside the accepted window") }
        guard let der = Data(base64Encoded: signature), let parsed = try? P256.Signing.ECDSASignature(derRepresentation: der),
            key.isValidSignature(parsed, for: Data(timestamp.utf8) + body)
        else { throw WebhookRejected(reason: "bad signature") }
    }

    /// The events that matter (delivered, bounce, dropped, spamreport); others (processed, deferred, open, click…)
    /// are counted as ignored.
    public static func events(from body: Data) throws -> (events: [EmailEvent], ignored: Int) {
        guard let array = (try? JSONSerialization.jsonObject(with: body)) as? [[String: Any]] else {
            throw WebhookMalformed(reason: "the body must be a JSON array of event objects")
        }
        var events: [EmailEvent] = []
        var ignored = 0
        for object in array {
            guard let name = object["event"] as? String, let eventID = object["sg_event_id"] as? String, let email = object["email"] as? String
            else {
                ignored += 1
                continue
            }
            let kind: EmailEvent.Kind
            switch name {
            case "delivered": kind = .delivered
            // "blocked" is a refusal of this message (content, reputation), not of the address.
            case "bounce": kind = .bounced(hard: (object["type"] as? String) != "blocked")
            // SendGrid refused to send: the address is on its own bounce, spam or invalid list.
            case "dropped": kind = .bounced(hard: true)
            case "spamreport": kind = .complained
            default:
                ignored += 1
                continue
            }
            events.append(
                EmailEvent(
                    provider: "sendgrid",
                    eventID: eventID,
                    kind: kind,
                    notificationID: (object["notification_id"] as? String).flatMap(UUID.init(text:)),
                    recipient: email,
                    statusCode: EmailEvent.enhancedStatus(object["status"] as? String)
                )
            )
        }
        return (events, ignored)
    }
}

/// Mailgun's webhooks (JSON): `{"signature": {"timestamp", "token", "signature"}, "event-data": {...}}`, the signature
/// being hex HMAC-SHA256 of timestamp + token under the webhook signing key.
public struct MailgunWebhook: Sendable {
    let signingKey: SymmetricKey
    let maxAge: Int

    public init(signingKey: String, maxAgeSeconds: Int = 3600) {
        self.signingKey = SymmetricKey(data: Data(signingKey.utf8))
        self.maxAge = maxAgeSeconds
    }

    /// Verifies the signature and reads the event (nil: a kind of event the platform does not track).
    public func event(from body: Data, now: Date = Date()) throws -> EmailEvent? {
        let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any]
        guard let signature = object?["signature"] as? [String: Any], let timestamp = signature["timestamp"] as? String,
            let token = signature["token"] as? String, let given = signature["signature"] as? String, let seconds = Int(timestamp)
        else { throw WebhookRejected(reason: "missing signature") }
        guard abs(Int(now.timeIntervalSince1970) - seconds) <= maxAge else { throw WebhookRejected(reason: "timestamp outside the accepted window") }
        guard let givenBytes = Self.hexBytes(given), givenBytes.count == SHA256.byteCount,
            HMAC<SHA256>.isValidAuthenticationCode(givenBytes, authenticating: Data((timestamp + token).utf8), using: signingKey)
        else { throw WebhookRejected(reason: "bad signature") }
        guard let data = object?["event-data"] as? [String: Any], let name = data["event"] as? String else {
            throw WebhookMalformed(reason: "event-data.event is missing")
        }
        let kind: EmailEvent.Kind
        switch name {
        case "delivered": kind = .delivered
        case "failed": kind = .bounced(hard: (data["severity"] as? String) == "permanent")
        case "complained": kind = .complained
        default: return nil
        }
        guard let eventID = data["id"] as? String, let recipient = data["recipient"] as? String else {
            throw WebhookMalformed(reason: "event-data.id and event-data.recipient are required")
        }
        let variables = data["user-variables"] as? [String: Any]
        let status = data["delivery-status"] as? [String: Any]
        return EmailEvent(
            provider: "mailgun",
            eventID: eventID,
            kind: kind,
            notificationID: (variables?["notification_id"] as? String).flatMap(UUID.init(text:)),
            recipient: recipient,
            statusCode: EmailEvent.enhancedStatus(status?["enhanced-code"] as? String)
        )
    }

    static func hexBytes(_ text: String) -> [UInt8]? {
        let scalars = Array(text.lowercased().utf8)
        guard scalars.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(scalars.count / 2)
        var index = 0
        while index < scalars.count {
            guard let high = Self.nibble(scalars[index]), let low = Self.nibble(scalars[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }

    static func nibble(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return byte - UInt8(ascii: "a") + 10
        default: return nil
        }
    }
}
