import AsyncHTTPClient
import Crypto
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NIOSSL
import NotificationModel

/// An APNs signing key as Apple hands it out: a `.p8` file (PKCS#8 PEM, P-256) with its key id, and the team id.
public struct APNsKey: Sendable {
    public var keyID: String
    public var teamID: String
    let privateKey: ES256PrivateKey

    /// Parses the key; the error names what is wrong, never the key.
    public init(p8 pem: String, keyID: String, teamID: String) throws {
        guard keyID.count == 10, keyID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw APNsKeyError(problem: "NOTIFY_APNS_KEY_ID must be the 10-character key id Apple shows with the key")
        }
        guard teamID.count == 10, teamID.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            throw APNsKeyError(problem: "NOTIFY_APNS_TEAM_ID must be the 10-character team id of the developer account")
        }
        do {
            privateKey = try ES256PrivateKey(pem: pem)
        } catch {
            throw APNsKeyError(problem: "the APNs key is not a P-256 private key in PEM (the .p8 file Apple provides)")
        }
        self.keyID = keyID
        self.teamID = teamID
    }
}

public struct APNsKeyError: Error, CustomStringConvertible {
    public var problem: String
    public var description: String { problem }
}

/// The provider authentication token (a JWT signed ES256 with the team's key: `kid` in the header, `iss` = team id and
/// `iat` in the claims). Apple takes a token for an hour and refuses new ones more often than every 20 minutes, so one
/// token is shared by every send and replaced when it is `refreshAfter` old (50 minutes by default), or once when Apple
/// says it expired.
public actor APNsTokens {
    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var iat: IssuedAtClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    let key: APNsKey
    let refreshAfter: TimeInterval
    let now: @Sendable () -> Date
    let keys = JWTKeyCollection()
    var keysReady = false
    var current: (token: String, issuedAt: Date)?
    /// How many tokens were signed (one per refresh).
    public private(set) var issued = 0

    public init(key: APNsKey, refreshAfter: TimeInterval = 50 * 60, now: @escaping @Sendable () -> Date = { Date() }) {
        self.key = key
        self.refreshAfter = refreshAfter
        self.now = now
    }

    public func token() async throws -> String {
        let now = now()
        if let current, now.timeIntervalSince(current.issuedAt) < refreshAfter, now >= current.issuedAt { return current.token }
        if !keysReady {
            await keys.add(ecdsa: key.privateKey, kid: JWKIdentifier(string: key.keyID))
            keysReady = true
        }
        // Whole seconds: what `iat` carries.
        let issuedAt = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let token = try await keys.sign(Claims(iss: .init(value: key.teamID), iat: .init(value: issuedAt)), kid: JWKIdentifier(string: key.keyID))
        current = (token, issuedAt)
        issued += 1
        return token
    }

    /// Apple said `token` expired: the next call signs a new one, unless another send already replaced it.
    public func expired(_ token: String) {
        if current?.token == token { current = nil }
    }
}

/// APNs over HTTP/2 with token-based authentication: `POST {base}/3/device/{token}`.
public struct APNsTransport: Sendable {
    public static let productionURL = "https://api.push.apple.com"
    public static let sandboxURL = "https://api.sandbox.push.apple.com"
    /// Apple's limit for a notification's JSON (VoIP excepted).
    public static let maximumPayload = 4096

    let http: HTTPClient
    let baseURL: String
    /// The app's bundle id (`apns-topic`).
    let topic: String
    public let tokens: APNsTokens

    public init(http: HTTPClient, baseURL: String, topic: String, tokens: APNsTokens) {
        self.http = http
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.topic = topic
        self.tokens = tokens
    }

