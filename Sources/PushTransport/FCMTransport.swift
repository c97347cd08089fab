import AsyncHTTPClient
import Foundation
import JWTKit
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A Google service account as its JSON key file describes it (the fields FCM needs).
public struct ServiceAccount: Sendable, Decodable {
    public var projectID: String
    public var clientEmail: String
    public var privateKeyID: String?
    public var privateKey: String
    public var tokenURI: String

    enum CodingKeys: String, CodingKey {
        case projectID = "project_id"
        case clientEmail = "client_email"
        case privateKeyID = "private_key_id"
        case privateKey = "private_key"
        case tokenURI = "token_uri"
    }

    /// Parses a key file; the error names what is missing, never the key.
    public static func parse(_ data: Data) throws -> ServiceAccount {
        do {
            let account = try JSONDecoder().decode(ServiceAccount.self, from: data)
            _ = try Insecure.RSA.PrivateKey(pem: account.privateKey)
            return account
        } catch let error as DecodingError {
            if case .keyNotFound(let key, _) = error { throw ServiceAccountError(problem: "no \(key.stringValue) in the service account JSON") }
            throw ServiceAccountError(problem: "the service account is not valid JSON of the expected shape")
        } catch {
            throw ServiceAccountError(problem: "the service account's private_key is not an RSA private key in PEM")
        }
    }
}

public struct ServiceAccountError: Error, CustomStringConvertible {
    public var problem: String
    public var description: String { problem }
}

/// OAuth2 for FCM: a JWT signed with the service account's key (RS256) is exchanged at the token endpoint for an
/// access token, which is cached until shortly before it expires. One refresh at a time, however many senders wait.
public actor FCMAccessTokens {
    struct Assertion: JWTPayload {
        var iss: IssuerClaim
        var scope: String
        var aud: AudienceClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    let account: ServiceAccount
    let tokenURL: String
    let http: HTTPClient
    let keys = JWTKeyCollection()
    let logger: Logger
    var keysReady = false
    var cached: (token: String, expires: ContinuousClock.Instant)?
    var refreshing: Task<(String, Int), any Error>?
    public private(set) var refreshCount = 0

    public static let scope = "https://www.googleapis.com/auth/firebase.messaging"

    public init(account: ServiceAccount, tokenURL: String? = nil, http: HTTPClient, logger: Logger) {
        self.account = account
        self.tokenURL = tokenURL ?? account.tokenURI
        self.http = http
        self.logger = logger
    }

    /// A valid access token: the cached one while it has more than a minute left, else a fresh one.
    public func token() async throws -> String {
        if let cached, cached.expires - .seconds(60) > .now { return cached.token }
        let task: Task<(String, Int), any Error>
        if let refreshing {
            task = refreshing
        } else {
            task = Task { try await self.fetch() }
            refreshing = task
        }
        defer { refreshing = nil }
        let (token, lifetime) = try await task.value
        cached = (token, .now + .seconds(lifetime))
        return token
    }

    /// Forgets the cached token (after the provider refused it).
    public func invalidate() { cached = nil }

    func fetch() async throws -> (String, Int) {
        if !keysReady {
            await keys.add(
                rsa: try Insecure.RSA.PrivateKey(pem: account.privateKey),
                digestAlgorithm: .sha256,
                kid: account.privateKeyID.map { JWKIdentifier(string: $0) }
            )
            keysReady = true
        }
        let now = Date()
        let assertion = try await keys.sign(
            Assertion(
                iss: .init(value: account.clientEmail),
                scope: Self.scope,
                aud: .init(value: [tokenURL]),
                iat: .init(value: now),
                exp: .init(value: now.addingTimeInterval(3600))
            ),
            kid: account.privateKeyID.map { JWKIdentifier(string: $0) }
        )
        var request = HTTPClientRequest(url: tokenURL)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.body = .bytes(ByteBuffer(string: "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=\(assertion)"))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(10))
        } catch {
            throw PushError(.providerUnavailable, message: "fcm token endpoint unreachable: \(error)", permanent: false)
        }
        let body = try await response.body.collect(upTo: 1 << 20)
        refreshCount += 1
        guard response.status == .ok,
            let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any],
            let token = object["access_token"] as? String
        else {
            let code = Int(response.status.code)
            // A refused service account is a configuration problem, not a bad device: permanent, but no device is gone.
            throw PushError.http("fcm token endpoint", status: code, detail: "", retryAfter: response.headers.first(name: "Retry-After"))
        }
        let lifetime = (object["expires_in"] as? Int) ?? 3600
        logger.info("fcm access token obtained", metadata: ["expires_in": "\(lifetime)"])
        return (token, lifetime)
    }
}

