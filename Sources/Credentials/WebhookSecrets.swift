import Crypto
import Foundation
import NotifyConfig
import OutboundPolicy

/// The signing secrets of client webhooks. A secret must be read again to sign, so it cannot be kept as a hash: it is
/// sealed with AES-GCM under a key derived from `NOTIFY_WEBHOOK_SECRET_KEY`, which only the admin service (creates
/// endpoints) and the relay (signs deliveries) hold. The secret itself is shown once, at creation.
public struct WebhookSecrets: Sendable {
    let key: SymmetricKey
    /// The smallest `NOTIFY_WEBHOOK_SECRET_KEY` accepted, in bytes.
    public static let minimumKeyLength = 32

    public init(key: String) {
        self.key = SymmetricKey(data: SHA256.hash(data: Data(("notify webhook secrets\u{0}" + key).utf8)))
    }

    /// A new secret: `whsec_` and 32 random bytes, base64url.
    public static func generate() -> String {
        let bytes = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        return "whsec_"
            + bytes.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    public func seal(_ secret: String) throws -> Data {
        guard let combined = try AES.GCM.seal(Data(secret.utf8), using: key).combined else { throw SealFailed() }
        return combined
    }

    public func open(_ sealed: Data) throws -> String {
        String(decoding: try AES.GCM.open(try AES.GCM.SealedBox(combined: sealed), using: key), as: UTF8.self)
    }

    struct SealFailed: Error {}
}

/// The signature of a webhook request: `X-Notify-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
/// The receiver recomputes it over the raw body and refuses a timestamp too far from its clock (replay).
public enum WebhookSignature {
    public static let header = "X-Notify-Signature"

    public static func sign(secret: String, timestamp: Int, body: Data) -> String {
        var message = Data("\(timestamp).".utf8)
        message.append(body)
        let mac = HMAC<SHA256>.authenticationCode(for: message, using: SymmetricKey(data: Data(secret.utf8)))
        return "t=\(timestamp),v1=" + mac.map { String(format: "%02x", $0) }.joined()
    }

    /// True when `header` carries a v1 signature of `body` under `secret` at a timestamp within `tolerance` seconds.
    public static func verify(header: String, secret: String, body: Data, now: Int, tolerance: Int = 300) -> Bool {
        var timestamp: Int?
        var signatures: [String] = []
        for part in header.split(separator: ",") {
            let pair = part.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2 else { continue }
            if pair[0] == "t" { timestamp = Int(pair[1]) } else if pair[0] == "v1" { signatures.append(pair[1]) }
        }
        guard let timestamp, abs(now - timestamp) <= tolerance else { return false }
        let expected = sign(secret: secret, timestamp: timestamp, body: body).split(separator: "=").last.map(String.init) ?? ""
        return signatures.contains { candidate in
            candidate.utf8.count == expected.utf8.count && zip(candidate.utf8, expected.utf8).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
        }
    }
}

/// The settings of client webhooks shared by admin (seals secrets, checks URLs) and the relay (signs, sends).
public enum WebhookSettings {
    /// `NOTIFY_WEBHOOK_SECRET_KEY` (at least 32 bytes), or nil when unset.
    public static func secrets(_ env: EnvironmentReader, problems: inout [String]) -> WebhookSecrets? {
        guard let key = env.optionalString("NOTIFY_WEBHOOK_SECRET_KEY") else { return nil }
        if key.utf8.count < WebhookSecrets.minimumKeyLength {
            problems.append("NOTIFY_WEBHOOK_SECRET_KEY must be at least \(WebhookSecrets.minimumKeyLength) bytes")
        }
        return WebhookSecrets(key: key)
    }

    /// https on the default port, any public host, never an internal address; loopback only with
    /// `NOTIFY_WEBHOOK_ALLOW_LOOPBACK=true` (development and tests).
    public static func policy(_ env: EnvironmentReader) -> EndpointPolicy {
        EndpointPolicy(allowedHosts: [], allowLoopback: env.optionalString("NOTIFY_WEBHOOK_ALLOW_LOOPBACK") == "true")
    }
}
