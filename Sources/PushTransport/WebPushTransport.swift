import AsyncHTTPClient
import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import OutboundPolicy

/// The application server's VAPID key pair (RFC 8292): a P-256 key; the public key goes to browsers as
/// `applicationServerKey`, the private key signs the JWT of every request.
public struct VAPIDKey: Sendable {
    public let privateKey: P256.Signing.PrivateKey
    /// `mailto:` or `https:` contact for the push service's operators (the JWT's `sub`).
    public let subject: String

    /// From the base64url raw private scalar (32 bytes), as `web-push generate-vapid-keys` and
    /// `notify admin vapid-keys` print it.
    public init(privateKeyBase64URL: String, subject: String) throws {
        guard let raw = Base64URL.decode(privateKeyBase64URL), raw.count == 32 else { throw VAPIDKeyError.malformed }
        guard subject.hasPrefix("mailto:") || subject.hasPrefix("https://") else { throw VAPIDKeyError.badSubject }
        self.privateKey = try P256.Signing.PrivateKey(rawRepresentation: raw)
        self.subject = subject
    }

    public init(privateKey: P256.Signing.PrivateKey, subject: String) {
        self.privateKey = privateKey
        self.subject = subject
    }

    /// The uncompressed public key, base64url (65 bytes): the `k` of the Authorization header.
    public var publicKeyBase64URL: String { Base64URL.encode(privateKey.publicKey.x963Representation) }

    /// An ES256 JWT for this push service origin: `{"typ":"JWT","alg":"ES256"}.{"aud","exp","sub"}`.
    public func token(audience: String, expires: Date) throws -> String {
        let header = Base64URL.encode(Data(#"{"typ":"JWT","alg":"ES256"}"#.utf8))
        let claims: [String: Any] = ["aud": audience, "exp": Int(expires.timeIntervalSince1970), "sub": subject]
        let payload = Base64URL.encode(try JSONSerialization.data(withJSONObject: claims, options: [.sortedKeys, .withoutEscapingSlashes]))
        let signingInput = "\(header).\(payload)"
        let signature = try privateKey.signature(for: Data(signingInput.utf8))
        return "\(signingInput).\(Base64URL.encode(signature.rawRepresentation))"
    }
}

public enum VAPIDKeyError: Error, CustomStringConvertible {
    case malformed, badSubject
    public var description: String {
        switch self {
        case .malformed: return "the VAPID private key must be 32 bytes, base64url (see `notify admin vapid-keys`)"
        case .badSubject: return "the VAPID subject must be a mailto: or https: URL"
        }
    }
}

/// Message encryption for Web Push (RFC 8291) in the `aes128gcm` content coding (RFC 8188), one record.
public enum WebPushEncryption {
    public struct InvalidSubscription: Error, CustomStringConvertible {
        public var description: String { "the subscription's p256dh or auth key is malformed" }
    }

    /// Encrypts `plaintext` for the subscription (`p256dh`: the user agent's P-256 public key, `auth`: its 16-byte
    /// secret). A fresh sender key and salt are made per message unless given (tests).
    public static func encrypt(
        _ plaintext: Data,
        p256dh: Data,
        auth: Data,
        senderKey: P256.KeyAgreement.PrivateKey = P256.KeyAgreement.PrivateKey(),
        salt: Data? = nil,
        recordSize: UInt32 = 4096
    ) throws -> Data {
        guard auth.count == 16, let receiver = try? P256.KeyAgreement.PublicKey(x963Representation: p256dh) else {
            throw InvalidSubscription()
        }
        let salt = salt ?? Data((0..<16).map { _ in UInt8.random(in: 0...255) })
        let senderPublic = senderKey.publicKey.x963Representation
        let shared = try senderKey.sharedSecretFromKeyAgreement(with: receiver)
        // IKM = HKDF(salt = auth, ikm = ECDH secret, info = "WebPush: info" || 0x00 || ua_public || as_public, 32)
        var keyInfo = Data("WebPush: info".utf8)
        keyInfo.append(0)
        keyInfo.append(p256dh)
        keyInfo.append(senderPublic)
        let ikm = shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: auth, sharedInfo: keyInfo, outputByteCount: 32)
        let cek = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Data("Content-Encoding: aes128gcm\0".utf8), outputByteCount: 16)
        let nonce = HKDF<SHA256>.deriveKey(inputKeyMaterial: ikm, salt: salt, info: Data("Content-Encoding: nonce\0".utf8), outputByteCount: 12)
            .withUnsafeBytes { Data($0) }
        // One record: the plaintext, then the last-record delimiter 0x02.
        var padded = plaintext
        padded.append(2)
        guard padded.count + 16 <= Int(recordSize) else { throw WebPushPayloadTooLarge(size: plaintext.count) }
        let sealed = try AES.GCM.seal(padded, using: cek, nonce: try AES.GCM.Nonce(data: nonce))
        var body = salt
        withUnsafeBytes(of: recordSize.bigEndian) { body.append(contentsOf: $0) }
        body.append(UInt8(senderPublic.count))
        body.append(senderPublic)
        body.append(sealed.ciphertext)
        body.append(sealed.tag)
        return body
    }
}

public struct WebPushPayloadTooLarge: Error, CustomStringConvertible {
    public var size: Int
    public var description: String { "the push payload (\(size) bytes) is larger than a Web Push record allows" }
}

