import Breakers
import Directory
import Foundation
import JobQueue
import Logging
import NotificationModel
import Rendering
import SMSProviders

/// SMS: renders the text and walks the provider chain (`NOTIFY_SMS_PROVIDERS`), like email: every provider tried is
/// recorded in `sms_deliveries`, a transient failure moves on to the next provider, a permanent one (the number) ends
/// the attempt. The number must not be on the suppression list (STOP replies), and the text must fit in
/// `SMSText.maxSegments` segments.
public struct SMSDeliverer: Deliverer {
    public let channel = NotificationChannel.sms
    let chain: SMSProviderChain
    let deliveries: EmailDeliveryStore
    let suppressions: SuppressionCheck
    /// Where providers report delivery status (the gateway's signed webhook), if configured.
    let statusCallback: String?

    public init(chain: SMSProviderChain, deliveries: EmailDeliveryStore, suppressions: SuppressionCheck, statusCallback: String?) {
        self.chain = chain
        self.deliveries = deliveries
        self.suppressions = suppressions
        self.statusCallback = statusCallback
    }

    public func deliver(_ job: ClaimedJob, to recipient: Recipient, template: TemplateContent, logger: Logger) async throws -> [ProviderDelivery] {
        guard let phone = recipient.phone else {
            throw DeliveryFailure(message: "no_phone_number: the user has no phone number", permanent: true)
        }
        let body = try TemplateRenderer.render(template.body, variables: job.variables, as: .text)
        let text = SMSText(body)
        guard text.segments <= SMSText.maxSegments else {
            throw DeliveryFailure(
                message: "message_too_long: the text needs \(text.segments) segments (\(text.encoding.rawValue)); at most \(SMSText.maxSegments)",
                permanent: true
            )
        }
        guard text.segments > 0 else { throw DeliveryFailure(message: "empty_message: the rendered text is empty", permanent: true) }
        // The gateway checked at accept time; a STOP may have arrived since.
        if let reason = try await suppressions.reason(for: phone) {
            throw Withdrawn("not sent: the number is on the suppression list (\(reason.rawValue))")
        }
        // The notification's id rides in the callback URL, which the provider signs: its reports need no lookup and
        // may arrive before this attempt's completion is committed.
        let notificationID = job.notificationID.lowercased
        let callback = statusCallback.map { "\($0)\($0.contains("?") ? "&" : "?")notification_id=\(notificationID)" }
        let message = SMSMessage(to: phone, body: body, messageID: notificationID, statusCallback: callback)
        let result = await chain.send(message, logger: logger)
        let rows = result.attempts.map { entry in
            ProviderDelivery(
                notificationID: job.notificationID,
                attempt: job.attempt,
                provider: entry.provider,
                outcome: entry.outcome.rawValue,
                providerMessageID: entry.providerMessageID,
                errorCode: entry.errorCode,
                error: entry.error,
                channel: .sms
            )
        }
        if result.sent != nil { return rows }
        do {
            try await deliveries.record(rows)
        } catch {
            logger.error("sms deliveries not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
        }
        if result.allSkipped {
            throw BreakerOpenError(name: "sms providers (\(chain.names.joined(separator: ", ")))", retryAfter: result.retryAfter ?? .seconds(1))
        }
        let tried = result.attempts.filter { $0.outcome != .skipped }
        let failure =
            tried.count == 1
            ? tried[0].error ?? tried[0].outcome.rawValue : tried.map { "\($0.provider): \($0.error ?? $0.outcome.rawValue)" }.joined(separator: "; ")
        throw DeliveryFailure(message: failure, permanent: result.permanent, retryAfter: result.permanent ? nil : result.retryAfter)
    }
}
