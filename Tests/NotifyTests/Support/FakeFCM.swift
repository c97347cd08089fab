import Foundation
import HTTPTypes
import Hummingbird
import JWTKit
import NIOConcurrencyHelpers
import NIOFoundationCompat
import _CryptoExtras

/// Local stand-ins for the push providers, which live on the internet (so doubles are allowed), speaking their real
/// protocols:
/// - FCM HTTP v1's OAuth2 token endpoint (`POST /token`): verifies the RS256 JWT assertion against the service
///   account's public key, issues short access tokens;
/// - FCM's `POST /v1/projects/{project}/messages:send`: requires a token it issued; answers by registration token:
///   `dead-…` 404 UNREGISTERED, `invalid-…` 400 INVALID_ARGUMENT, `flaky-…` 503 UNAVAILABLE once (Retry-After: 1),
///   `busy-…` always 429 QUOTA_EXCEEDED (Retry-After: 2), anything else 200 `{"name"}`, with FCM's error JSON;
/// - a Web Push service (`POST /webpush/{id}`): records each request; ids `gone-…` answer 410, `redirect-…` 307 to
///   `/webpush/internal-…`, `leaky-…` 201 with a Location on another host, `bad-…` 400 with a body; others 201;
/// - OneSignal's `POST /onesignal/notifications`: requires `Authorization: Key {oneSignalKey}` and the app id, one
///   subscription id, headings/contents unless `content_available`; answers as OneSignal does, by subscription id:
///   `dead…` 200 with an empty id and `invalid_player_ids`, `4290…` 429 (Retry-After: 2), `5003…` 503 once,
///   else 200 `{"id"}`; a repeated `idempotency_key` gets the first answer and is not delivered again.
final class FakeFCM: Sendable {
    struct Attempt: Sendable {
        var token: String
        var status: Int
    }

    struct WebPushRequest: Sendable {
        var id: String
        var authorization: String
        var ttl: String?
        var urgency: String?
        var contentEncoding: String?
        var body: Data
    }

    static let project = "test-project"
    static let keyID = "test-key-1"
    static let clientEmail = "notify@test-project.iam.gserviceaccount.com"
    /// One RSA key for the whole test run (making one takes a moment).
    static let serviceAccountKey: _RSA.Signing.PrivateKey = try! _RSA.Signing.PrivateKey(keySize: .bits2048)

    let received = NIOLockedValueBox<[Data]>([])
    let attempts = NIOLockedValueBox<[Attempt]>([])
    let webPushes = NIOLockedValueBox<[WebPushRequest]>([])
    let issuedTokens = NIOLockedValueBox<Set<String>>([])
    let tokenRequests = NIOLockedValueBox(0)
    let failedOnce = NIOLockedValueBox<Set<String>>([])
    let port = NIOLockedValueBox<Int>(0)
    /// OneSignal requests accepted (one per idempotency key) and every answer given.
    let oneSignalReceived = NIOLockedValueBox<[Data]>([])
    let oneSignalAnswers = NIOLockedValueBox<[(String, Int)]>([])
    let oneSignalIDs = NIOLockedValueBox<[String: String]>([:])
    static let oneSignalAppID = "5eb5a37e-b458-11e3-ac11-000c2940e62c"
    static let oneSignalKey = "os_v2_app_test_rest_api_key"
    /// The push worker's settings for the OneSignal stand-in.
    var oneSignalSettings: [String: String] {
        ["NOTIFY_ONESIGNAL_URL": "\(url)/onesignal", "NOTIFY_ONESIGNAL_APP_ID": Self.oneSignalAppID, "NOTIFY_ONESIGNAL_API_KEY": Self.oneSignalKey]
    }
    /// The `expires_in` of issued access tokens.
    let tokenLifetime = NIOLockedValueBox(3600)

    var url: String { "http://127.0.0.1:\(port.withLockedValue { $0 })" }

    /// The service account JSON a push worker is configured with (its token_uri points here).
    var serviceAccountJSON: String {
        let object: [String: Any] = [
            "type": "service_account", "project_id": Self.project, "private_key_id": Self.keyID,
            "private_key": Self.serviceAccountKey.pemRepresentation, "client_email": Self.clientEmail,
            "token_uri": "\(url)/token",
        ]
        return String(decoding: try! JSONSerialization.data(withJSONObject: object, options: [.withoutEscapingSlashes]), as: UTF8.self)
    }

