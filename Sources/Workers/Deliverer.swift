import Breakers
import Deadlines
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
            to: job.deliverTo ?? recipient.email,
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
            // The mail server's and libcurl's own text (host names, addresses, queue ids) is for operators only.
            logger.warning("smtp refused", metadata: ["reply_code": .stringConvertible(error.replyCode), "detail": .string(error.message)])
            throw DeliveryFailure(message: Self.clientText(error), permanent: error.permanent)
        }
    }

    /// What clients see of an SMTP failure: a stable code with the reply code, never the server's words.
    static func clientText(_ error: SMTPError) -> String {
        switch error.replyCode {
        case 550, 551, 553: return "mailbox_unavailable: the mail server refused the recipient (SMTP \(error.replyCode))"
        case 552: return "message_too_large: the mail server refused the message's size (SMTP 552)"
        case 500..<600: return "rejected_by_server: the mail server refused the message (SMTP \(error.replyCode))"
        case 400..<500: return "deferred_by_server: the mail server asked to try later (SMTP \(error.replyCode))"
        default: return "smtp_unavailable: the mail server could not be reached or did not answer"
        }
    }
}

/// One device's outcome in one push attempt, as `push_deliveries` records it. `errorCode` and `error` are what API
/// clients see: a stable code and its fixed reason, never the provider's own answer.
public struct DeviceOutcome: Sendable, Equatable {
    public enum Kind: String, Sendable { case accepted, rejected, failed, skipped }
    public var deviceID: String
    public var platform: String
    public var kind: Kind
    public var providerMessageID: String?
    public var errorCode: String?
    public var error: String?
    public var deviceDeactivated: Bool

    mutating func fail(_ kind: Kind, _ code: PushErrorCode) {
        self.kind = kind
        errorCode = code.rawValue
        error = code.reason
    }
}

/// Push: fans a notification out to every active device of the user, over FCM HTTP v1 or Web Push (APNs devices are
/// reported `skipped`: not supported yet), all devices at once under one deadline for the attempt. The notification
/// is sent when at least one device accepted it; otherwise the attempt fails, transiently if any device failed
/// transiently. A token or subscription the provider reports dead deactivates the device in the user service. Every
/// device's outcome is recorded. Web Push failures are counted per push-service origin, so one failing origin (which
/// a user may have chosen) pauses that origin only.
public struct PushDeliverer: Deliverer {
    public let channel = NotificationChannel.push
    let fcm: FCMTransport?
    let webPush: WebPushTransport?
    let fcmBreaker: CircuitBreaker
    let webPushBreakers: BreakerGroup
    let directory: PlatformDirectory
    let outcomes: PushOutcomeStore
    let timeToLive: Int
    let attemptDeadline: Duration

