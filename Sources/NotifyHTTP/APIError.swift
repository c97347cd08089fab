import HTTPTypes
import Hummingbird

/// Every failure a client can see: a status, a stable code and a message for humans. Mapped to the envelope in one place.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var details: [FieldError]?
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: String, message: String, details: [FieldError]? = nil, headers: HTTPFields = [:]) {
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        response()
    }

    public func response() -> Response {
        let envelope = Envelope<EmptyPayload>(
            success: false,
            data: nil,
            error: code,
            message: message,
            meta: PageMeta(total: 0, limit: 0, page: 1),
            details: details
        )
        return .json(status, envelope, headers: headers)
    }

    public static func validation(_ details: [FieldError], message: String = "Request validation failed") -> APIError {
        APIError(.badRequest, code: "VALIDATION_ERROR", message: message, details: details)
    }

    public static let unauthorized = APIError(
        .unauthorized,
        code: "UNAUTHORIZED",
        message: "A valid API key or bearer token is required",
        headers: [.wwwAuthenticate: "Bearer"]
    )

    public static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, code: "FORBIDDEN", message: message)
    }

    public static func notFound(_ code: String = "NOT_FOUND", _ message: String) -> APIError {
        APIError(.notFound, code: code, message: message)
    }

    public static func dependencyUnavailable(_ message: String) -> APIError {
        APIError(.serviceUnavailable, code: "DEPENDENCY_UNAVAILABLE", message: message)
    }

    public static let internalError = APIError(.internalServerError, code: "INTERNAL_ERROR", message: "An internal error occurred")
}
