import Breakers
import Directory
import Foundation
import JobQueue
import Logging
import NotificationModel
import PushTransport
import Rendering
import SMTPTransport

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
            try await breaker.run({ try await smtp.send(message) }, isFailure: { ($0 as? SMTPError)?.permanent != true })
        } catch let error as SMTPError {
            throw DeliveryFailure(message: error.message, permanent: error.permanent)
        }
    }
}

public struct PushDeliverer: Deliverer {
    public let channel = NotificationChannel.push
    let fcm: FCMTransport
    let breaker: CircuitBreaker

    public init(fcm: FCMTransport, breaker: CircuitBreaker) {
        self.fcm = fcm
        self.breaker = breaker
    }

    /// Fans out to every active device the provider handles: sent when at least one device accepted; otherwise the
    /// attempt fails, transiently if any device failed transiently.
    public func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws {
        let devices = recipient.devices.filter { $0.platform == "fcm" }
        guard !devices.isEmpty else {
            throw DeliveryFailure(message: "the user has no active device this worker can reach", permanent: true)
        }
        var accepted = 0
        var failures: [DeliveryFailure] = []
        // Rendered once; only the token differs per device.
        let rendered = PushMessage(
            token: "",
            title: try TemplateRenderer.render(template.title ?? "", variables: job.variables, as: .text),
            body: try TemplateRenderer.render(template.body, variables: job.variables, as: .text),
            imageURL: try template.imageURL.map { try TemplateRenderer.render($0, variables: job.variables, as: .text) },
            link: try template.link.map { try TemplateRenderer.render($0, variables: job.variables, as: .text) },
            data: (try template.data?.mapValues { try TemplateRenderer.render($0, variables: job.variables, as: .text) } ?? [:])
                .merging(["notification_id": job.notificationID.lowercased, "correlation_id": job.correlationID]) { $1 }
        )
        for device in devices {
            var message = rendered
            message.token = device.token
            do {
                let name = try await breaker.run(
                    { try await fcm.send(message, messageID: job.notificationID.lowercased) },
                    isFailure: { ($0 as? PushError)?.permanent != true }
                )
                accepted += 1
                logger.info("push accepted", metadata: ["device_id": .string(device.deviceID), "provider_message": .string(name)])
            } catch let error as PushError {
                failures.append(
                    DeliveryFailure(message: error.message, permanent: error.permanent, retryAfter: error.retryAfterSeconds.map { .seconds($0) })
                )
                logger.warning("push refused", metadata: ["device_id": .string(device.deviceID), "error": .string(error.message)])
            }
        }
        guard accepted == 0 else { return }
        throw failures.first { !$0.permanent } ?? failures.first ?? DeliveryFailure(message: "no device accepted", permanent: true)
    }
}