/// FCM HTTP v1: `POST {base}/v1/projects/{project}/messages:send` with an OAuth2 access token.
public struct FCMTransport: Sendable {
    let http: HTTPClient
    let baseURL: String
    let projectID: String
    public let tokens: FCMAccessTokens

    public init(http: HTTPClient, baseURL: String, projectID: String, tokens: FCMAccessTokens) {
        self.http = http
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.projectID = projectID
        self.tokens = tokens
    }

    /// The FCM v1 message for one registration token: notification (title, body, image), data (custom data plus the
    /// link and ids), and per-platform options: Android priority/TTL/click action, APNs priority, Web Push link.
    public static func payload(_ message: PushMessage, token: String, messageID: String) -> [String: Any] {
        var notification: [String: Any] = ["title": message.title, "body": message.body]
        if let image = message.imageURL { notification["image"] = image }
        var data = message.data
        data["message_id"] = messageID
        if let link = message.link { data["link"] = link }
        let high = message.priority >= 7
        var android: [String: Any] = ["priority": high ? "HIGH" : "NORMAL", "ttl": "\(message.timeToLive)s"]
        var androidNotification: [String: Any] = [:]
        if let image = message.imageURL { androidNotification["image"] = image }
        if message.link != nil { androidNotification["click_action"] = "OPEN_LINK" }
        if !androidNotification.isEmpty { android["notification"] = androidNotification }
        var apnsHeaders = ["apns-priority": high ? "10" : "5"]
        if let collapse = message.collapseID {
            android["collapse_key"] = collapse
            apnsHeaders["apns-collapse-id"] = APNsTransport.collapseID(collapse)
        }
        var apns: [String: Any] = ["headers": apnsHeaders]
        if let image = message.imageURL { apns["fcm_options"] = ["image": image] }
        var webpush: [String: Any] = ["headers": ["Urgency": high ? "high" : "normal", "TTL": "\(message.timeToLive)"]]
        if let link = message.link { webpush["fcm_options"] = ["link": link] }
        return ["token": token, "notification": notification, "data": data, "android": android, "apns": apns, "webpush": webpush]
    }

    /// Returns the provider's message name. A refused access token is refreshed and the send tried once more.
    public func send(_ message: PushMessage, token: String, messageID: String) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: ["message": Self.payload(message, token: token, messageID: messageID)])
        var attempt = 0
        while true {
            attempt += 1
            let accessToken = try await tokens.token()
            var request = HTTPClientRequest(url: "\(baseURL)/v1/projects/\(projectID)/messages:send")
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Authorization", value: "Bearer \(accessToken)")
            request.body = .bytes(ByteBuffer(data: body))
            let response: HTTPClientResponse
            do {
                response = try await http.execute(request, timeout: .seconds(10))
            } catch {
                throw PushError(.providerUnavailable, message: "fcm unreachable: \(error)", permanent: false)
            }
            let bytes = try await response.body.collect(upTo: 1 << 20)
            let code = Int(response.status.code)
            let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any]
            if (200..<300).contains(code) { return object?["name"] as? String ?? "" }
            if code == 401, attempt == 1 {
                await tokens.invalidate()
                continue
            }
            throw Self.classify(status: code, body: object, retryAfter: response.headers.first(name: "Retry-After"))
        }
    }

    /// FCM's error body: `{"error": {"code", "message", "status", "details": [{"@type": "...FcmError", "errorCode"}]}}`.
    /// UNREGISTERED, SENDER_ID_MISMATCH and an INVALID_ARGUMENT about the token mean the device is gone.
    static func classify(status: Int, body: [String: Any]?, retryAfter: String?) -> PushError {
        let error = body?["error"] as? [String: Any]
        let details = error?["details"] as? [[String: Any]] ?? []
        let fcmCode = details.compactMap { $0["errorCode"] as? String }.first ?? (error?["status"] as? String) ?? ""
        let text = (error?["message"] as? String) ?? ""
        let tokenProblem =
            fcmCode == "UNREGISTERED" || fcmCode == "SENDER_ID_MISMATCH"
            || (fcmCode == "INVALID_ARGUMENT" && text.lowercased().contains("registration token"))
        return PushError.http("fcm", status: status, detail: fcmCode, retryAfter: retryAfter, deviceGone: tokenProblem)
    }
}
