import Breakers
import Foundation
import Logging
import SMTPTransport
import Telemetry

/// One provider's part in one delivery attempt, as `email_deliveries` records it. `errorCode` and `error` are what
/// API clients see: a stable code and its fixed reason.
public struct ProviderAttempt: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        /// The provider took the message.
        case accepted
        /// The provider refused it for good (the recipient or message is at fault): no other provider is tried.
        case rejected
        /// A transient failure: the next provider is tried.
        case failed
        /// Not tried: the provider's circuit is open.
        case skipped
    }
    public var provider: String
    public var outcome: Outcome
    public var providerMessageID: String?
    public var errorCode: String?
    public var error: String?
}

/// The ordered providers of the email channel, each behind its own circuit breaker. One delivery attempt walks the
/// chain: a provider whose circuit is open is skipped, a transient failure moves on to the next provider, a permanent
/// one ends the attempt (another provider would refuse the same recipient), the first acceptance ends it.
public struct EmailProviderChain: Sendable {
    public struct Link: Sendable {
        public let provider: any EmailProvider
        public let breaker: CircuitBreaker
        public init(provider: any EmailProvider, breaker: CircuitBreaker) {
            self.provider = provider
            self.breaker = breaker
        }
    }

    /// How one attempt ended.
    public struct Result: Sendable {
        public var attempts: [ProviderAttempt]
        /// The provider that took the message, if one did.
        public var sent: ProviderAttempt? { attempts.first { $0.outcome == .accepted } }
        public var permanent: Bool { attempts.contains { $0.outcome == .rejected } }
        /// Every provider skipped: nothing was tried, so no attempt should be spent.
        public var allSkipped: Bool { !attempts.isEmpty && attempts.allSatisfy { $0.outcome == .skipped } }
        /// The longest wait any provider asked for (Retry-After, or the time until a circuit probes again).
        public var retryAfter: Duration?
    }

    public let links: [Link]

    public init(_ links: [Link]) { self.links = links }

    public var names: [String] { links.map(\.provider.name) }

    public func send(_ message: EmailMessage, logger: Logger) async -> Result {
        var result = Result(attempts: [], retryAfter: nil)
        func wait(_ duration: Duration) { result.retryAfter = max(result.retryAfter ?? .zero, duration) }
        for link in links {
            let name = link.provider.name
            let start = ContinuousClock.now
            do {
                let id = try await link.breaker.run(
                    { try await link.provider.send(message) },
                    // A refused recipient says nothing about the provider's health; everything else does.
                    isFailure: { ($0 as? EmailProviderError)?.permanent != true }
                )
                Telemetry.providerLatency(name, since: start, outcome: "ok")
                result.attempts.append(ProviderAttempt(provider: name, outcome: .accepted, providerMessageID: id))
                return result
            } catch let open as BreakerOpenError {
                wait(open.retryAfter)
                result.attempts.append(
                    ProviderAttempt(
                        provider: name,
                        outcome: .skipped,
                        errorCode: EmailErrorCode.circuitOpen.rawValue,
                        error: EmailErrorCode.circuitOpen.reason
                    )
                )
            } catch {
                Telemetry.providerLatency(name, since: start, outcome: "error")
                let failure =
                    error as? EmailProviderError
                    ?? EmailProviderError(.providerUnavailable, detail: "\(name): \(error)", permanent: false)
                // The provider's own words (addresses, queue ids, account names) are for operators only.
                logger.warning(
                    "email provider refused",
                    metadata: [
                        "provider": .string(name), "error_code": .string(failure.code.rawValue), "permanent": .stringConvertible(failure.permanent),
                        "detail": .string(failure.detail),
                    ]
                )
                if let seconds = failure.retryAfterSeconds { wait(.seconds(seconds)) }
                result.attempts.append(
                    ProviderAttempt(
                        provider: name,
                        outcome: failure.permanent ? .rejected : .failed,
                        errorCode: failure.code.rawValue,
                        error: failure.clientText
                    )
                )
                if failure.permanent { return result }
            }
        }
        return result
    }
}