/// Sends to a Web Push subscription: VAPID authentication, encrypted payload, TTL and Urgency headers.
/// 404/410 mean the subscription is gone; 429 and 5xx are transient.
///
/// Endpoints come from users: every one is checked against the `EndpointPolicy` and reached only at an address
/// checked to be public (`PinnedHTTPClients`); redirects are not followed.
public struct WebPushTransport: Sendable {
    let clients: PinnedHTTPClients
    let vapid: VAPIDKey
    private let tokens = NIOLockedValueBox([String: (token: String, expires: Date)]())

    public init(clients: PinnedHTTPClients, vapid: VAPIDKey) {
        self.clients = clients
        self.vapid = vapid
    }

    /// The origin a subscription's endpoint belongs to (scheme, host, port): the VAPID audience, and the unit the
    /// worker's circuit breakers count failures by.
    public static func origin(of endpoint: String) -> String {
        guard let url = URL(string: endpoint), let scheme = url.scheme?.lowercased(), let host = url.host?.lowercased() else { return "invalid" }
        return "\(scheme)://\(host)" + (url.port.map { ":\($0)" } ?? "")
    }

    /// The JSON a service worker receives: `{title, body, image?, url?, data, notification_id}`.
    public static func payload(_ message: PushMessage, messageID: String) throws -> Data {
        var object: [String: Any] = ["title": message.title, "body": message.body, "data": message.data, "notification_id": messageID]
        if let image = message.imageURL { object["image"] = image }
        if let link = message.link { object["url"] = link }
        return try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
    }

    /// The VAPID JWT for an endpoint's origin, reused for an hour (valid for twelve).
    func authorization(for endpoint: URL) throws -> String {
        guard endpoint.scheme != nil, endpoint.host != nil else {
            throw PushError(.malformedSubscription, message: "webpush: bad endpoint", permanent: true)
        }
        let origin = Self.origin(of: endpoint.absoluteString)
        let now = Date()
        if let cached = tokens.withLockedValue({ $0[origin] }), cached.expires.timeIntervalSince(now) > 11 * 3600 {
            return "vapid t=\(cached.token), k=\(vapid.publicKeyBase64URL)"
        }
        let expires = now.addingTimeInterval(12 * 3600)
        let token = try vapid.token(audience: origin, expires: expires)
        tokens.withLockedValue { $0[origin] = (token, expires) }
        return "vapid t=\(token), k=\(vapid.publicKeyBase64URL)"
    }

    /// Returns the push service's message location (RFC 8030 §5), if its 2xx answer gave a plausible one.
    public func send(_ message: PushMessage, endpoint: String, p256dh: String, auth: String, messageID: String) async throws -> String {
        guard let url = URL(string: endpoint), let p256dhBytes = Base64URL.decode(p256dh), let authBytes = Base64URL.decode(auth) else {
            throw PushError(.malformedSubscription, message: "webpush: malformed subscription", permanent: true, deviceGone: true)
        }
        let http: HTTPClient
        do {
            http = try await clients.client(for: url)
        } catch let refused as EndpointRefused {
            // Never contacted. The subscription can never be delivered to: the device is deactivated.
            throw PushError(.endpointRefused, message: "webpush: \(refused.reason)", permanent: true, deviceGone: true)
        }
        let body: Data
        do {
            body = try WebPushEncryption.encrypt(try Self.payload(message, messageID: messageID), p256dh: p256dhBytes, auth: authBytes)
        } catch let error as WebPushEncryption.InvalidSubscription {
            throw PushError(.malformedSubscription, message: "webpush: \(error)", permanent: true, deviceGone: true)
        } catch {
            throw PushError(.payloadTooLarge, message: "webpush: \(error)", permanent: true)
        }
        var request = HTTPClientRequest(url: endpoint)
        request.method = .POST
        request.headers.add(name: "Authorization", value: try authorization(for: url))
        request.headers.add(name: "Content-Encoding", value: "aes128gcm")
        request.headers.add(name: "Content-Type", value: "application/octet-stream")
        request.headers.add(name: "TTL", value: String(message.timeToLive))
        request.headers.add(name: "Urgency", value: message.priority >= 7 ? "high" : (message.priority <= 1 ? "low" : "normal"))
        request.body = .bytes(ByteBuffer(data: body))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(10))
        } catch {
            throw PushError(.providerUnavailable, message: "webpush: push service unreachable: \(error)", permanent: false)
        }
        _ = try? await response.body.collect(upTo: 64 << 10)
        let code = Int(response.status.code)
        if (200..<300).contains(code) { return Self.messageLocation(response.headers.first(name: "Location"), endpoint: url) }
        throw PushError.http(
            "webpush",
            status: code,
            detail: "",
            retryAfter: response.headers.first(name: "Retry-After"),
            deviceGone: code == 404 || code == 410
        )
    }

    /// The Location of a 2xx answer, kept only when it is an https URL on the endpoint's own host, short and plain:
    /// whatever else a push service (or anyone posing as one) puts there is not handed to API clients.
    static func messageLocation(_ location: String?, endpoint: URL) -> String {
        guard let location, location.count <= 512, location.unicodeScalars.allSatisfy({ $0.isASCII && $0.value > 0x20 && $0.value < 0x7f }),
            let url = URL(string: location), url.scheme == endpoint.scheme, url.host?.lowercased() == endpoint.host?.lowercased()
        else { return "" }
        return location
    }
}
