import Foundation
import Hummingbird

/// The router every process starts from: request metrics, the envelope (with the errors that mean a dependency cannot
/// answer now), `/health` with the process's checks, `/metrics`, and the OpenAPI document where there is one. The
/// process adds its own routes behind its credential middleware.
public func serviceRouter(
    service: String,
    checks: [HealthCheck],
    unavailable: @escaping @Sendable (any Error) -> Bool,
    metrics: MetricsRoute = MetricsRoute(),
    document: Data? = nil,
    cors: CORSPolicy? = nil
) -> Router<NotifyRequestContext> {
    let router = Router(context: NotifyRequestContext.self)
    router.add(middleware: MetricsMiddleware())
    router.add(middleware: EnvelopeMiddleware(unavailable: unavailable, cors: cors))
    HealthRoutes(service: service, checks: checks).register(on: router)
    metrics.register(on: router)
    if let document { OpenAPIRoute(document: document).register(on: router) }
    return router
}
