import Breakers
import Deadlines
import Directory
import EmailProviders
import Foundation
import JobQueue
import Logging
import NotificationModel
import NotifyHTTP
import PostgresAccess
import PostgresNIO
import PushTransport
import Rendering
import SMTPTransport
import Telemetry

/// Turns one claimed job into a message on one channel. Two implementations: email (a provider chain) and push.
public protocol Deliverer: Sendable {
    var channel: NotificationChannel { get }
    /// Sends; returns what the completion records with it (email: each provider tried; push: nothing).
    func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws -> [ProviderDelivery]
}

/// Email: renders the message and walks the provider chain (`NOTIFY_EMAIL_PROVIDERS`); every provider tried is recorded
/// in `email_deliveries` with its outcome, and the first that accepts ends the attempt.
public struct EmailDeliverer: Deliverer {
    public let channel = NotificationChannel.email
    let chain: EmailProviderChain
    let deliveries: EmailDeliveryStore
    let suppressions: SuppressionCheck
    let unsubscribe: UnsubscribeLinks?
    let senders: SenderPolicy
    let from: String
    let fromName: String
    let messageIDDomain: String

    public init(
        chain: EmailProviderChain,
        deliveries: EmailDeliveryStore,
        suppressions: SuppressionCheck,
        unsubscribe: UnsubscribeLinks?,
        senders: SenderPolicy,
        from: String,
        fromName: String,
        messageIDDomain: String
    ) {
        self.chain = chain
        self.deliveries = deliveries
        self.suppressions = suppressions
        self.unsubscribe = unsubscribe
        self.senders = senders
        self.from = from
        self.fromName = fromName
        self.messageIDDomain = messageIDDomain
    }

    public func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws -> [ProviderDelivery] {
        let subject = try TemplateRenderer.render(template.subject ?? "", variables: job.variables, as: .text)
        let text = try TemplateRenderer.render(template.body, variables: job.variables, as: .text)
        let html = try template.htmlBody.map { try TemplateRenderer.render($0, variables: job.variables, as: .html) }
        let notificationID = job.notificationID.lowercased
        let address = job.deliverTo ?? recipient.email
        // The gateway checked at accept time; a bounce or complaint may have arrived since.
        if let reason = try await suppressions.reason(for: address) {
            throw Withdrawn("not sent: the address is on the suppression list (\(reason.rawValue))")
        }
        // A template's own sender must still be allowed: the list may have shrunk since the template was saved.
        if let sender = template.fromEmail, !senders.allows(sender) {
            throw DeliveryFailure(message: "sender_not_allowed: the template's from_email is not on NOTIFY_MAIL_FROM_ALLOWED", permanent: true)
        }
        var message = EmailMessage(
            from: template.fromEmail ?? from,
            fromName: template.fromEmail == nil ? fromName : template.fromName,
            to: address,
            toName: recipient.name,
            subject: subject,
            text: text,
            html: html,
            messageID: "\(notificationID)@\(messageIDDomain)",
            headers: [
                ("X-Correlation-ID", job.correlationID),
                ("X-Notification-ID", notificationID),
                ("X-Request-ID", job.requestID),
            ],
            replyTo: template.replyTo,
            tracking: ["notification_id": notificationID]
        )
        // Mail of a category the user can opt out of carries the one-click link (RFC 8058); transactional mail and
        // the platform's own mail to an address being verified do not.
        if job.deliverTo == nil, !recipient.isDirect, let unsubscribe, let category = template.category,
            let link = unsubscribe.link(userID: recipient.userID, category: category)
        {
            message.headers.append(("List-Unsubscribe", "<\(link)>"))
            message.headers.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
        }
        let result = await chain.send(message, logger: logger)
        let rows = result.attempts.map { entry in
            ProviderDelivery(
                notificationID: job.notificationID,
                attempt: job.attempt,
                provider: entry.provider,
                outcome: entry.outcome.rawValue,
                providerMessageID: entry.providerMessageID,
                errorCode: entry.errorCode,
                error: entry.error
            )
        }
        // Sent: recorded with the job's completion, in its transaction.
        if result.sent != nil { return rows }
        // Not sent: recorded now, before the failure is.
        do {
            try await deliveries.record(rows)
        } catch {
            logger.error("email deliveries not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
        }
        // Every circuit open: nothing was tried, so the job waits without spending an attempt.
        if result.allSkipped {
            throw BreakerOpenError(name: "email providers (\(chain.names.joined(separator: ", ")))", retryAfter: result.retryAfter ?? .seconds(1))
        }
        let tried = result.attempts.filter { $0.outcome != .skipped }
        // With one provider tried the message is its own; with several, each says its part.
        let failure =
            tried.count == 1
            ? tried[0].error ?? tried[0].outcome.rawValue : tried.map { "\($0.provider): \($0.error ?? $0.outcome.rawValue)" }.joined(separator: "; ")
        throw DeliveryFailure(message: failure, permanent: result.permanent, retryAfter: result.permanent ? nil : result.retryAfter)
    }
}

/// The worker's look at the suppression list: the checks of many concurrent deliveries go in one query under load.
public struct SuppressionCheck: Sendable {
    let batches: BatchExecutor<String, Suppression.Reason?>

