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

    public init(title: String, body: String, imageURL: String?, link: String?, data: [String: String], priority: Int, timeToLive: Int = 86_400) {
        self.title = title
        self.body = body
        self.imageURL = imageURL
        self.link = link
        self.data = data
        self.priority = priority
        self.timeToLive = timeToLive
    }
}

/// A push destination: an FCM registration token, or a Web Push subscription.
public enum PushTarget: Sendable, Equatable {
    case fcm(token: String)
    case webPush(endpoint: String, p256dh: String, auth: String)
}

/// Why a provider did not take a message, classified for the retry policy and for device hygiene.
public struct PushError: Error, CustomStringConvertible, Sendable {
    public var message: String
    /// Retrying cannot help (bad request, bad token, gone subscription).
    public var permanent: Bool
    /// The token or subscription is dead: the device must be deactivated.
    public var deviceGone: Bool
    public var retryAfterSeconds: Int?

    public init(message: String, permanent: Bool, deviceGone: Bool = false, retryAfterSeconds: Int? = nil) {
        self.message = message
        self.permanent = permanent
        self.deviceGone = deviceGone
        self.retryAfterSeconds = retryAfterSeconds
    }

    public var description: String { message }

    /// 429 and 5xx are transient (with the provider's Retry-After); other statuses are permanent.
    static func http(_ provider: String, status: Int, detail: String, retryAfter: String?, deviceGone: Bool = false) -> PushError {
        let transient = status == 429 || status >= 500
        return PushError(
            message: "\(provider) answered \(status)\(detail.isEmpty ? "" : " \(detail)")",
            permanent: !transient,
            deviceGone: deviceGone,
            retryAfterSeconds: retryAfter.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
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
