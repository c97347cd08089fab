import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NotificationModel

/// The outermost middleware of every service: takes or makes the correlation id, puts it on the logger and the
/// response, and turns every error into the envelope, so no stack trace, SQL or secret ever reaches a client.
public struct EnvelopeMiddleware: RouterMiddleware {
    public typealias Context = NotifyRequestContext

    /// Errors that mean a dependency cannot answer now (PostgreSQL away, a deadline passed): 503, not 500.
    let unavailable: @Sendable (any Error) -> Bool
    /// Cross-origin access for browsers (nil: none).
    let cors: CORSPolicy?

    public init(unavailable: @escaping @Sendable (any Error) -> Bool = { _ in false }, cors: CORSPolicy? = nil) {
        self.unavailable = unavailable
        self.cors = cors
    }

    public func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        let correlationID = Self.correlationID(from: request)
        context.correlationID = correlationID
        context.logger[metadataKey: "correlation_id"] = .string(correlationID)
        var response: Response
        do {
            if let preflight = cors?.preflight(request) {
                response = preflight
            } else {
                response = try await next(request, context)
            }
        } catch let error as APIError {
            response = error.response()
        } catch let error as HTTPError {
            response = Self.map(error).response()
        } catch  where unavailable(error) {
            context.logger.warning("dependency unavailable", metadata: ["error": .string(String(reflecting: error))])
            var refusal = APIError.dependencyUnavailable("A dependency of this service cannot answer right now; try again shortly")
            refusal.headers[.retryAfter] = "2"
            response = refusal.response()
        } catch {
            // The detail goes to the log for operators (bind values are never part of it); the client gets only the code.
            context.logger.error(
                "unhandled error",
                metadata: ["error_type": .string(String(reflecting: type(of: error))), "error": .string(String(reflecting: error))]
            )
            response = APIError.internalError.response()
        }
        response.headers[.correlationID] = correlationID
        cors?.decorate(&response, for: request)
        return response
    }

    static func correlationID(from request: Request) -> String {
        if let value = request.headers[.correlationID], (1...128).contains(value.utf8.count),
            value.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        {
            return value
        }
        return UUID.random().lowercased
    }

    static func map(_ error: HTTPError) -> APIError {
        switch error.status {
        case .notFound: return APIError(.notFound, code: .notFound, message: "No such resource")
        case .methodNotAllowed: return APIError(.methodNotAllowed, code: .methodNotAllowed, message: "Method not allowed on this resource")
        case .contentTooLarge: return APIError(.contentTooLarge, code: .validationError, message: "The request body is too large")
        case .unauthorized: return .unauthorized
        default:
            if error.status.code < 500 {
                return APIError(error.status, code: .validationError, message: error.body ?? "The request could not be processed")
            }
            return .internalError
        }
    }
}
