import Foundation
import JWTKit

/// The claims of a user's access token.
public struct AccessTokenPayload: JWTPayload {
    var sub: SubjectClaim
    var iss: IssuerClaim
    var iat: IssuedAtClaim
    var exp: ExpirationClaim

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Issues and verifies HS256 access tokens with the signing key from configuration.
public struct AccessTokens: Sendable {
    let keys: JWTKeyCollection
    public let issuer: String
    public let lifetime: Int

    public static func make(secret: String, issuer: String, lifetime: Int) async -> AccessTokens {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return AccessTokens(keys: keys, issuer: issuer, lifetime: lifetime)
    }

    public func issue(userID: UUID) async throws -> String {
        let now = Date()
        let payload = AccessTokenPayload(
            sub: .init(value: userID.uuidString.lowercased()),
            iss: .init(value: issuer),
            iat: .init(value: now),
            exp: .init(value: now.addingTimeInterval(TimeInterval(lifetime)))
        )
        return try await keys.sign(payload)
    }

    /// The user a valid token of ours names, or nil (bad signature, expired, foreign issuer).
    public func verify(_ token: String) async -> UUID? {
        guard let payload = try? await keys.verify(token, as: AccessTokenPayload.self), payload.iss.value == issuer else { return nil }
        return UUID(uuidString: payload.sub.value)
    }
}
