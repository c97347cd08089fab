import Foundation
import HTTPTypes
import Hummingbird
import NotificationModel
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
        guard let limit, let identity = context.identity, !identity.has(.service), !Self.chargedByHandler(request) else {
            return try await next(request, context)
        }
        let decision = await limiter.check(Self.bucket(identity), limit: limit)
        guard decision.allowed else { throw Self.refused(decision) }
        return Self.withHeaders(try await next(request, context), of: decision)
    }

    /// 429: the credential's bucket refused.
    static func refused(_ decision: RateDecision) -> APIError {
        Telemetry.rateLimited(scope: "key")
        return APIError.rateLimited(decision, "Too many requests for this credential; try again later")
    }

    /// The credential's `RateLimit-*` headers on an answer.
    static func withHeaders(_ response: Response, of decision: RateDecision?) -> Response {
        guard let decision else { return response }
        var response = response
        for field in decision.headers where response.headers[field.name] == nil { response.headers.append(field) }
        return response
    }

    /// A single create charges the credential's bucket itself, together with its recipient's, in one round trip to
    /// Redis (`NotificationController.create`); a request it refuses before that is charged to the credential alone.
    static func chargedByHandler(_ request: Request) -> Bool {
        request.method == .post && (request.uri.path == "/api/v1/notifications/" || request.uri.path == "/api/v1/notifications")
    }

    static func bucket(_ identity: Identity) -> String {
        "key:" + (identity.keyID?.lowercased ?? identity.client)
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
