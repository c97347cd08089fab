import HTTPTypes
import Hummingbird

/// The stable codes in the envelope's `error` field, the closed set clients may branch on (documented in each
/// service's OpenAPI document).
public enum ErrorCode: String, CaseIterable, Sendable {
    case apiKeyNotFound = "API_KEY_NOT_FOUND"
    case busy = "BUSY"
    case channelDisabled = "CHANNEL_DISABLED"
    case dependencyUnavailable = "DEPENDENCY_UNAVAILABLE"
    case deviceLimitReached = "DEVICE_LIMIT_REACHED"
    case deviceNotFound = "DEVICE_NOT_FOUND"
    case emailTaken = "EMAIL_TAKEN"
    case forbidden = "FORBIDDEN"
    case idempotencyConflict = "IDEMPOTENCY_CONFLICT"
    case internalError = "INTERNAL_ERROR"
    case invalidCredentials = "INVALID_CREDENTIALS"
    case invalidTransition = "INVALID_TRANSITION"
    case invalidVerificationToken = "INVALID_VERIFICATION_TOKEN"
    case methodNotAllowed = "METHOD_NOT_ALLOWED"
    case missingVariables = "MISSING_VARIABLES"
    case notificationNotFound = "NOTIFICATION_NOT_FOUND"
    case notFound = "NOT_FOUND"
    case notRetryable = "NOT_RETRYABLE"
    case notCancellable = "NOT_CANCELLABLE"
    case rateLimited = "RATE_LIMITED"
    case reauthenticationRequired = "REAUTHENTICATION_REQUIRED"
    case recipientSuppressed = "RECIPIENT_SUPPRESSED"
    case sessionExpired = "SESSION_EXPIRED"
    case suppressionNotFound = "SUPPRESSION_NOT_FOUND"
    case templateExists = "TEMPLATE_EXISTS"
    case templateNotFound = "TEMPLATE_NOT_FOUND"
    case templateReserved = "TEMPLATE_RESERVED"
    case unauthorized = "UNAUTHORIZED"
    case unsupportedMediaType = "UNSUPPORTED_MEDIA_TYPE"
    case userNotFound = "USER_NOT_FOUND"
    case userDisabled = "USER_DISABLED"
    case validationError = "VALIDATION_ERROR"
    case webhookNotConfigured = "WEBHOOK_NOT_CONFIGURED"
    case webhookNotFound = "WEBHOOK_NOT_FOUND"
    case verificationNotSent = "VERIFICATION_NOT_SENT"
    case noPhoneNumber = "NO_PHONE_NUMBER"
}

/// Every failure a client can see: a status, a stable code and a message for humans. Mapped to the envelope in one place.
public struct APIError: Error, HTTPResponseError, Sendable {
    public var status: HTTPResponse.Status
    public var code: ErrorCode
    public var message: String
    public var details: [FieldError]?
    public var headers: HTTPFields

    public init(_ status: HTTPResponse.Status, code: ErrorCode, message: String, details: [FieldError]? = nil, headers: HTTPFields = [:]) {
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
            error: code.rawValue,
            message: message,
            meta: PageMeta(total: 0, limit: 0, page: 1),
            details: details
        )
        return .json(status, envelope, headers: headers)
    }

    public static func validation(_ details: [FieldError], message: String = "Request validation failed") -> APIError {
        APIError(.badRequest, code: .validationError, message: message, details: details)
    }

    public static let unauthorized = APIError(
        .unauthorized,
        code: .unauthorized,
        message: "A valid API key or bearer token is required",
        headers: [.wwwAuthenticate: "Bearer"]
    )

    public static func forbidden(_ message: String) -> APIError {
        APIError(.forbidden, code: .forbidden, message: message)
    }

    public static func notFound(_ code: ErrorCode = .notFound, _ message: String) -> APIError {
        APIError(.notFound, code: code, message: message)
    }

    public static func dependencyUnavailable(_ message: String) -> APIError {
        APIError(.serviceUnavailable, code: .dependencyUnavailable, message: message)
    }

    public static let internalError = APIError(.internalServerError, code: .internalError, message: "An internal error occurred")
}
