import Foundation
import JWTKit
import NotificationModel

/// The claims of a user's access token: the user, the user's token version when it was issued (a password or email
/// change, or a logout, raises it and so revokes the token), and when the user last gave a password (`auth_time`:
/// refreshing never extends a session past `NOTIFY_JWT_SESSION_MAX_SECONDS` from it).
public struct AccessTokenPayload: JWTPayload {
    var sub: SubjectClaim
    var iss: IssuerClaim
    var aud: AudienceClaim
    var iat: IssuedAtClaim
    var exp: ExpirationClaim
    var ver: Int
    var authTime: Int

    enum CodingKeys: String, CodingKey {
        case sub, iss, aud, iat, exp, ver
        case authTime = "auth_time"
    }

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// A verified token: whose it is, its token version and when its session began.
public struct VerifiedToken: Sendable, Equatable {
    public var subject: UUID
    public var version: Int
    public var authTime: Date
}

/// Issues and verifies HS256 tokens with the signing key from configuration, for one audience: users' access tokens
/// (`notify-users`) and operators' sessions (`notify-admin`, with a secret of their own) never pass for each other.
public struct AccessTokens: Sendable {
    let keys: JWTKeyCollection
    public let issuer: String
    public let audience: String
    public let lifetime: Int

    public static func make(secret: String, issuer: String, audience: String = "notify-users", lifetime: Int) async -> AccessTokens {
        let keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
        return AccessTokens(keys: keys, issuer: issuer, audience: audience, lifetime: lifetime)
    }

    public func issue(userID: UUID, version: Int = 0, authTime: Date = Date()) async throws -> String {
        let now = Date()
        let payload = AccessTokenPayload(
            sub: .init(value: userID.lowercased),
            iss: .init(value: issuer),
            aud: .init(value: [audience]),
            iat: .init(value: now),
            exp: .init(value: now.addingTimeInterval(TimeInterval(lifetime))),
            ver: version,
            authTime: Int(authTime.timeIntervalSince1970)
        )
        return try await keys.sign(payload)
    }

    /// A valid token of ours, or nil (bad signature, expired, foreign issuer or audience, no version).
    public func verifyToken(_ token: String) async -> VerifiedToken? {
        guard let payload = try? await keys.verify(token, as: AccessTokenPayload.self), payload.iss.value == issuer,
            payload.aud.value.contains(audience), let subject = UUID(text: payload.sub.value)
        else { return nil }
        return VerifiedToken(subject: subject, version: payload.ver, authTime: Date(timeIntervalSince1970: TimeInterval(payload.authTime)))
    }

    /// The subject of a valid token of ours, or nil.
    public func verify(_ token: String) async -> UUID? {
        await verifyToken(token)?.subject
    }
}
