import Crypto
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdHTTP2
import JWTKit
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOSSL
import Testing

/// A local stand-in for APNs, speaking its protocol: HTTP/2 over TLS only (a certificate made by openssl for the test;
/// a request over HTTP/1.1 is answered 505 and counted), `POST /3/device/{token}` with a provider token that must be an
/// ES256 JWT verified with the team key's public half (`kid` the key id, `iss` the team id, `iat` under an hour old),
/// the headers Apple checks (`apns-topic`, `apns-push-type`, `apns-priority`, `apns-expiration`, `apns-collapse-id`,
/// `apns-id`) and the payload (`aps`, at most 4096 bytes; an alert has `aps.alert.title/body`, a background push
/// `content-available` and priority 5). Errors are Apple's `{"reason": …}`. Device tokens choose the answer:
/// `dead…` 410 Unregistered, `0bad…` 400 BadDeviceToken, `4290…` 429 TooManyRequests, `5003…` 503 once, else 200.
final class FakeAPNs: Sendable {
    struct Delivery: Sendable {
        var deviceToken: String
        var headers: [String: String]
        var payload: Data

        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: payload)) as? [String: Any] ?? [:] }
        var aps: [String: Any] { json["aps"] as? [String: Any] ?? [:] }
    }

    static let keyID = "ABC123DEFG"
    static let teamID = "TEAM123456"
    static let topic = "com.example.notify"
    static let signingKey = P256.Signing.PrivateKey()
    static var p8: String { signingKey.pemRepresentation }

    let directory: URL
    let port = NIOLockedValueBox(0)
    let delivered = NIOLockedValueBox<[Delivery]>([])
    /// Every request: (device token, status answered).
    let answers = NIOLockedValueBox<[(String, Int)]>([])
    let http1Requests = NIOLockedValueBox(0)
    /// Provider tokens answered `ExpiredProviderToken` from now on.
    let expiredTokens = NIOLockedValueBox<Set<String>>([])
    let seenTokens = NIOLockedValueBox<Set<String>>([])
    let failedOnce = NIOLockedValueBox<Set<String>>([])

    var url: String { "https://localhost:\(port.withLockedValue { $0 })" }
    var caFile: String { directory.appendingPathComponent("ca.pem").path }

    /// The push worker's settings for this stand-in.
    var workerSettings: [String: String] {
        [
            "NOTIFY_APNS_URL": url, "NOTIFY_APNS_CA_FILE": caFile, "NOTIFY_APNS_KEY": Self.p8.replacingOccurrences(of: "\n", with: "\\n"),
            "NOTIFY_APNS_KEY_ID": Self.keyID,
            "NOTIFY_APNS_TEAM_ID": Self.teamID, "NOTIFY_APNS_TOPIC": Self.topic,
        ]
    }

    /// Apple's answer to every token used so far, from the next request on: it has expired.
    func expireTokensSeen() { expiredTokens.withLockedValue { $0.formUnion(seenTokens.withLockedValue { $0 }) } }

    private init(directory: URL) { self.directory = directory }

    static func with<T: Sendable>(_ body: @Sendable (FakeAPNs) async throws -> T) async throws -> T {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("apns-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try TLSMailServer.makeCertificates(in: directory)
        let fake = FakeAPNs(directory: directory)
        let app = try fake.makeApplication()
        return try await withThrowingTaskGroup(of: Void.self) { group -> T in
            group.addTask { try await app.run() }
            defer { group.cancelAll() }
            _ = try await eventually("fake APNs listening") { fake.port.withLockedValue { $0 } > 0 ? true : nil }
            return try await body(fake)
        }
    }

    struct Context: RequestContext {
        var coreContext: CoreRequestContextStorage
        /// HTTP/2 requests arrive on stream channels, children of the connection's channel (itself a child of the
        /// listening channel); HTTP/1.1 requests arrive on the connection's channel.
        let http2: Bool

        init(source: ApplicationRequestContextSource) {
            coreContext = .init(source: source)
            http2 = source.channel.parent?.parent != nil
        }
    }

    struct Claims: JWTPayload {
        var iss: IssuerClaim
        var iat: IssuedAtClaim
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func reason(_ status: HTTPResponse.Status, _ reason: String, timestamp: Bool = false) -> Response {
        var object: [String: Any] = ["reason": reason]
        if timestamp { object["timestamp"] = Int(Date().timeIntervalSince1970 * 1000) }
        return Response(
            status: status,
            headers: [.contentType: "application/json", HTTPField.Name("apns-id")!: UUID().uuidString],
            body: .init(byteBuffer: ByteBuffer(data: try! JSONSerialization.data(withJSONObject: object)))
        )
    }

    func makeApplication() throws -> some ApplicationProtocol {
        let router = Router(context: Context.self)
        let keys = JWTKeyCollection()
        let publicKey = try ES256PublicKey(pem: Self.signingKey.publicKey.pemRepresentation)
        router.post("/3/device/:token") { request, context -> Response in
            let deviceToken = context.parameters.get("token") ?? ""
            let response = try await self.answer(request, context: context, deviceToken: deviceToken, keys: keys, publicKey: publicKey)
            self.answers.withLockedValue { $0.append((deviceToken, Int(response.status.code))) }
            return response
        }
        let directory = self.directory
        let tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(directory.appendingPathComponent("server.pem").path).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: directory.appendingPathComponent("server.key").path, format: .pem))
        )
        let port = self.port
        return Application(
            router: router,
            server: try .http2Upgrade(tlsConfiguration: tls),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port ?? 0 } }
        )
    }

    func answer(
        _ request: Request,
        context: Context,
        deviceToken: String,
        keys: JWTKeyCollection,
        publicKey: ES256PublicKey
    ) async throws
        -> Response
    {
        guard context.http2 else {
            http1Requests.withLockedValue { $0 += 1 }
            return Response(status: .init(code: 505, reasonPhrase: "HTTP Version Not Supported"))
        }
        func header(_ name: String) -> String? { request.headers[HTTPField.Name(name)!] }
        // The provider token.
        guard let authorization = header("authorization"), authorization.hasPrefix("bearer ") else {
            return Self.reason(.forbidden, "MissingProviderToken")
        }
        let jwt = String(authorization.dropFirst("bearer ".count))
        await keys.add(ecdsa: publicKey, kid: JWKIdentifier(string: Self.keyID))
        guard let claims = try? await keys.verify(jwt, as: Claims.self), claims.iss.value == Self.teamID else {
            return Self.reason(.forbidden, "InvalidProviderToken")
        }
        seenTokens.withLockedValue { _ = $0.insert(jwt) }
        if claims.iat.value < Date().addingTimeInterval(-3600) || expiredTokens.withLockedValue({ $0.contains(jwt) }) {
            return Self.reason(.forbidden, "ExpiredProviderToken")
        }
        // The headers.
        guard let topic = header("apns-topic") else { return Self.reason(.badRequest, "MissingTopic") }
        guard topic == Self.topic else { return Self.reason(.badRequest, "TopicDisallowed") }
        let pushType = header("apns-push-type") ?? ""
        guard ["alert", "background"].contains(pushType) else { return Self.reason(.badRequest, "InvalidPushType") }
        let priority = header("apns-priority") ?? "10"
        guard priority == "10" || priority == "5", !(pushType == "background" && priority == "10") else {
            return Self.reason(.badRequest, "BadPriority")
        }
        if let expiration = header("apns-expiration"), Int(expiration) == nil { return Self.reason(.badRequest, "BadExpirationDate") }
        if let collapse = header("apns-collapse-id"), collapse.utf8.count > 64 { return Self.reason(.badRequest, "BadCollapseId") }
        if let id = header("apns-id"), UUID(uuidString: id) == nil { return Self.reason(.badRequest, "BadMessageId") }
        guard deviceToken.count >= 64, deviceToken.allSatisfy(\.isHexDigit) else { return Self.reason(.badRequest, "BadDeviceToken") }
        // The payload.
        let body = try await request.body.collect(upTo: 1 << 20)
        guard body.readableBytes > 0 else { return Self.reason(.badRequest, "PayloadEmpty") }
        guard body.readableBytes <= 4096 else { return Self.reason(.contentTooLarge, "PayloadTooLarge") }
        let data = Data(body.readableBytesView)
        guard let json = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], let aps = json["aps"] as? [String: Any] else {
            return Self.reason(.badRequest, "BadPayload")
        }
        if pushType == "alert" {
            guard let alert = aps["alert"] as? [String: Any], alert["title"] is String, alert["body"] is String else {
                return Self.reason(.badRequest, "BadPayload")
            }
        } else if aps["content-available"] as? Int != 1 {
            return Self.reason(.badRequest, "BadPayload")
        }
        // The device.
        if deviceToken.hasPrefix("dead") { return Self.reason(.gone, "Unregistered", timestamp: true) }
        if deviceToken.hasPrefix("0bad") { return Self.reason(.badRequest, "BadDeviceToken") }
        if deviceToken.hasPrefix("4290") { return Self.reason(.tooManyRequests, "TooManyRequests") }
        if deviceToken.hasPrefix("5003"), failedOnce.withLockedValue({ $0.insert(deviceToken).inserted }) {
            return Self.reason(.serviceUnavailable, "ServiceUnavailable")
        }
        var headers: [String: String] = [:]
        for field in request.headers where field.name.canonicalName.hasPrefix("apns-") { headers[field.name.canonicalName] = field.value }
        delivered.withLockedValue { $0.append(Delivery(deviceToken: deviceToken, headers: headers, payload: data)) }
        return Response(status: .ok, headers: [HTTPField.Name("apns-id")!: header("apns-id") ?? UUID().uuidString.lowercased()])
    }

    /// A device token in the stand-in's family (64 hex characters after the prefix's meaning).
    static func deviceToken(_ prefix: String = "a1") -> String {
        let random = (0..<32).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        return String((prefix + random).prefix(64))
    }
}
