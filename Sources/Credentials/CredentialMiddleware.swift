import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NotificationModel
import NotifyHTTP

/// Authenticates every call of a service: the platform's service key (other services of the platform), a user's
/// access token (a JWT from the user service, which reaches only that user's records), or a client API key.
/// Verified keys are remembered for `cacheSeconds` so the hot path does not hit the database on every request;
/// a revoked key stops working within that time.
public struct CredentialMiddleware: RouterMiddleware {
    public typealias Context = NotifyRequestContext

    /// Nil where the platform's processes have no business (admin: operators and `admin`-scoped keys only).
    let serviceKey: ServiceKeyMiddleware?
    let tokens: AccessTokens?
    /// Whether a token is still current (its version is the user's): a revoked token is 401. Throws when that
    /// cannot be known (503).
    let tokenCheck: (@Sendable (VerifiedToken) async throws -> Bool)?
    let store: APIKeyStore
    let cacheSeconds: Double
    private let cache = NIOLockedValueBox([String: (identity: Identity, expires: ContinuousClock.Instant)]())

    public init(
        serviceKey: ServiceKeyMiddleware?,
        tokens: AccessTokens?,
        tokenCheck: (@Sendable (VerifiedToken) async throws -> Bool)? = nil,
        store: APIKeyStore,
        cacheSeconds: Double = 10
    ) {
        self.serviceKey = serviceKey
        self.tokens = tokens
        self.tokenCheck = tokenCheck
        self.store = store
        self.cacheSeconds = cacheSeconds
    }

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let credential = request.credential else { throw APIError.unauthorized }
        var context = context
        let identity = try await identity(for: credential)
        context.identity = identity
        context.logger[metadataKey: "client"] = .string(identity.client)
        return try await next(request, context)
    }

    public func identity(for credential: String) async throws -> Identity {
        if let serviceKey, serviceKey.matches(credential) { return Identity(client: "service", keyID: nil, scopes: [Scope.service]) }
        if credential.utf8.split(separator: UInt8(ascii: ".")).count == 3 {
            guard let tokens, let token = await tokens.verifyToken(credential) else { throw APIError.unauthorized }
            if let tokenCheck {
                let current: Bool
                do { current = try await tokenCheck(token) } catch {
                    throw APIError.dependencyUnavailable("The token cannot be checked right now; try again shortly")
                }
                guard current else { throw APIError.unauthorized }
            }
            let userID = token.subject
            return Identity(client: "user:\(userID.lowercased)", keyID: nil, scopes: ["user"], userID: userID)
        }
        // Our keys are `nk_<prefix>_<secret>`; anything else cannot be one, so it costs no lookup.
        guard credential.hasPrefix("nk_"), credential.utf8.count <= 128 else { throw APIError.unauthorized }
        let hash = APIKeyStore.hash(credential)
        let now = ContinuousClock.now
        if let cached = cache.withLockedValue({ $0[hash] }), cached.expires > now { return cached.identity }
        let record: APIKeyRecord?
        do {
            record = try await store.find(key: credential)
        } catch {
            throw APIError.dependencyUnavailable("The credential store is unavailable; try again shortly")
        }
        guard let record else { throw APIError.unauthorized }
        let identity = Identity(client: record.client, keyID: record.id, scopes: Set(record.scopes))
        cache.withLockedValue { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[hash] = (identity, now + .seconds(cacheSeconds))
        }
        return identity
    }
}