    public init(list: SuppressionList, deadline: Duration) {
        batches = BatchExecutor(maxBatch: 128, maxInFlight: 2, deadline: deadline) { addresses in
            let found = try await list.reasons(for: addresses)
            return addresses.map { found[$0] }
        }
    }

    public func reason(for address: String) async throws -> Suppression.Reason? { try await batches.submit(address) }
}

/// Builds the one-click unsubscribe links of non-transactional mail.
public struct UnsubscribeLinks: Sendable {
    let baseURL: String
    let signer: UnsubscribeSigner
    let transactional: Set<String>

    public init(baseURL: String, signer: UnsubscribeSigner, transactional: Set<String>) {
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.signer = signer
        self.transactional = transactional
    }

    /// nil for a transactional category.
    public func link(userID: UUID, category: String) -> String? {
        guard !transactional.contains(category) else { return nil }
        return "\(baseURL)/\(signer.token(userID: userID, category: category))"
    }

    /// RFC 8058 wants HTTPS; plain HTTP is accepted only on loopback (development and tests).
    public static func problem(_ url: String) -> String? {
        guard let parsed = URL(string: url), let host = parsed.host, parsed.query == nil, parsed.fragment == nil else {
            return "NOTIFY_UNSUBSCRIBE_URL must be an absolute URL without query or fragment"
        }
        if parsed.scheme == "https" { return nil }
        if parsed.scheme == "http", ["127.0.0.1", "localhost", "::1"].contains(host) { return nil }
        return "NOTIFY_UNSUBSCRIBE_URL must be https:// (RFC 8058; plain http only on loopback)"
    }
}

/// Writes the provider attempts of an email that was not sent (a sent one's go with its completion).
public struct EmailDeliveryStore: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func record(_ rows: [ProviderDelivery]) async throws {
        guard !rows.isEmpty else { return }
        try await client.withConnection { [logger] connection in try await ProviderDelivery.insert(rows, on: connection, logger: logger) }
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

/// The push providers a worker holds, each behind its own circuit breaker: one for FCM, APNs and OneSignal each, and
/// one per push-service origin for Web Push (a user may choose the origin). A failing provider pauses only its own
/// devices; the others go on.
public struct PushProviders: Sendable {
    public var fcm: FCMTransport?
    public var apns: APNsTransport?
    public var oneSignal: OneSignalTransport?
    public var webPush: WebPushTransport?
    let breakers: [String: CircuitBreaker]
    let webPushBreakers: BreakerGroup

    public init(
        fcm: FCMTransport? = nil,
        apns: APNsTransport? = nil,
        oneSignal: OneSignalTransport? = nil,
        webPush: WebPushTransport? = nil,
        logger: Logger
    ) {
        self.fcm = fcm
        self.apns = apns
        self.oneSignal = oneSignal
        self.webPush = webPush
        var breakers: [String: CircuitBreaker] = [:]
        if fcm != nil { breakers["fcm"] = CircuitBreaker(name: "fcm", logger: logger) }
        if apns != nil { breakers["apns"] = CircuitBreaker(name: "apns", logger: logger) }
        if oneSignal != nil { breakers["onesignal"] = CircuitBreaker(name: "onesignal", logger: logger) }
        self.breakers = breakers
        webPushBreakers = BreakerGroup(name: "webpush", logger: logger)
    }

    /// The breakers of the fixed providers, for health and metrics (Web Push's are per origin: `webPushBreakers`).
    public var providerBreakers: [CircuitBreaker] { breakers.keys.sorted().compactMap { breakers[$0] } }
    public var originBreakers: BreakerGroup { webPushBreakers }
}

/// Push: fans a notification out to every active device of the user, over FCM HTTP v1, APNs, OneSignal or Web Push,
/// all devices at once under one deadline for the attempt. The notification is sent when at least one device accepted
/// it; otherwise the attempt fails, transiently if any device failed transiently. A token or subscription the provider
/// reports dead deactivates the device in the user service. Every device's outcome is recorded.
public struct PushDeliverer: Deliverer {
    public let channel = NotificationChannel.push
    let providers: PushProviders
    let directory: PlatformDirectory
    let outcomes: PushOutcomeStore
    let timeToLive: Int
    let attemptDeadline: Duration

