import Crypto
import Foundation

/// Twilio's `X-Twilio-Signature` for form POSTs (status callbacks, inbound messages): the base64 HMAC-SHA1, keyed
/// with the account's auth token, of the full URL Twilio called followed by every POST parameter's name and value,
/// the parameters sorted by name (then by value, for a repeated name).
public enum TwilioSignature {
    public static func sign(url: String, parameters: [(String, String)], authToken: String) -> String {
        let mac = HMAC<Insecure.SHA1>.authenticationCode(
            for: Data(signedText(url: url, parameters: parameters).utf8),
            using: SymmetricKey(data: Data(authToken.utf8))
        )
        return Data(mac).base64EncodedString()
    }

    /// Whether `signature` is the one Twilio would send; the comparison takes the same time wherever they differ.
    public static func verify(signature: String, url: String, parameters: [(String, String)], authToken: String) -> Bool {
        guard let given = Data(base64Encoded: signature.trimmingCharacters(in: .whitespaces)) else { return false }
        return HMAC<Insecure.SHA1>.isValidAuthenticationCode(
            given,
            authenticating: Data(signedText(url: url, parameters: parameters).utf8),
            using: SymmetricKey(data: Data(authToken.utf8))
        )
    }

    /// Sorted by bytes, as Twilio's libraries sort (names are ASCII; values only matter for a repeated name).
    static func signedText(url: String, parameters: [(String, String)]) -> String {
        let sorted = parameters.sorted { left, right in
            left.0 == right.0 ? left.1.utf8.lexicographicallyPrecedes(right.1.utf8) : left.0.utf8.lexicographicallyPrecedes(right.0.utf8)
        }
        return url + sorted.map { $0.0 + $0.1 }.joined()
    }
}
