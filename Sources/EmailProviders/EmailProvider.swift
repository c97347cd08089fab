import Foundation
import SMTPTransport

/// One way out for email: an SMTP server or a provider's HTTP API.
public protocol EmailProvider: Sendable {
    /// The provider's name as configured and recorded (`smtp`, `sendgrid`, `mailgun`).
    var name: String { get }
    /// Hands the message over; returns the provider's id for it (what its event webhooks name).
    func send(_ message: EmailMessage) async throws -> String
}

/// What went wrong with one provider, as a stable code: what API clients see (with `reason`), never the provider's
/// own words, which go to the worker's log only.
public enum EmailErrorCode: String, Sendable, CaseIterable {
    /// The receiving server or the provider refused this recipient.
    case mailboxUnavailable = "mailbox_unavailable"
    /// The message is larger than the server or provider takes.
    case messageTooLarge = "message_too_large"
    /// The provider refused the message (malformed, not allowed).
    case rejectedByProvider = "rejected_by_provider"
    /// The mail server asked to try later (SMTP 4xx).
    case deferredByServer = "deferred_by_server"
    /// The provider asked to slow down (429).
    case rateLimited = "rate_limited"
    /// The provider failed (5xx), timed out or could not be reached.
    case providerUnavailable = "provider_unavailable"
    /// The platform's credentials were refused (401/403, SMTP 535): a configuration problem.
    case providerAuthFailed = "provider_auth_failed"
    /// TLS was required and the server did not offer it, or the handshake failed.
    case tlsUnavailable = "tls_unavailable"
    /// The server's certificate did not verify.
    case certificateRefused = "certificate_refused"
    /// Recent failures of this provider opened its circuit; not tried.
    case circuitOpen = "circuit_open"

    /// A short, fixed explanation, safe to show to API clients.
    public var reason: String {
        switch self {
        case .mailboxUnavailable: return "the mail server refused the recipient"
        case .messageTooLarge: return "the message is larger than the provider takes"
        case .rejectedByProvider: return "the provider refused the message"
        case .deferredByServer: return "the mail server asked to try later"
        case .rateLimited: return "the provider asked to slow down"
        case .providerUnavailable: return "the provider could not be reached or did not answer"
        case .providerAuthFailed: return "the provider refused the platform's credentials"
        case .tlsUnavailable: return "the mail server offered no usable TLS"
        case .certificateRefused: return "the mail server's certificate did not verify"
        case .circuitOpen: return "the provider failed repeatedly; sending through it is paused"
        }
    }
}

/// Why a provider did not take a message, classified for failover and retries.
public struct EmailProviderError: Error, CustomStringConvertible, Sendable {
    public var code: EmailErrorCode
    /// For operators only: the provider's status and its own error text.
    public var detail: String
    /// Retrying (here or at another provider) cannot help: the message or recipient is at fault.
    public var permanent: Bool
    /// The provider's Retry-After, bounded to an hour.
    public var retryAfterSeconds: Int?
    /// The status or reply code, when there was one (shown to clients: it is the protocol's, not the provider's text).
    public var status: Int?

    public init(_ code: EmailErrorCode, detail: String, permanent: Bool, retryAfterSeconds: Int? = nil, status: Int? = nil) {
        self.code = code
        self.detail = detail
        self.permanent = permanent
        self.retryAfterSeconds = retryAfterSeconds
        self.status = status
    }

    public var description: String { detail }

    /// What clients see: `code: reason (status)`.
    public var clientText: String { "\(code.rawValue): \(code.reason)" + (status.map { " (\($0))" } ?? "") }

    /// An HTTP provider's answer: 429 and 5xx are transient (with Retry-After); 401/403 are the platform's
    /// configuration, transient so that the next provider sends; 413 and other 4xx are permanent.
    public static func http(_ provider: String, status: Int, detail: String, retryAfter: String?) -> EmailProviderError {
        let code: EmailErrorCode
        let permanent: Bool
        switch status {
        case 429: (code, permanent) = (.rateLimited, false)
        case 500...: (code, permanent) = (.providerUnavailable, false)
        case 401, 403: (code, permanent) = (.providerAuthFailed, false)
        case 413: (code, permanent) = (.messageTooLarge, true)
        case 300..<400: (code, permanent) = (.providerUnavailable, false)
        default: (code, permanent) = (.rejectedByProvider, true)
        }
        return EmailProviderError(
            code,
            detail: "\(provider) answered \(status)\(detail.isEmpty ? "" : ": \(detail)")",
            permanent: permanent,
            retryAfterSeconds: retryAfter.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { min(max($0, 0), 3600) },
            status: status
        )
    }
}

/// SMTP, through the libcurl transport (plain, STARTTLS or implicit TLS). The message id is the message's own
/// `Message-ID`, which bounces quote.
public struct SMTPProvider: EmailProvider {
    public let name = "smtp"
    let transport: SMTPTransport

    public init(transport: SMTPTransport) { self.transport = transport }

    public func send(_ message: EmailMessage) async throws -> String {
        do {
            try await transport.send(message)
            return "<\(message.messageID)>"
        } catch let error as SMTPError {
            throw Self.classify(error)
        }
    }

    /// The chain's view of an SMTP failure: TLS, certificate and login problems are the configuration's, transient.
    public static func classify(_ error: SMTPError) -> EmailProviderError {
        let reply = error.replyCode > 0 ? error.replyCode : nil
        switch error.transportCode {
        case .tlsUnavailable: return EmailProviderError(.tlsUnavailable, detail: error.message, permanent: false)
        case .certificateRefused: return EmailProviderError(.certificateRefused, detail: error.message, permanent: false)
        case .authenticationFailed: return EmailProviderError(.providerAuthFailed, detail: error.message, permanent: false, status: reply)
        case nil: break
        }
        switch error.replyCode {
        case 550, 551, 553: return EmailProviderError(.mailboxUnavailable, detail: error.message, permanent: true, status: reply)
        case 552: return EmailProviderError(.messageTooLarge, detail: error.message, permanent: true, status: reply)
        case 500..<600: return EmailProviderError(.rejectedByProvider, detail: error.message, permanent: true, status: reply)
        case 400..<500: return EmailProviderError(.deferredByServer, detail: error.message, permanent: false, status: reply)
        default: return EmailProviderError(.providerUnavailable, detail: error.message, permanent: false)
        }
    }
}
