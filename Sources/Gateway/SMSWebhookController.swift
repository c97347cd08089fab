import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import NotificationModel
import NotifyHTTP
import PostgresAccess
import PostgresNIO
import SMSProviders
import Telemetry

/// Twilio's webhooks for SMS, signed with `X-Twilio-Signature` (HMAC-SHA1 of the public URL and the form fields, keyed
/// with the account's auth token). The signature is the credential: a request that does not verify is 401 and changes
/// nothing.
/// - `POST /api/v1/webhooks/sms/twilio/status?notification_id=…`: message status callbacks. `delivered` makes the
///   notification `delivered`; `undelivered` and `failed` make it `undelivered` with the carrier's error code in its
///   history. Each (message, status) is applied once.
/// - `POST /api/v1/webhooks/sms/twilio/inbound`: replies to the platform's number. STOP (and Twilio's other opt-out
///   words) puts the sender's number on the suppression list; START (or UNSTOP) takes an opt-out off it.
struct SMSWebhookController: Sendable {
    struct Twilio: Sendable {
        let authToken: String
        /// The gateway's public base URL as Twilio calls it (`NOTIFY_PUBLIC_GATEWAY_URL`): part of what is signed.
        let publicBaseURL: String
    }

    let twilio: Twilio?
    let client: Database
    let logger: Logger

    static let optOutWords: Set<String> = ["STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"]
    static let optInWords: Set<String> = ["START", "UNSTOP", "YES"]

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/webhooks/sms/twilio/status", use: status)
        router.post("/api/v1/webhooks/sms/twilio/inbound", use: inbound)
    }

    /// The form fields of a request whose signature verifies.
    func verified(_ request: Request, context: NotifyRequestContext) async throws -> [String: String] {
        guard let twilio else {
            throw APIError(.notFound, code: .webhookNotConfigured, message: "No Twilio auth token is configured on this gateway")
        }
        let body = String(decoding: Data(buffer: try await request.body.collect(upTo: 64 << 10)), as: UTF8.self)
        let parameters = FormEncoding.decode(body)
        let url = twilio.publicBaseURL + request.uri.description
        guard let signature = request.headers[HTTPField.Name("X-Twilio-Signature")!],
            TwilioSignature.verify(signature: signature, url: url, parameters: parameters, authToken: twilio.authToken)
        else {
            context.logger.warning("webhook refused", metadata: ["provider": "twilio", "reason": "signature did not verify"])
            throw EmailWebhookController.forged
        }
        var fields: [String: String] = [:]
        for (name, value) in parameters { fields[name] = value }
        return fields
    }

    struct Received: Encodable, Sendable {
        var applied: Bool
        var duplicate: Bool
    }

    @Sendable func status(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let fields = try await verified(request, context: context)
        guard let sid = fields["MessageSid"] ?? fields["SmsSid"], !sid.isEmpty, sid.count <= 64, let status = fields["MessageStatus"]?.lowercased(),
            status.count <= 32
        else {
            throw APIError.validation([FieldError(field: "MessageSid", message: "MessageSid and MessageStatus are required")])
        }
        let notificationID = request.uri.queryParameters.get("notification_id").flatMap(UUID.init(text:))
        // Only a numeric carrier or Twilio error code is kept.
        let errorCode = fields["ErrorCode"].flatMap { code in code.count <= 10 && code.allSatisfy(\.isNumber) && !code.isEmpty ? code : nil }
        let outcome = try await client.withTransaction(logger: logger) { [logger] connection -> Received in
            let fresh = try await connection.query(
                """
                INSERT INTO sms_events (provider, provider_message_id, status, notification_id, carrier_error_code)
                VALUES ('twilio', \(sid), \(status), \(notificationID), \(errorCode))
                ON CONFLICT DO NOTHING RETURNING 1
                """,
                logger: logger
            ).decode(Int.self).reduce(0) { $0 + $1 }
            guard fresh > 0 else { return Received(applied: false, duplicate: true) }
            // 21610: the recipient had replied STOP; the number is suppressed whatever became of the notification.
            if errorCode == "21610", let to = fields["To"].flatMap(PhoneNumber.normalize) {
                _ = try await connection.query(
                    """
                    INSERT INTO suppressions (address, reason, provider, notification_id, detail)
                    VALUES (\(to), 'opt_out', 'twilio', \(notificationID), 'error 21610')
                    ON CONFLICT (address) DO NOTHING
                    """,
                    logger: logger
                )
            }
            let change: (to: String, from: [String], cause: String, error: String?)
            switch status {
            case "delivered": change = ("delivered", ["processing", "sent"], "delivered, reported by twilio", nil)
            case "undelivered", "failed":
                let code = errorCode.map { " (carrier error \($0))" } ?? ""
                change = (
                    "undelivered", ["processing", "sent"], "\(status), reported by twilio\(code)",
                    "\(status): carrier error \(errorCode ?? "unknown")"
                )
            default: return Received(applied: false, duplicate: false)  // queued, sending, sent: nothing new to the client
            }
            guard let notificationID else { return Received(applied: false, duplicate: false) }
            _ = try await connection.query("SELECT set_config('notify.cause', \(change.cause), true)", logger: logger)
            let updated = try await connection.query(
                """
                UPDATE notifications
                SET status = \(change.to), updated_at = now(), last_error = COALESCE(\(change.error), last_error),
                    delivered_at = CASE WHEN \(change.to) = 'delivered' THEN coalesce(delivered_at, now()) ELSE delivered_at END
                WHERE id = \(notificationID) AND channel = 'sms' AND status = ANY (\(change.from))
                RETURNING 1
                """,
                logger: logger
            ).decode(Int.self).reduce(0) { $0 + $1 }
            return Received(applied: updated > 0, duplicate: false)
        }
        if outcome.applied { Telemetry.smsEvent(provider: "twilio", status: status) }
        return .envelope(.ok, data: outcome, message: "Status received")
    }

    @Sendable func inbound(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let fields = try await verified(request, context: context)
        guard let from = fields["From"].flatMap(PhoneNumber.normalize) else {
            throw APIError.validation([FieldError(field: "From", message: PhoneNumber.problem)])
        }
        let word = (fields["Body"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines).uppercased()
        if Self.optOutWords.contains(word) {
            _ = try await client.query(
                """
                INSERT INTO suppressions (address, reason, provider, detail) VALUES (\(from), 'opt_out', 'twilio', \(word))
                ON CONFLICT (address) DO NOTHING
                """,
                logger: logger
            )
            Telemetry.smsEvent(provider: "twilio", status: "opt_out")
            context.logger.info("sms opt-out", metadata: ["provider": "twilio"])
        } else if Self.optInWords.contains(word) {
            _ = try await client.query("DELETE FROM suppressions WHERE address = \(from) AND reason = 'opt_out'", logger: logger)
            Telemetry.smsEvent(provider: "twilio", status: "opt_in")
        }
        // Twilio wants TwiML back; an empty response sends no reply (Twilio answers STOP itself).
        return Response(
            status: .ok,
            headers: [.contentType: "text/xml"],
            body: .init(byteBuffer: ByteBuffer(string: #"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#))
        )
    }
}
