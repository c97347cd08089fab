import Credentials
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NotifyHTTP

/// Authenticates clients by API key. Verified keys are remembered for a few seconds so the hot path does not hit
/// the database on every request; a revoked key stops working within that time.
struct APIKeyMiddleware: RouterMiddleware {
    typealias Context = NotifyRequestContext

    let store: APIKeyStore
    let serviceKey: ServiceKeyMiddleware
    let cacheSeconds: Double
    private let cache = NIOLockedValueBox([String: (identity: Identity, expires: ContinuousClock.Instant)]())

    init(store: APIKeyStore, serviceKey: ServiceKeyMiddleware, cacheSeconds: Double = 10) {
        self.store = store
        self.serviceKey = serviceKey
        self.cacheSeconds = cacheSeconds
    }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let key = request.credential else { throw APIError.unauthorized }
        var context = context
        // The platform's own services (delivery reports) present the service key.
        context.identity = serviceKey.matches(key) ? Identity(client: "service", keyID: nil, scopes: ["service"]) : try await identity(for: key)
        context.logger[metadataKey: "client"] = .string(context.identity?.client ?? "")
        return try await next(request, context)
    }

    func identity(for key: String) async throws -> Identity {
        let hash = APIKeyStore.hash(key)
        let now = ContinuousClock.now
        if let cached = cache.withLockedValue({ $0[hash] }), cached.expires > now { return cached.identity }
        let record: APIKeyRecord?
        do {
            record = try await store.find(key: key)
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
