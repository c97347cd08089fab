import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel
import NotifyConfig

/// How a new email address is verified: the token's lifetime, the page that takes the token, and the gateway the
/// verification mail is sent through.
public struct EmailVerificationSettings: Sendable {
    /// The gateway's base URL (`NOTIFY_GATEWAY_URL`): the mail goes through the platform like any other.
    public var gatewayURL: String
    /// `NOTIFY_EMAIL_VERIFICATION_URL`: the client application's page that posts the token to
    /// `/api/v1/users/verify-email/`, with `{token}` where the token goes. Without it the mail carries the token as a code.
    public var linkTemplate: String?
    /// `NOTIFY_EMAIL_VERIFICATION_TTL_SECONDS`: how long a token works (default one day).
    public var ttlSeconds: Int

    public init(gatewayURL: String, linkTemplate: String? = nil, ttlSeconds: Int = 86_400) {
        self.gatewayURL = gatewayURL
        self.linkTemplate = linkTemplate
        self.ttlSeconds = ttlSeconds
    }

    public init(_ env: EnvironmentReader, problems: inout [String]) {
        let port = env.int("NOTIFY_GATEWAY_PORT", default: 8000, problems: &problems)
        let host = env.string("NOTIFY_SERVICES_HOST", default: "127.0.0.1")
        gatewayURL = env.string("NOTIFY_GATEWAY_URL", default: "http://\(host):\(port)")
        linkTemplate = env.optionalString("NOTIFY_EMAIL_VERIFICATION_URL")
        ttlSeconds = env.int("NOTIFY_EMAIL_VERIFICATION_TTL_SECONDS", default: 86_400, problems: &problems)
        if ttlSeconds < 60 || ttlSeconds > 30 * 86_400 {
            problems.append("NOTIFY_EMAIL_VERIFICATION_TTL_SECONDS must be between 60 and 2592000")
        }
        if let linkTemplate {
            let scheme = URL(string: linkTemplate.replacingOccurrences(of: "{token}", with: "t"))?.scheme
            if !linkTemplate.contains("{token}") || !["https", "http"].contains(scheme ?? "") {
                problems.append("NOTIFY_EMAIL_VERIFICATION_URL must be an http(s) URL containing {token}")
            }
        }
    }
}

/// Single-use verification tokens: 32 random bytes, base64url; only their SHA-256 is stored.
enum VerificationToken {
    static func make() -> (token: String, hash: Data) {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let token = Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
        return (token, hash(token))
    }

    static func hash(_ token: String) -> Data { Data(SHA256.hash(data: Data(token.utf8))) }
}

/// Sends the verification of a new address through the gateway, with the service key: the notification
/// `notify.email_verification` for the user, delivered to the new address (`deliver_to`), which only the platform's
/// services may name.
struct VerificationMailer: Sendable {
    let settings: EmailVerificationSettings
    let serviceKey: String
    var http: HTTPClient = .shared

    struct NotSent: Error, CustomStringConvertible {
        var description: String
        /// The gateway's Retry-After when it refused for a rate limit (429): the caller is told to slow down too.
        var retryAfter: String? = nil
    }

    func send(userID: UUID, name: String, to address: String, token: String, tokenHash: Data, correlationID: String) async throws {
        let link = settings.linkTemplate.map { $0.replacingOccurrences(of: "{token}", with: token) }
        let body: [String: Any] = [
            "notification_type": "email",
            "user_id": userID.lowercased,
            "template_code": "notify.email_verification",
            // One notification per token: a retry of this call is a replay, a new request a new mail.
            "request_id": "email-verification:" + tokenHash.prefix(16).map { String(format: "%02x", $0) }.joined(),
            "priority": 10,
            "variables": [
                "name": name, "token": token, "link": link ?? "", "has_link": link != nil,
                "expires_in_minutes": settings.ttlSeconds / 60,
            ],
            "deliver_to": ["email": address],
        ]
        var request = HTTPClientRequest(url: "\(settings.gatewayURL)/api/v1/notifications/")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(serviceKey)")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "X-Correlation-ID", value: correlationID)
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        let response = try await http.execute(request, timeout: .seconds(10))
        let answer = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .accepted || response.status == .ok else {
            // The gateway's envelope names the reason (e.g. TEMPLATE_NOT_FOUND); it goes to the log, not to the user.
            let code = (try? JSONSerialization.jsonObject(with: Data(buffer: answer)) as? [String: Any])?["error"] as? String
            throw NotSent(
                description: "gateway answered \(response.status.code) \(code ?? "")",
                retryAfter: response.status == .tooManyRequests ? response.headers.first(name: "Retry-After") ?? "1" : nil
            )
        }
    }
}