    func oneSignalDelivered() -> [[String: Any]] {
        oneSignalReceived.withLockedValue { $0 }.compactMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }
    }

    func messages() -> [[String: Any]] {
        received.withLockedValue { $0 }.compactMap { (try? JSONSerialization.jsonObject(with: $0)) as? [String: Any] }
    }

    struct Assertion: JWTPayload {
        var iss: IssuerClaim
        var scope: String
        var aud: AudienceClaim
        var iat: IssuedAtClaim
        var exp: ExpirationClaim
        func verify(using algorithm: some JWTAlgorithm) async throws { try exp.verifyNotExpired() }
    }

    static func fcmError(_ status: Int, _ state: String, _ code: String, _ message: String, headers: HTTPFields = [:]) -> Response {
        let body: [String: Any] = [
            "error": [
                "code": status, "message": message, "status": state,
                "details": [["@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code]],
            ]
        ]
        var fields = headers
        fields[.contentType] = "application/json; charset=UTF-8"
        return Response(
            status: .init(code: status),
            headers: fields,
            body: .init(byteBuffer: ByteBuffer(data: try! JSONSerialization.data(withJSONObject: body)))
        )
    }

    static func json(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(data: try! JSONSerialization.data(withJSONObject: object)))
        )
    }

    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        let keys = JWTKeyCollection()
        router.post("/token") { request, _ -> Response in
            let body = String(buffer: try await request.body.collect(upTo: 1 << 20))
            var form: [String: String] = [:]
            for pair in body.split(separator: "&") {
                let parts = pair.split(separator: "=", maxSplits: 1).map { String($0).removingPercentEncoding ?? String($0) }
                if parts.count == 2 { form[parts[0]] = parts[1] }
            }
            guard form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer", let assertion = form["assertion"] else {
                return Self.json(.badRequest, ["error": "unsupported_grant_type"])
            }
            await keys.add(
                rsa: try Insecure.RSA.PublicKey(pem: Self.serviceAccountKey.publicKey.pemRepresentation),
                digestAlgorithm: .sha256,
                kid: JWKIdentifier(string: Self.keyID)
            )
            guard let claims = try? await keys.verify(assertion, as: Assertion.self), claims.iss.value == Self.clientEmail,
                claims.scope == "https://www.googleapis.com/auth/firebase.messaging", claims.aud.value.contains("\(self.url)/token")
            else {
                return Self.json(.badRequest, ["error": "invalid_grant", "error_description": "Invalid JWT Signature."])
            }
            let token = "ya29.fake-\(UUID().uuidString.lowercased())"
            self.issuedTokens.withLockedValue { _ = $0.insert(token) }
            self.tokenRequests.withLockedValue { $0 += 1 }
            return Self.json(.ok, ["access_token": token, "expires_in": self.tokenLifetime.withLockedValue { $0 }, "token_type": "Bearer"])
        }
        router.post("/v1/projects/:project/**") { request, context -> Response in
            guard request.uri.path.hasSuffix("/messages:send") else { return Response(status: .notFound) }
            let bearer = request.headers[.authorization].map { String($0.dropFirst("Bearer ".count)) } ?? ""
            guard self.issuedTokens.withLockedValue({ $0.contains(bearer) }) else {
                return Self.fcmError(401, "UNAUTHENTICATED", "UNAUTHENTICATED", "Request had invalid authentication credentials.")
            }
            let body = try await request.body.collect(upTo: 1 << 20)
            let data = Data(body.readableBytesView)
            let message = ((try? JSONSerialization.jsonObject(with: data)) as? [String: Any])?["message"] as? [String: Any]
            let token = message?["token"] as? String ?? ""
            let response: Response
            if token.hasPrefix("dead-") {
                response = Self.fcmError(404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
            } else if token.hasPrefix("invalid-") {
                response = Self.fcmError(400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
            } else if token.hasPrefix("busy-") {
                response = Self.fcmError(429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.", headers: [.retryAfter: "2"])
            } else if token.hasPrefix("flaky-"), self.failedOnce.withLockedValue({ $0.insert(token).inserted }) {
                response = Self.fcmError(503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", headers: [.retryAfter: "1"])
            } else {
                self.received.withLockedValue { $0.append(data) }
                let project = context.parameters.get("project") ?? "unknown"
                response = Self.json(.ok, ["name": "projects/\(project)/messages/\(UInt64.random(in: 1...UInt64.max))"])
            }
            self.attempts.withLockedValue { $0.append(Attempt(token: token, status: Int(response.status.code))) }
            return response
        }
        router.post("/webpush/:id") { request, context -> Response in
            let id = context.parameters.get("id") ?? ""
            let body = try await request.body.collect(upTo: 1 << 20)
            self.webPushes.withLockedValue {
                $0.append(
                    WebPushRequest(
                        id: id,
                        authorization: request.headers[.authorization] ?? "",
                        ttl: request.headers[HTTPField.Name("TTL")!],
                        urgency: request.headers[HTTPField.Name("Urgency")!],
                        contentEncoding: request.headers[.contentEncoding],
                        body: Data(body.readableBytesView)
                    )
                )
            }
            if id.hasPrefix("gone-") { return Response(status: .gone) }
            // Hostile push services: a redirect inward, a Location pointing elsewhere, a refusal with a body.
            if id.hasPrefix("redirect-") { return Response(status: .temporaryRedirect, headers: [.location: "\(self.url)/webpush/internal-\(id)"]) }
            if id.hasPrefix("leaky-") {
                return Response(status: .created, headers: [.location: "http://169.254.169.254/latest/meta-data/iam/security-credentials/role"])
            }
            if id.hasPrefix("bad-") {
                return Response(status: .badRequest, body: .init(byteBuffer: ByteBuffer(string: "secret-provider-detail: internal stack trace")))
            }
            return Response(status: .created, headers: [.location: "\(self.url)/webpush/messages/\(UUID().uuidString.lowercased())"])
        }
        router.post("/onesignal/notifications") { request, _ -> Response in
            guard request.headers[.authorization] == "Key \(Self.oneSignalKey)" else {
                return Self.json(.forbidden, ["errors": ["Access denied.  Please include an 'Authorization: Key' header with a valid API key"]])
            }
            let data = Data(try await request.body.collect(upTo: 1 << 20).readableBytesView)
            guard let body = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
                return Self.json(.badRequest, ["errors": ["Bad request - please check your parameters"]])
            }
            let subscriptions = body["include_subscription_ids"] as? [String] ?? []
            let hasContents = (body["contents"] as? [String: String])?["en"] != nil
            guard body["app_id"] as? String == Self.oneSignalAppID, subscriptions.count == 1,
                hasContents || body["content_available"] as? Bool == true
            else {
                return Self.json(.badRequest, ["errors": ["app_id, include_subscription_ids and contents are required"]])
            }
            let subscription = subscriptions[0]
            let key = body["idempotency_key"] as? String ?? UUID().uuidString
            if let earlier = self.oneSignalIDs.withLockedValue({ $0[key] }) {
                self.oneSignalAnswers.withLockedValue { $0.append((subscription, 200)) }
                return Self.json(.ok, ["id": earlier, "external_id": NSNull()])
            }
            let response: Response
            if subscription.hasPrefix("dead") {
                response = Self.json(.ok, ["id": "", "errors": ["invalid_player_ids": [subscription]]])
            } else if subscription.hasPrefix("4290") {
                response = Response(
                    status: .tooManyRequests,
                    headers: [.retryAfter: "2"],
                    body: .init(byteBuffer: ByteBuffer(string: #"{"errors":["API rate limit exceeded"]}"#))
                )
            } else if subscription.hasPrefix("5003"), self.failedOnce.withLockedValue({ $0.insert(subscription).inserted }) {
                response = Self.json(.serviceUnavailable, ["errors": ["Service Unavailable"]])
            } else {
                let id = UUID().uuidString.lowercased()
                self.oneSignalIDs.withLockedValue { $0[key] = id }
                self.oneSignalReceived.withLockedValue { $0.append(data) }
                response = Self.json(.ok, ["id": id, "external_id": NSNull()])
            }
            self.oneSignalAnswers.withLockedValue { $0.append((subscription, Int(response.status.code))) }
            return response
        }
        let port = self.port
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port ?? 0 } }
        )
    }
}
