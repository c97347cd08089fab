import Foundation
import OutboundPolicy

/// Token formats per platform, so a malformed token is refused at registration (or, sent to directly, at the gateway)
/// rather than at send time.
public enum DeviceValidation {
    /// FCM registration tokens: URL-safe characters, in practice 100–300 long.
    public static func fcm(_ token: String) -> String? {
        guard (8...4096).contains(token.count),
            token.unicodeScalars.allSatisfy({ CharacterSet.alphanumerics.contains($0) || "_-:.".unicodeScalars.contains($0) }),
            token.allSatisfy(\.isASCII)
        else { return "must be an FCM registration token (letters, digits, '_', '-', ':', '.')" }
        return nil
    }

    /// APNs device tokens: 32 bytes or more, hex-encoded.
    public static func apns(_ token: String) -> String? {
        guard token.count >= 64, token.count <= 200, token.count % 2 == 0, token.allSatisfy(\.isHexDigit) else {
            return "must be an APNs device token (at least 64 hexadecimal characters)"
        }
        return nil
    }

    /// Web Push: an https endpoint of a push service the policy allows (never an internal address), the
    /// subscription's P-256 public key (65 bytes) and auth secret (16 bytes), base64url.
    public static func webpush(endpoint: String, p256dh: String?, auth: String?, policy: EndpointPolicy) -> [FieldError] {
        var errors: [FieldError] = []
        if let reason = policy.refusal(endpoint: endpoint) {
            errors.append(FieldError(field: "endpoint", message: reason))
        }
        if base64URLDecode(p256dh ?? "")?.count != 65 || base64URLDecode(p256dh ?? "")?.first != 0x04 {
            errors.append(FieldError(field: "keys.p256dh", message: "must be the base64url uncompressed P-256 public key (65 bytes)"))
        }
        if base64URLDecode(auth ?? "")?.count != 16 {
            errors.append(FieldError(field: "keys.auth", message: "must be the base64url 16-byte auth secret"))
        }
        return errors
    }

    public static func base64URLDecode(_ text: String) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}
