import Foundation

/// A rich push notification as the platform describes it, before it is mapped to a provider's format.
public struct PushMessage: Sendable, Equatable {
    public var title: String
    public var body: String
    /// A picture shown with the notification (FCM `notification.image`, Web Push `image`).
    public var imageURL: String?
    /// Where a tap leads (FCM `webpush.fcm_options.link` and `data.link`, Android `click_action` data, Web Push `url`).
    public var link: String?
    /// Custom key/value data delivered to the app.
    public var data: [String: String]
    /// 0–10 as the notification's priority: 7 and up is delivered as high priority/urgency.
    public var priority: Int
    /// How long a provider may hold the message for an offline device.
    public var timeToLive: Int
    /// Messages with the same collapse id replace each other on the device (APNs `apns-collapse-id`, FCM
    /// `collapse_key`): a template sets it as `data.collapse_id`.
    public var collapseID: String?

    public init(
        title: String,
        body: String,
        imageURL: String?,
        link: String?,
        data: [String: String],
        priority: Int,
        timeToLive: Int = 86_400,
        collapseID: String? = nil
    ) {
        self.collapseID = collapseID
        self.title = title
        self.body = body
        self.imageURL = imageURL
        self.link = link
        self.data = data
        self.priority = priority
        self.timeToLive = timeToLive
    }
}

/// What went wrong with one device, as a stable code: what API clients see (with `reason`), never a provider's raw
/// answer, headers or status. The provider's detail goes to the worker's log only (`message`).
public enum PushErrorCode: String, Sendable, CaseIterable {
    /// The token or subscription no longer exists (the device is deactivated).
    case deviceGone = "device_gone"
    /// The provider refused this message as malformed or not allowed.
    case rejectedByProvider = "rejected_by_provider"
    /// The provider asked to slow down (429).
    case rateLimited = "rate_limited"
    /// The provider failed (5xx), timed out or could not be reached.
    case providerUnavailable = "provider_unavailable"
    /// The platform's own credentials were refused (401/403): a configuration problem.
    case providerAuthFailed = "provider_auth_failed"
    /// The provider answered with a redirect, which is never followed.
    case redirected
    /// The endpoint is not allowed (internal address, not a push service): never contacted.
    case endpointRefused = "endpoint_refused"
    /// The subscription's keys or token are malformed.
    case malformedSubscription = "malformed_subscription"
    /// The rendered message is larger than the provider takes.
    case payloadTooLarge = "payload_too_large"
    /// Recent failures of this provider opened its circuit; not tried.
    case circuitOpen = "circuit_open"
    /// This worker has no credentials for the provider.
    case notConfigured = "not_configured"
    /// No provider for the device's platform.
    case unsupportedPlatform = "unsupported_platform"
    /// The attempt's overall deadline passed before the provider answered.
    case timedOut = "timed_out"

    /// A short, fixed explanation, safe to show to API clients.
    public var reason: String {
        switch self {
        case .deviceGone: return "the provider says the token or subscription no longer exists"
        case .rejectedByProvider: return "the provider refused the message"
        case .rateLimited: return "the provider asked to slow down"
        case .providerUnavailable: return "the provider is unavailable"
        case .providerAuthFailed: return "the provider refused the platform's credentials"
        case .redirected: return "the provider answered with a redirect, which is not followed"
        case .endpointRefused: return "the endpoint is not allowed"
        case .malformedSubscription: return "the device's token or keys are malformed"
        case .payloadTooLarge: return "the message is larger than the provider takes"
        case .circuitOpen: return "the provider failed repeatedly; sending is paused"
        case .notConfigured: return "this provider is not configured"
        case .unsupportedPlatform: return "this platform is not supported"
        case .timedOut: return "the provider did not answer in time"
        }
    }
}

/// Why a provider did not take a message, classified for the retry policy and for device hygiene.
public struct PushError: Error, CustomStringConvertible, Sendable {
    public var code: PushErrorCode
    /// For operators (the worker's log): may carry the provider's status and error code.
    public var message: String
    /// Retrying cannot help (bad request, bad token, gone subscription).
    public var permanent: Bool
    /// The token or subscription is dead: the device must be deactivated.
    public var deviceGone: Bool
    public var retryAfterSeconds: Int?

    public init(_ code: PushErrorCode, message: String, permanent: Bool, deviceGone: Bool = false, retryAfterSeconds: Int? = nil) {
        self.code = code
        self.message = message
        self.permanent = permanent
        self.deviceGone = deviceGone
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { message }

    /// 429 and 5xx are transient (with the provider's Retry-After); other statuses are permanent.
    static func http(_ provider: String, status: Int, detail: String, retryAfter: String?, deviceGone: Bool = false) -> PushError {
        let transient = status == 429 || status >= 500
        let code: PushErrorCode
        switch status {
        case _ where deviceGone: code = .deviceGone
        case 429: code = .rateLimited
        case 500...: code = .providerUnavailable
        case 401, 403: code = .providerAuthFailed
        case 413: code = .payloadTooLarge
        case 300..<400: code = .redirected
        default: code = .rejectedByProvider
        }
        return PushError(
            code,
            message: "\(provider) answered \(status)\(detail.isEmpty ? "" : " \(detail)")",
            permanent: !transient,
            deviceGone: deviceGone,
            retryAfterSeconds: retryAfter.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }.map { min(max($0, 0), 3600) }
        )
    }
}

/// Base64url without padding (JWTs, VAPID keys, Web Push subscription keys).
public enum Base64URL {
    public static func encode(_ data: some DataProtocol) -> String {
        Data(data).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public static func decode(_ text: String) -> Data? {
        var base64 = text.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
