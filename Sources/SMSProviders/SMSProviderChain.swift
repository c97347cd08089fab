import Breakers
import Foundation
import Logging
import Telemetry

/// One provider's part in one SMS delivery attempt. `errorCode` and `error` are what API clients see: a stable code
/// and its fixed reason.
public struct SMSProviderAttempt: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        /// The provider took the message.
        case accepted
        /// The provider refused it for good (the number or message is at fault): no other provider is tried.
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

/// The ordered providers of the SMS channel, each behind its own circuit breaker. One delivery attempt walks the
/// chain: a provider whose circuit is open is skipped, a transient failure moves on to the next provider, a permanent
/// one ends the attempt (another provider would refuse the same number), the first acceptance ends it.
public struct SMSProviderChain: Sendable {
    public struct Link: Sendable {
        public let provider: any SMSProvider
        public let breaker: CircuitBreaker
        public init(provider: any SMSProvider, breaker: CircuitBreaker) {
            self.provider = provider
            self.breaker = breaker
        }
    }

    /// How one attempt ended.
    public struct Result: Sendable {
        public var attempts: [SMSProviderAttempt]
        /// The provider that took the message, if one did.
        public var sent: SMSProviderAttempt? { attempts.first { $0.outcome == .accepted } }
        public var permanent: Bool { attempts.contains { $0.outcome == .rejected } }
        /// Every provider skipped: nothing was tried, so no attempt should be spent.
        public var allSkipped: Bool { !attempts.isEmpty && attempts.allSatisfy { $0.outcome == .skipped } }
        /// The longest wait any provider asked for (Retry-After, or the time until a circuit probes again).
        public var retryAfter: Duration?
    }

    public let links: [Link]

    public init(_ links: [Link]) { self.links = links }

    public var names: [String] { links.map(\.provider.name) }

    public func send(_ message: SMSMessage, logger: Logger) async -> Result {
        var result = Result(attempts: [], retryAfter: nil)
        func wait(_ duration: Duration) { result.retryAfter = max(result.retryAfter ?? .zero, duration) }
        for link in links {
            let name = link.provider.name
            let start = ContinuousClock.now
            do {
                let id = try await link.breaker.run(
                    { try await link.provider.send(message) },
                    // A refused number says nothing about the provider's health; everything else does.
                    isFailure: { ($0 as? SMSProviderError)?.permanent != true }
                )
                Telemetry.providerLatency(name, since: start, outcome: "ok")
                result.attempts.append(SMSProviderAttempt(provider: name, outcome: .accepted, providerMessageID: id))
                return result
            } catch let open as BreakerOpenError {
                wait(open.retryAfter)
                result.attempts.append(
                    SMSProviderAttempt(
                        provider: name,
                        outcome: .skipped,
                        errorCode: SMSErrorCode.circuitOpen.rawValue,
                        error: SMSErrorCode.circuitOpen.reason
                    )
                )
            } catch {
                Telemetry.providerLatency(name, since: start, outcome: "error")
                let failure =
                    error as? SMSProviderError
                    ?? SMSProviderError(.providerUnavailable, detail: "\(name): \(error)", permanent: false)
                // The provider's own words (numbers, account ids) are for operators only.
                logger.warning(
                    "sms provider refused",
                    metadata: [
                        "provider": .string(name), "error_code": .string(failure.code.rawValue), "permanent": .stringConvertible(failure.permanent),
                        "detail": .string(failure.detail),
                    ]
                )
                if let seconds = failure.retryAfterSeconds { wait(.seconds(seconds)) }
                result.attempts.append(
                    SMSProviderAttempt(
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
