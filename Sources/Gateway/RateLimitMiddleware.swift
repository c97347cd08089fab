import Foundation
import HTTPTypes
import Hummingbird
import NotifyHTTP
import RateLimiting
import Telemetry

/// Charges every authenticated call to its credential's bucket (the platform's own services are not limited) and
/// reports the bucket in `RateLimit-*` headers; over the limit, 429 with `Retry-After`.
struct RateLimitMiddleware: RouterMiddleware {
    typealias Context = NotifyRequestContext

    let limiter: RateLimiter
    let limit: RateLimit?

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let limit, let identity = context.identity, !identity.has(.service) else {
            return try await next(request, context)
        }
        let decision = await limiter.check(Self.bucket(identity), limit: limit)
        guard decision.allowed else {
            Telemetry.rateLimited(scope: "key")
            throw APIError.rateLimited(decision, "Too many requests for this credential; try again later")
        }
        var response = try await next(request, context)
        for field in decision.headers where response.headers[field.name] == nil { response.headers.append(field) }
        return response
    }

    static func bucket(_ identity: Identity) -> String {
        "key:" + (identity.keyID?.uuidString.lowercased() ?? identity.client)
    }
}

extension RateDecision {
    var headers: HTTPFields {
        var fields: HTTPFields = [
            .rateLimitLimit: String(limit),
            .rateLimitRemaining: String(remaining),
            .rateLimitReset: String(resetSeconds),
        ]
        if !allowed { fields[.retryAfter] = String(retryAfterSeconds) }
        return fields
    }
}

extension APIError {
    static func rateLimited(_ decision: RateDecision, _ message: String) -> APIError {
        APIError(.tooManyRequests, code: .rateLimited, message: message, headers: decision.headers)
    }
}

extension HTTPField.Name {
    static let rateLimitLimit = HTTPField.Name("RateLimit-Limit")!
    static let rateLimitRemaining = HTTPField.Name("RateLimit-Remaining")!
    static let rateLimitReset = HTTPField.Name("RateLimit-Reset")!
}
