import EmailEvents
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import NotifyHTTP
import PostgresAccess
import PostgresNIO
import Telemetry

/// Inbound event webhooks of the email providers: `POST /api/v1/webhooks/email/sendgrid` (Event Webhook, ECDSA
/// signature) and `POST /api/v1/webhooks/email/mailgun` (HMAC signature). The signature is the credential: a request
/// that does not verify is 401 and changes nothing. Each event is applied once (providers deliver at least once):
/// delivered, bounced (hard or soft) and complained enter the notification's history; hard bounces and complaints put
/// the address on the suppression list.
struct EmailWebhookController: Sendable {
    let sendGrid: SendGridWebhook?
    let mailgun: MailgunWebhook?
    let recorder: EmailEventRecorder

    struct Received: Encodable, Sendable {
        var received: Int
        var applied: Int
        var duplicates: Int
        var unknownNotifications: Int
        var ignored: Int
    }

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/webhooks/email/sendgrid", use: sendGridEvents)
        router.post("/api/v1/webhooks/email/mailgun", use: mailgunEvent)
    }

    static let forged = APIError(.unauthorized, code: .unauthorized, message: "The webhook signature did not verify")

    static func notConfigured(_ provider: String) -> APIError {
        APIError(.notFound, code: .webhookNotConfigured, message: "No \(provider) webhook key is configured on this gateway")
    }

    @Sendable func sendGridEvents(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let sendGrid else { throw Self.notConfigured("SendGrid") }
        let body = Data(buffer: try await request.body.collect(upTo: 4 << 20))
        do {
            try sendGrid.verify(
                body: body,
                signature: request.headers[HTTPField.Name(SendGridWebhook.signatureHeader)!],
                timestamp: request.headers[HTTPField.Name(SendGridWebhook.timestampHeader)!]
            )
        } catch {
            context.logger.warning("webhook refused", metadata: ["provider": "sendgrid", "reason": .string(String(describing: error))])
            throw Self.forged
        }
        let parsed: (events: [EmailEvent], ignored: Int)
        do { parsed = try SendGridWebhook.events(from: body) } catch { throw APIError.validation([], message: String(describing: error)) }
        return try await apply(parsed.events, ignored: parsed.ignored, provider: "sendgrid")
    }

    @Sendable func mailgunEvent(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let mailgun else { throw Self.notConfigured("Mailgun") }
        let body = Data(buffer: try await request.body.collect(upTo: 1 << 20))
        let event: EmailEvent?
        do {
            event = try mailgun.event(from: body)
        } catch let error as WebhookRejected {
            context.logger.warning("webhook refused", metadata: ["provider": "mailgun", "reason": .string(error.reason)])
            throw Self.forged
        } catch {
            throw APIError.validation([], message: String(describing: error))
        }
        return try await apply(event.map { [$0] } ?? [], ignored: event == nil ? 1 : 0, provider: "mailgun")
    }

    func apply(_ events: [EmailEvent], ignored: Int, provider: String) async throws -> Response {
        var result = Received(received: events.count + ignored, applied: 0, duplicates: 0, unknownNotifications: 0, ignored: ignored)
        for event in events {
            switch try await recorder.apply(event) {
            case .applied: result.applied += 1
            case .duplicate: result.duplicates += 1
            case .unknownNotification: result.unknownNotifications += 1
            }
            Telemetry.emailEvent(provider: provider, kind: event.kindName)
        }
        return .envelope(.ok, data: result, message: "Events received")
    }
}

extension EmailEvent {
    var kindName: String {
        switch kind {
        case .delivered: return "delivered"
        case .bounced(let hard): return hard ? "hard_bounce" : "soft_bounce"
        case .complained: return "complained"
        }
    }
}

/// Applies provider events to `notifications` (status and history) and `suppressions`, each event once.
struct EmailEventRecorder: Sendable {
    enum Outcome: Sendable { case applied, duplicate, unknownNotification }

    let client: Database
    let logger: Logger

    func apply(_ event: EmailEvent) async throws -> Outcome {
        let kind = event.kindName
        let (status, from): (String, [String])
        switch event.kind {
        case .delivered: (status, from) = ("delivered", ["processing", "sent"])
        case .bounced: (status, from) = ("bounced", ["processing", "sent", "delivered"])
        case .complained: (status, from) = ("complained", ["processing", "sent", "delivered", "bounced"])
        }
        let suppress: String?
        switch event.kind {
        case .bounced(hard: true): suppress = "hard_bounce"
        case .complained: suppress = "complaint"
        default: suppress = nil
        }
        return try await client.withTransaction(logger: logger) { [logger] connection in
            let fresh = try await connection.query(
                """
                INSERT INTO email_events (provider, event_id, notification_id, event)
                VALUES (\(event.provider), \(event.eventID), \(event.notificationID), \(kind))
                ON CONFLICT DO NOTHING RETURNING 1
                """,
                logger: logger
            ).decode(Int.self).reduce(0) { $0 + $1 }
            guard fresh > 0 else { return .duplicate }
            if let suppress {
                // The address is bad for everyone, whether or not the notification is still on record.
                _ = try await connection.query(
                    """
                    INSERT INTO suppressions (address, reason, provider, notification_id, detail)
                    VALUES (lower(btrim(\(event.recipient))), \(suppress), \(event.provider), \(event.notificationID), \(event.statusCode))
                    ON CONFLICT (address) DO NOTHING
                    """,
                    logger: logger
                )
            }
            guard let id = event.notificationID else { return .unknownNotification }
            let known = try await connection.query(
                "SELECT 1 FROM notifications WHERE id = \(id) AND channel = 'email'",
                logger: logger
            ).decode(Int.self).reduce(0) { $0 + $1 }
            guard known > 0 else { return .unknownNotification }
            _ = try await connection.query("SELECT set_config('notify.cause', \(event.cause), true)", logger: logger)
            _ = try await connection.query(
                """
                UPDATE notifications
                SET status = \(status), updated_at = now(),
                    delivered_at = CASE WHEN \(status) = 'delivered' THEN coalesce(delivered_at, now()) ELSE delivered_at END
                WHERE id = \(id) AND status = ANY (\(from))
                """,
                logger: logger
            )
            return .applied
        }
    }
}