    public init(
        fcm: FCMTransport?,
        webPush: WebPushTransport?,
        fcmBreaker: CircuitBreaker,
        webPushBreakers: BreakerGroup,
        directory: PlatformDirectory,
        outcomes: PushOutcomeStore,
        timeToLive: Int,
        attemptDeadline: Duration = .seconds(30)
    ) {
        self.fcm = fcm
        self.webPush = webPush
        self.fcmBreaker = fcmBreaker
        self.webPushBreakers = webPushBreakers
        self.directory = directory
        self.outcomes = outcomes
        self.timeToLive = timeToLive
        self.attemptDeadline = attemptDeadline
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
        let sent = await withTaskGroup(of: (Int, DeviceOutcome, Int?).self) { group in
            for (index, device) in recipient.devices.enumerated() {
                group.addTask {
                    let start = ContinuousClock.now
                    var (outcome, wait) = await sendWithinDeadline(message, to: device, job: job, logger: logger)
                    if outcome.kind != .skipped { Telemetry.providerLatency(device.platform, since: start, outcome: outcome.kind.rawValue) }
                    if outcome.kind == .rejected, outcome.deviceDeactivated {
                        outcome.deviceDeactivated = await directory.deactivateDevice(
                            userID: recipient.userID,
                            deviceID: device.deviceID,
                            reason: "push provider: \(outcome.errorCode ?? "rejected")",
                            correlationID: job.correlationID
                        )
                    }
                    return (index, outcome, wait)
                }
            }
            var sent: [(Int, DeviceOutcome, Int?)] = []
            for await result in group { sent.append(result) }
            return sent.sorted { $0.0 < $1.0 }
        }
        let results = sent.map(\.1)
        let retryAfter = sent.compactMap(\.2)
        for outcome in results {
            switch outcome.kind {
            case .accepted:
                logger.info(
                    "push accepted",
                    metadata: [
                        "device_id": .string(outcome.deviceID), "platform": .string(outcome.platform),
                        "provider_message": .string(outcome.providerMessageID ?? ""),
                    ]
                )
            case .rejected, .failed, .skipped:
                logger.warning(
                    "push not accepted",
                    metadata: [
                        "device_id": .string(outcome.deviceID), "platform": .string(outcome.platform), "outcome": .string(outcome.kind.rawValue),
                        "error_code": .string(outcome.errorCode ?? ""), "device_deactivated": .stringConvertible(outcome.deviceDeactivated),
                    ]
                )
            }
        }
        do {
            try await outcomes.record(notificationID: job.notificationID, attempt: job.attempt, outcomes: results)
        } catch {
            logger.error("push outcomes not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
        }
        if results.contains(where: { $0.kind == .accepted }) { return }
        let summary = results.map { "\($0.platform) \($0.deviceID): \($0.errorCode ?? $0.kind.rawValue)" }.joined(separator: "; ")
        // Any transient failure means a later attempt may still reach a device; the longest Retry-After is honoured.
        if results.contains(where: { $0.kind == .failed }) {
            throw DeliveryFailure(message: "no device accepted: " + summary, permanent: false, retryAfter: retryAfter.max().map { .seconds($0) })
        }
        throw DeliveryFailure(message: "no device accepted: " + summary, permanent: true)
    }

    /// One device under the attempt's deadline: a provider that does not answer in time is a transient failure.
    func sendWithinDeadline(_ message: PushMessage, to device: Recipient.Device, job: ClaimedJob, logger: Logger) async -> (DeviceOutcome, Int?) {
        do {
            return try await withDeadline(attemptDeadline) { await send(message, to: device, job: job, logger: logger) }
        } catch {
            var outcome = DeviceOutcome(
                deviceID: device.deviceID,
                platform: device.platform,
                kind: .failed,
                providerMessageID: nil,
                errorCode: nil,
                error: nil,
                deviceDeactivated: false
            )
            outcome.fail(.failed, .timedOut)
            return (outcome, nil)
        }
    }

    /// One device: the provider's answer, classified, and the provider's Retry-After when it asked to wait.
    func send(_ message: PushMessage, to device: Recipient.Device, job: ClaimedJob, logger: Logger) async -> (DeviceOutcome, Int?) {
        var outcome = DeviceOutcome(
            deviceID: device.deviceID,
            platform: device.platform,
            kind: .skipped,
            providerMessageID: nil,
            errorCode: nil,
            error: nil,
            deviceDeactivated: false
        )
        let messageID = job.notificationID.lowercased
        do {
            switch device.platform {
            case "fcm":
                guard let fcm else {
                    outcome.fail(.skipped, .notConfigured)
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await fcmBreaker.run(
                    { try await fcm.send(message, token: device.token, messageID: messageID) },
                    isFailure: { ($0 as? PushError)?.permanent != true }
                )
            case "webpush":
                guard let webPush else {
                    outcome.fail(.skipped, .notConfigured)
                    return (outcome, nil)
                }
                guard let p256dh = device.p256dh, let auth = device.auth else {
                    outcome.fail(.rejected, .malformedSubscription)
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await webPushBreakers.breaker(for: WebPushTransport.origin(of: device.token)).run(
                    { try await webPush.send(message, endpoint: device.token, p256dh: p256dh, auth: auth, messageID: messageID) },
                    isFailure: { ($0 as? PushError)?.permanent != true }
                )
            default:
                outcome.fail(.skipped, .unsupportedPlatform)
                return (outcome, nil)
            }
            outcome.kind = .accepted
            return (outcome, nil)
        } catch let error as PushError {
            // The provider's detail is for operators only.
            logger.warning(
                "push provider answer",
                metadata: ["device_id": .string(device.deviceID), "error_code": .string(error.code.rawValue), "detail": .string(error.message)]
            )
            outcome.fail(error.permanent ? .rejected : .failed, error.code)
            // Marked here; the caller deactivates the device and keeps the mark only if the user service recorded it.
            outcome.deviceDeactivated = error.deviceGone
            return (outcome, error.retryAfterSeconds)
        } catch let error as BreakerOpenError {
            outcome.fail(.failed, .circuitOpen)
            return (outcome, Int(error.retryAfter.components.seconds) + 1)
        } catch {
            logger.warning("push send failed", metadata: ["device_id": .string(device.deviceID), "error": .string(String(describing: error))])
            outcome.fail(.failed, .providerUnavailable)
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
                    INSERT INTO push_deliveries (notification_id, attempt, device_id, platform, outcome, provider_message_id, error_code, error,
                                                 device_deactivated)
                    VALUES (\(notificationID), \(attempt), \(outcome.deviceID), \(outcome.platform), \(outcome.kind.rawValue),
                            \(outcome.providerMessageID), \(outcome.errorCode), \(outcome.error), \(outcome.deviceDeactivated))
                    """,
                    logger: logger
                )
            }
        }
    }
}
