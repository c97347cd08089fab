import Foundation

/// Where a notification sent to an address goes instead of a user (the API's `recipient`): an email address, a phone
/// number (E.164), or one push destination. The client owns consent: no preferences apply; the suppression list does.
/// Stored as `notifications.recipient` (jsonb) in this shape.
public struct DirectRecipient: Sendable, Codable, Equatable, Hashable {
    public var email: String?
    public var phone: String?
    /// Push: `fcm`, `apns` or `webpush`.
    public var platform: String?
    /// Push: the registration token (fcm, apns) or the subscription endpoint (webpush).
    public var token: String?
    /// Web Push subscription keys (base64url).
    public var p256dh: String?
    public var auth: String?

    public init(
        email: String? = nil,
        phone: String? = nil,
        platform: String? = nil,
        token: String? = nil,
        p256dh: String? = nil,
        auth: String? = nil
    ) {
        self.email = email
        self.phone = phone
        self.platform = platform
        self.token = token
        self.p256dh = p256dh
        self.auth = auth
    }

    /// The address the suppression list and the per-recipient rate limit know it by: the email address (lowercased),
    /// the phone number, or the push token or endpoint.
    public var key: String {
        if let email { return email.lowercased() }
        if let phone { return phone }
        return "\(platform ?? "push"):\(token ?? "")"
    }

    /// The canonical JSON text (sorted keys), as stored and hashed.
    public var json: String {
        (try? JSONEncoder.canonical.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