    public init(
        providers: PushProviders,
        directory: PlatformDirectory,
        outcomes: PushOutcomeStore,
        timeToLive: Int,
        attemptDeadline: Duration = .seconds(30)
    ) {
        self.providers = providers
        self.directory = directory
        self.outcomes = outcomes
        self.timeToLive = timeToLive
        self.attemptDeadline = attemptDeadline
    }

    public func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws -> [ProviderDelivery] {
        guard !recipient.devices.isEmpty else {
            throw DeliveryFailure(message: "the user has no active push device", permanent: true)
        }
        // Rendered once; only the destination differs per device. A template's `data.collapse_id` is the collapse key.
        var data = try template.data?.mapValues { try TemplateRenderer.render($0, variables: job.variables, as: .text) } ?? [:]
        let collapseID = data.removeValue(forKey: "collapse_id").flatMap { $0.isEmpty ? nil : $0 }
        let message = PushMessage(
            title: try TemplateRenderer.render(template.title ?? "", variables: job.variables, as: .text),
            body: try TemplateRenderer.render(template.body, variables: job.variables, as: .text),
            imageURL: try template.imageURL.map { try TemplateRenderer.render($0, variables: job.variables, as: .text) },
            link: try template.link.map { try TemplateRenderer.render($0, variables: job.variables, as: .text) },
            data: data.merging(["notification_id": job.notificationID.lowercased, "correlation_id": job.correlationID]) { $1 },
            priority: job.priority,
            timeToLive: timeToLive,
            collapseID: collapseID
        )
        let sent = await withTaskGroup(of: (Int, DeviceOutcome, Int?).self) { group in
            for (index, device) in recipient.devices.enumerated() {
                group.addTask {
                    let start = ContinuousClock.now
                    var (outcome, wait) = await sendWithinDeadline(message, to: device, job: job, logger: logger)
                    if outcome.kind != .skipped { Telemetry.providerLatency(device.platform, since: start, outcome: outcome.kind.rawValue) }
                    if outcome.kind == .rejected, outcome.deviceDeactivated, recipient.isDirect {
                        // A token sent to directly is no registered device: nothing to deactivate; the client is told
                        // through the notification's failure and its deliveries.
                        outcome.deviceDeactivated = false
                    } else if outcome.kind == .rejected, outcome.deviceDeactivated {
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
        if results.contains(where: { $0.kind == .accepted }) { return [] }
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
            let isFailure: @Sendable (any Error) -> Bool = { ($0 as? PushError)?.permanent != true }
            switch device.platform {
            case "fcm":
                guard let fcm = providers.fcm, let breaker = providers.breakers["fcm"] else {
                    outcome.fail(.skipped, .notConfigured)
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await breaker.run(
                    { try await fcm.send(message, token: device.token, messageID: messageID) },
                    isFailure: isFailure
                )
            case "apns":
                guard let apns = providers.apns, let breaker = providers.breakers["apns"] else {
                    outcome.fail(.skipped, .notConfigured)
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await breaker.run(
                    { try await apns.send(message, deviceToken: device.token, messageID: messageID) },
                    isFailure: isFailure
                )
            case "onesignal":
                guard let oneSignal = providers.oneSignal, let breaker = providers.breakers["onesignal"] else {
                    outcome.fail(.skipped, .notConfigured)
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await breaker.run(
                    { try await oneSignal.send(message, subscriptionID: device.token, messageID: messageID) },
                    isFailure: isFailure
                )
            case "webpush":
                guard let webPush = providers.webPush else {
                    outcome.fail(.skipped, .notConfigured)
                    return (outcome, nil)
                }
                guard let p256dh = device.p256dh, let auth = device.auth else {
                    outcome.fail(.rejected, .malformedSubscription)
                    return (outcome, nil)
                }
                outcome.providerMessageID = try await providers.webPushBreakers.breaker(for: WebPushTransport.origin(of: device.token)).run(
                    { try await webPush.send(message, endpoint: device.token, p256dh: p256dh, auth: auth, messageID: messageID) },
                    isFailure: isFailure
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
