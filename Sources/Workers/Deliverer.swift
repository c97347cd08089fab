import Breakers
import Directory
import Foundation
import JobQueue
import Logging
import NotificationModel
import PostgresAccess
import PostgresNIO
import PushTransport
import Rendering
import SMTPTransport
import Telemetry

/// Turns one claimed job into a message on one channel. Two implementations: email (SMTP) and push (FCM).
public protocol Deliverer: Sendable {
    var channel: NotificationChannel { get }
    func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws
}

public struct EmailDeliverer: Deliverer {
    public let channel = NotificationChannel.email
    let smtp: SMTPTransport
    let breaker: CircuitBreaker
    let from: String
    let fromName: String
    let messageIDDomain: String

    public init(smtp: SMTPTransport, breaker: CircuitBreaker, from: String, fromName: String, messageIDDomain: String) {
        self.smtp = smtp
        self.breaker = breaker
        self.from = from
        self.fromName = fromName
        self.messageIDDomain = messageIDDomain
    }

    public func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws {
        let subject = try TemplateRenderer.render(template.subject ?? "", variables: job.variables, as: .text)
        let text = try TemplateRenderer.render(template.body, variables: job.variables, as: .text)
        let html = try template.htmlBody.map { try TemplateRenderer.render($0, variables: job.variables, as: .html) }
        let message = EmailMessage(
            from: from,
            fromName: fromName,
            to: recipient.email,
            toName: recipient.name,
            subject: subject,
            text: text,
            html: html,
            messageID: "\(job.notificationID.uuidString.lowercased())@\(messageIDDomain)",
            headers: [
                ("X-Correlation-ID", job.correlationID),
                ("X-Notification-ID", job.notificationID.uuidString.lowercased()),
                ("X-Request-ID", job.requestID),
            ]
        )
        do {
            // A mailbox the server rejects (5xx) says nothing about the server's health; 4xx and timeouts do.
            let start = ContinuousClock.now
            do {
                try await breaker.run({ try await smtp.send(message) }, isFailure: { ($0 as? SMTPError)?.permanent != true })
                Telemetry.providerLatency("smtp", since: start, outcome: "ok")
            } catch {
                if !(error is BreakerOpenError) { Telemetry.providerLatency("smtp", since: start, outcome: "error") }
                throw error
            }
        } catch let error as SMTPError {
            throw DeliveryFailure(message: error.message, permanent: error.permanent)
        }
    }
}

/// One device's outcome in one push attempt, as `push_deliveries` records it.
public struct DeviceOutcome: Sendable, Equatable {
    public enum Kind: String, Sendable { case accepted, rejected, failed, skipped }
    public var deviceID: String
    public var platform: String
    public var kind: Kind
    public var providerMessageID: String?
    public var error: String?
    public var deviceDeactivated: Bool
}

/// Push: fans a notification out to every active device of the user, over FCM HTTP v1 or Web Push (APNs devices are
/// reported `skipped`: not supported yet). The notification is sent when at least one device accepted it; otherwise
/// the attempt fails, transiently if any device failed transiently. A token or subscription the provider reports
/// dead deactivates the device in the user service. Every device's outcome is recorded.
public struct PushDeliverer: Deliverer {
    public let channel = NotificationChannel.push
    let fcm: FCMTransport?
    let webPush: WebPushTransport?
    let fcmBreaker: CircuitBreaker
    let webPushBreaker: CircuitBreaker
    let directory: PlatformDirectory
    let outcomes: PushOutcomeStore
    let timeToLive: Int

    public init(
        fcm: FCMTransport?,
        webPush: WebPushTransport?,
        fcmBreaker: CircuitBreaker,
        webPushBreaker: CircuitBreaker,
        directory: PlatformDirectory,
        outcomes: PushOutcomeStore,
        timeToLive: Int
    ) {
        self.fcm = fcm
        self.webPush = webPush
        self.fcmBreaker = fcmBreaker
        self.webPushBreaker = webPushBreaker
        self.directory = directory
        self.outcomes = outcomes
        self.timeToLive = timeToLive
    }

