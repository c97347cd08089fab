import Crypto
import Foundation

/// The signed part of a one-click unsubscribe link (RFC 8058): which user turns which category's email off. The
/// email worker signs, the user service verifies; both hold `NOTIFY_UNSUBSCRIBE_SECRET`. A token names one user and
/// one category, carries no expiry (a link in an old email keeps working) and can do nothing else.
///
/// Form: base64url(16 bytes of the user id + the category in UTF-8) "." base64url(HMAC-SHA256 over "unsubscribe:v1:"
/// + those bytes).
public struct UnsubscribeSigner: Sendable {
    let key: SymmetricKey

    public static let minimumSecretLength = 32

    public init(secret: String) { key = SymmetricKey(data: Data(secret.utf8)) }

    public func token(userID: UUID, category: String) -> String {
        let payload = Self.payload(userID: userID, category: category)
        return Self.base64URL(payload) + "." + Self.base64URL(Data(mac(payload)))
    }

    /// The user and category a genuine token names; nil for anything else.
    public func verify(_ token: String) -> (userID: UUID, category: String)? {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, token.count <= 512, let payload = Self.fromBase64URL(String(parts[0])), payload.count > 16,
            let given = Self.fromBase64URL(String(parts[1])),
            HMAC<SHA256>.isValidAuthenticationCode(given, authenticating: Self.signed(payload), using: key)
        else { return nil }
        let id = payload.prefix(16).withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
        guard let category = String(data: payload.dropFirst(16), encoding: .utf8), !category.isEmpty else { return nil }
        return (id, category)
    }

    func mac(_ payload: Data) -> HashedAuthenticationCode<SHA256> {
        HMAC<SHA256>.authenticationCode(for: Self.signed(payload), using: key)
    }

    static func signed(_ payload: Data) -> Data { Data("unsubscribe:v1:".utf8) + payload }

    static func payload(userID: UUID, category: String) -> Data {
        var bytes = withUnsafeBytes(of: userID.uuid) { Data($0) }
        bytes.append(Data(category.utf8))
        return bytes
    }

    static func base64URL(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func fromBase64URL(_ text: String) -> Data? {
        guard text.utf8.allSatisfy({ $0.isASCIIAlphanumeric || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: "_") }) else { return nil }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }
}

extension UInt8 {
    fileprivate var isASCIIAlphanumeric: Bool {
        (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(self) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(self)
            || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(self)
    }
}