    /// An HTTP client for APNs: HTTP/2 (negotiated by ALPN), no redirects, and optionally a CA file trusted instead of
    /// the system's roots (a TLS-inspecting proxy, or a local stand-in).
    public static func makeClient(caFile: String?) -> HTTPClient {
        var tls = TLSConfiguration.makeClientConfiguration()
        if let caFile { tls.trustRoots = .file(caFile) }
        var configuration = HTTPClient.Configuration(
            tlsConfiguration: tls,
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: .seconds(10))
        )
        configuration.httpVersion = .automatic
        return HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
    }

    /// The request Apple gets for one message: headers and JSON payload.
    public struct Request: Sendable {
        public var headers: [(String, String)]
        public var payload: Data
        public var background: Bool
    }

    /// A message with neither title nor body is a background (data-only) push: `content-available`, priority 5.
    /// Otherwise an alert: `aps.alert.title/body`, `mutable-content` when there is an image for a service extension to
    /// fetch, and the custom data beside `aps`. The collapse id (at most 64 bytes) is hashed when longer.
    public static func request(_ message: PushMessage, messageID: String, topic: String, now: Date = Date()) throws -> Request {
        let background = message.title.isEmpty && message.body.isEmpty
        var aps: [String: Any] = [:]
        if background {
            aps["content-available"] = 1
        } else {
            aps["alert"] = ["title": message.title, "body": message.body]
            aps["sound"] = "default"
            if message.imageURL != nil { aps["mutable-content"] = 1 }
        }
        var payload: [String: Any] = [:]
        for (key, value) in message.data where key != "aps" { payload[key] = value }
        if let image = message.imageURL { payload["image_url"] = image }
        if let link = message.link { payload["link"] = link }
        payload["aps"] = aps
        let body = try JSONSerialization.data(withJSONObject: payload, options: [.sortedKeys, .withoutEscapingSlashes])
        guard body.count <= maximumPayload else {
            throw PushError(.payloadTooLarge, message: "apns payload is \(body.count) bytes (limit \(maximumPayload))", permanent: true)
        }
        var headers: [(String, String)] = [
            ("apns-topic", topic),
            ("apns-push-type", background ? "background" : "alert"),
            // Background pushes must go at priority 5; alerts follow the notification's priority.
            ("apns-priority", !background && message.priority >= 7 ? "10" : "5"),
            // 0 asks Apple not to store it at all; otherwise it may hold the message until then.
            ("apns-expiration", message.timeToLive <= 0 ? "0" : String(Int(now.timeIntervalSince1970) + message.timeToLive)),
        ]
        if let id = UUID(text: messageID) { headers.append(("apns-id", id.lowercased)) }
        if let collapse = message.collapseID { headers.append(("apns-collapse-id", Self.collapseID(collapse))) }
        return Request(headers: headers, payload: body, background: background)
    }

    /// Apple takes at most 64 bytes; a longer key is replaced by its SHA-256 (hex), which keeps distinct keys distinct.
    static func collapseID(_ key: String) -> String {
        key.utf8.count <= 64 ? key : SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// Sends to one device token; returns the `apns-id` Apple answered with. A token Apple says expired is replaced
    /// and the send tried once more.
    public func send(_ message: PushMessage, deviceToken: String, messageID: String) async throws -> String {
        guard deviceToken.count >= 64, deviceToken.allSatisfy(\.isHexDigit) else {
            throw PushError(.malformedSubscription, message: "apns device token is not hexadecimal", permanent: true, deviceGone: true)
        }
        let prepared = try Self.request(message, messageID: messageID, topic: topic)
        var attempt = 0
        while true {
            attempt += 1
            let token = try await tokens.token()
            var request = HTTPClientRequest(url: "\(baseURL)/3/device/\(deviceToken.lowercased())")
            request.method = .POST
            request.headers.add(name: "authorization", value: "bearer \(token)")
            request.headers.add(name: "content-type", value: "application/json")
            for (name, value) in prepared.headers { request.headers.add(name: name, value: value) }
            request.body = .bytes(ByteBuffer(data: prepared.payload))
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .seconds(10))
            } catch {
                throw PushError(.providerUnavailable, message: "apns unreachable: \(error)", permanent: false)
            }
            let bytes = try await response.body.collect(upTo: 64 << 10)
            let status = Int(response.status.code)
            if status == 200 { return response.headers.first(name: "apns-id") ?? "" }
            let reason = ((try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any])?["reason"] as? String ?? ""
            if reason == "ExpiredProviderToken", attempt == 1 {
                await tokens.expired(token)
                continue
            }
            throw Self.classify(status: status, reason: reason, retryAfter: response.headers.first(name: "retry-after"))
        }
    }

    /// Apple's status and `reason`: a dead token (`BadDeviceToken`, `DeviceTokenNotForTopic`, 410 `Unregistered`,
    /// `ExpiredToken`) deactivates the device; 429 and 5xx are transient; a refused provider token is the platform's
    /// configuration; anything else about the request is permanent.
    static func classify(status: Int, reason: String, retryAfter: String?) -> PushError {
        let gone = status == 410 || ["BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered", "ExpiredToken"].contains(reason)
        var error = PushError.http("apns", status: status, detail: reason, retryAfter: retryAfter, deviceGone: gone)
        if reason == "PayloadTooLarge" { error.code = .payloadTooLarge }
        if ["TooManyRequests", "TooManyProviderTokenUpdates"].contains(reason) {
            error.code = .rateLimited
            error.permanent = false
        }
        if ["ExpiredProviderToken", "InvalidProviderToken", "MissingProviderToken", "BadCertificate", "BadCertificateEnvironment"].contains(reason) {
            error.code = .providerAuthFailed
        }
        return error
    }
}
