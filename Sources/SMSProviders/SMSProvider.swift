import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel

/// One text message for one recipient.
public struct SMSMessage: Sendable {
    /// The recipient, E.164 (`PhoneNumber.normalize`).
    public var to: String
    /// The sender (a number or an alphanumeric sender id); empty means the provider's configured sender.
    public var from: String
    public var body: String
    /// Our notification id, passed where the provider echoes it back (Vonage's `client-ref`).
    public var messageID: String
    /// Where the provider reports delivery, when set.
    public var statusCallback: String?

    public init(to: String, from: String = "", body: String, messageID: String, statusCallback: String? = nil) {
        self.to = to
        self.from = from
        self.body = body
        self.messageID = messageID
        self.statusCallback = statusCallback
    }

    /// The body's encoding and segments; a body over `SMSText.maxSegments` is refused before any provider is called.
    func checkedText(_ provider: String) throws -> SMSText {
        let text = SMSText(body)
        guard text.segments <= SMSText.maxSegments else {
            throw SMSProviderError(
                .messageTooLong,
                detail: "\(provider): \(text.segments) \(text.encoding.rawValue) segments, at most \(SMSText.maxSegments) are sent",
                permanent: true
            )
        }
        return text
    }
}

/// One way out for SMS: a provider's HTTP API.
public protocol SMSProvider: Sendable {
    /// The provider's name as configured and recorded (`twilio`, `vonage`).
    var name: String { get }
    /// Hands the message over; returns the provider's id for it (what its status callbacks name).
    func send(_ message: SMSMessage) async throws -> String
}

/// What went wrong with one provider, as a stable code: what API clients see (with `reason`), never the provider's
/// own words, which go to the worker's log only.
public enum SMSErrorCode: String, Sendable, CaseIterable {
    /// The provider says the number is not a valid (mobile) number.
    case invalidNumber = "invalid_number"
    /// The number cannot receive text messages: a landline, barred, or unreachable at its carrier.
    case unreachableNumber = "unreachable_number"
    /// The recipient unsubscribed from the sender (replied STOP).
    case recipientOptedOut = "recipient_opted_out"
    /// The provider refused the message for another reason.
    case rejectedByProvider = "rejected_by_provider"
    /// The provider asked to slow down.
    case rateLimited = "rate_limited"
    /// The provider failed (5xx), timed out or could not be reached.
    case providerUnavailable = "provider_unavailable"
    /// The platform's credentials were refused (401/403): a configuration problem.
    case providerAuthFailed = "provider_auth_failed"
    /// Recent failures of this provider opened its circuit; not tried.
    case circuitOpen = "circuit_open"
    /// The body needs more than `SMSText.maxSegments` segments.
    case messageTooLong = "message_too_long"

    /// A short, fixed explanation, safe to show to API clients.
    public var reason: String {
        switch self {
        case .invalidNumber: return "the provider says the number is not a valid mobile number"
        case .unreachableNumber: return "the number cannot receive text messages"
        case .recipientOptedOut: return "the recipient has unsubscribed from this sender"
        case .rejectedByProvider: return "the provider refused the message"
        case .rateLimited: return "the provider asked to slow down"
        case .providerUnavailable: return "the provider could not be reached or did not answer"
        case .providerAuthFailed: return "the provider refused the platform's credentials"
        case .circuitOpen: return "the provider failed repeatedly; sending through it is paused"
        case .messageTooLong: return "the message needs more than \(SMSText.maxSegments) segments"
        }
    }
}

/// Why a provider did not take a message, classified for failover and retries.
public struct SMSProviderError: Error, CustomStringConvertible, Sendable {
    public var code: SMSErrorCode
    /// For operators only: the provider's status, its error code and its own error text (never a credential).
    public var detail: String
    /// Retrying (here or at another provider) cannot help: the message or recipient is at fault.
    public var permanent: Bool
    /// The provider's Retry-After, bounded to an hour.
    public var retryAfterSeconds: Int?
    /// The HTTP status, when there was one (shown to clients: it is the protocol's, not the provider's text).
    public var status: Int?

    public init(_ code: SMSErrorCode, detail: String, permanent: Bool, retryAfterSeconds: Int? = nil, status: Int? = nil) {
        self.code = code
        self.detail = detail
        self.permanent = permanent
        self.retryAfterSeconds = retryAfterSeconds
        self.status = status
    }

    public var description: String { detail }

    /// What clients see: `code: reason (status)`.
    public var clientText: String { "\(code.rawValue): \(code.reason)" + (status.map { " (\($0))" } ?? "") }

    /// An HTTP answer no provider-specific code explained: 429 and 5xx are transient (with Retry-After); 401/403 are
    /// the platform's configuration, transient so that the next provider sends (and the breaker counts them); other
    /// 4xx are permanent.
    static func http(_ provider: String, status: Int, detail: String, retryAfter: String?) -> SMSProviderError {
        let code: SMSErrorCode
        let permanent: Bool
        switch status {
        case 429: (code, permanent) = (.rateLimited, false)
        case 500...: (code, permanent) = (.providerUnavailable, false)
        case 401, 403: (code, permanent) = (.providerAuthFailed, false)
        case 300..<400: (code, permanent) = (.providerUnavailable, false)
        default: (code, permanent) = (.rejectedByProvider, true)
        }
        return SMSProviderError(
            code,
            detail: "\(provider) answered \(status)\(detail.isEmpty ? "" : ": \(detail)")",
            permanent: permanent,
            retryAfterSeconds: retryAfterSeconds(retryAfter),
            status: status
        )
    }

    static func retryAfterSeconds(_ header: String?) -> Int? {
        header.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { min(max($0, 0), 3600) }
    }
}

/// Shared by the providers: one form POST under a deadline, the answer's status, body and headers.
struct SMSProviderCall: Sendable {
    let http: HTTPClient
    let provider: String
    let timeout: TimeAmount

    func post(
        _ url: String,
        headers: [(String, String)] = [],
        form: [(String, String)]
    ) async throws -> (status: Int, body: Data, headers: HTTPHeaders) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Accept", value: "application/json")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(string: FormEncoding.encode(form)))
        do {
            let response = try await http.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), Data(buffer: bytes), response.headers)
        } catch {
            throw SMSProviderError(.providerUnavailable, detail: "\(provider) unreachable: \(error)", permanent: false)
        }
    }
}