    public func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws {
        guard !recipient.devices.isEmpty else {
            throw DeliveryFailure(message: "the user has no active push device", permanent: true)
        }
        // Rendered once; only the destination differs per device.
        let message = PushMessage(
            title: try TemplateRenderer.render(template.title ?? "", variables: job.variables, as: .text),
            body: try TemplateRenderer.render(template.body, variables: job.variables, as: .text),
            imageURL: try template.imageURL.map { try TemplateRenderer.render($0, variables: job.variables, as: .text) },
            link: try template.link.map { try TemplateRenderer.render($0, variables: job.variables, as: .text) },
            data: (try template.data?.mapValues { try TemplateRenderer.render($0, variables: job.variables, as: .text) } ?? [:])
                .merging(["notification_id": job.notificationID.lowercased, "correlation_id": job.correlationID]) { $1 },
            priority: job.priority,
            timeToLive: timeToLive
        )
        var results: [DeviceOutcome] = []
        var retryAfter: [Int] = []
        for device in recipient.devices {
            let start = ContinuousClock.now
            var (outcome, wait) = await send(message, to: device, job: job)
            if outcome.kind != .skipped { Telemetry.providerLatency(device.platform, since: start, outcome: outcome.kind.rawValue) }
            if let wait { retryAfter.append(wait) }
            if outcome.kind == .rejected, outcome.deviceDeactivated, let gone = outcome.error {
                outcome.deviceDeactivated = await directory.deactivateDevice(
                    userID: recipient.userID,
                    deviceID: device.deviceID,
                    reason: "push provider: \(gone)",
                    correlationID: job.correlationID
                )
            }
            switch outcome.kind {
            case .accepted:
                logger.info(
                    "push accepted",
                    metadata: [
                        "device_id": .string(device.deviceID), "platform": .string(device.platform),
                        "provider_message": .string(outcome.providerMessageID ?? ""),
                    ]
                )
            case .rejected, .failed, .skipped:
                logger.warning(
                    "push not accepted",
                    metadata: [
                        "device_id": .string(device.deviceID), "platform": .string(device.platform), "outcome": .string(outcome.kind.rawValue),
                        "error": .string(outcome.error ?? ""), "device_deactivated": .stringConvertible(outcome.deviceDeactivated),
                    ]
                )
            }
            results.append(outcome)
        }
        do {
            try await outcomes.record(notificationID: job.notificationID, attempt: job.attempt, outcomes: results)
        } catch {
            logger.error("push outcomes not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
        }
        if results.contains(where: { $0.kind == .accepted }) { return }
        let summary = results.map { "\($0.platform) \($0.deviceID): \($0.error ?? $0.kind.rawValue)" }.joined(separator: "; ")
        // Any transient failure means a later attempt may still reach a device; the longest Retry-After is honoured.
        if results.contains(where: { $0.kind == .failed }) {
            throw DeliveryFailure(message: "no device accepted: " + summary, permanent: false, retryAfter: retryAfter.max().map { .seconds($0) })
        }
        throw DeliveryFailure(message: "no device accepted: " + summary, permanent: true)
    }

    /// One device: the provider's answer, classified, and the provider's Retry-After when it asked to wait.
    func send(_ message: PushMessage, to device: Recipient.Device, job: ClaimedJob) async -> (DeviceOutcome, Int?) {
        var outcome = DeviceOutcome(
            deviceID: device.deviceID,
            platform: device.platform,
            kind: .skipped,
            providerMessageID: nil,
            error: nil,
            deviceDeactivated: false
        )
        let messageID = job.notificationID.lowercased
        do {
            switch device.platform {
            case "fcm":
                guard let fcm else {
                    outcome.error = "FCM is not configured on this worker"
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await fcmBreaker.run(
                    { try await fcm.send(message, token: device.token, messageID: messageID) },
                    isFailure: { ($0 as? PushError)?.permanent != true }
                )
            case "webpush":
                guard let webPush else {
                    outcome.error = "Web Push is not configured on this worker"
                    return (outcome, nil)
                }
                guard let p256dh = device.p256dh, let auth = device.auth else {
                    outcome.kind = .rejected
                    outcome.error = "the subscription has no keys"
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await webPushBreaker.run(
                    { try await webPush.send(message, endpoint: device.token, p256dh: p256dh, auth: auth, messageID: messageID) },
                    isFailure: { ($0 as? PushError)?.permanent != true }
                )
            default:
                outcome.error = "\(device.platform) is not supported yet"
                return (outcome, nil)
            }
            outcome.kind = .accepted
            return (outcome, nil)
        } catch let error as PushError {
            outcome.kind = error.permanent ? .rejected : .failed
            outcome.error = error.message
            // Marked here; the caller deactivates the device and keeps the mark only if the user service recorded it.
            outcome.deviceDeactivated = error.deviceGone
            return (outcome, error.retryAfterSeconds)
        } catch let error as BreakerOpenError {
            outcome.kind = .failed
            outcome.error = "\(error.name) circuit open"
            return (outcome, Int(error.retryAfter.components.seconds) + 1)
        } catch {
            outcome.kind = .failed
            outcome.error = String(describing: type(of: error))
            return (outcome, nil)
        }
    }
}

/// Writes push outcomes to `push_deliveries` (one row per device per attempt).
public struct PushOutcomeStore: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func record(notificationID: UUID, attempt: Int, outcomes: [DeviceOutcome]) async throws {
        guard !outcomes.isEmpty else { return }
        try await client.withTransaction(logger: logger) { [logger] connection in
            for outcome in outcomes {
                _ = try await connection.query(
                    """
                    INSERT INTO push_deliveries (notification_id, attempt, device_id, platform, outcome, provider_message_id, error, device_deactivated)
                    VALUES (\(notificationID), \(attempt), \(outcome.deviceID), \(outcome.platform), \(outcome.kind.rawValue),
                            \(outcome.providerMessageID), \(outcome.error), \(outcome.deviceDeactivated))
                    """,
                    logger: logger
                )
            }
        }
    }
}
