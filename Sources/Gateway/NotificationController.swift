import Directory
import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyHTTP

/// `POST /api/v1/notifications/` and `GET /api/v1/notifications/{id}/`.
struct NotificationController: Sendable {
    let repository: NotificationRepository
    let directory: PlatformDirectory

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/notifications", use: create)
        router.get("/api/v1/notifications/:id", use: show)
        router.post("/api/v1/notifications/:id/retry", use: retry)
        router.get("/api/v1/notifications", use: list)
        router.post("/api/v1/email/status", use: { request, context in try await report(request, context: context, channel: "email") })
        router.post("/api/v1/push/status", use: { request, context in try await report(request, context: context, channel: "push") })
    }

    /// Re-queues a failed (dead-lettered) notification with a fresh set of attempts.
    @Sendable func retry(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try identity.require("notifications:write")
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)),
            let replayed = try await repository.replay(id: id, client: identity.client)
        else { throw APIError.notFound("NOTIFICATION_NOT_FOUND", "No notification with this id") }
        guard replayed else {
            throw APIError(.conflict, code: "NOT_RETRYABLE", message: "Only a failed notification can be retried")
        }
        guard let notification = try await repository.find(id: id, client: identity.client) else { throw APIError.internalError }
        context.logger.info("notification replayed", metadata: ["notification_id": .string(notification.notificationID)])
        return .envelope(.accepted, data: notification, message: "Notification re-queued")
    }

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try identity.require("notifications:write")
        let new = try Self.validate(try await request.jsonObject(), idempotencyKey: request.headers[.idempotencyKey])
        async let lookup = directory.template(
            new.templateCode,
            channel: new.channel.rawValue,
            language: new.language,
            correlationID: context.correlationID
        )
        let recipient: Recipient?
        let template: TemplateContent?
        do {
            recipient = try await directory.recipient(new.userID, correlationID: context.correlationID)
            template = try await lookup
        } catch {
            throw APIError.dependencyUnavailable("The user or template service is unavailable, so the request cannot be checked; try again shortly")
        }
        let preferences = recipient?.preferences
        let refusal: APIError?
        if let template {
            if let preferences {
                refusal =
                    preferences.allows(channel: new.channel.rawValue, category: template.category)
                    ? nil
                    : APIError(
                        .unprocessableContent,
                        code: "CHANNEL_DISABLED",
                        message:
                            "The user has turned \(new.channel.rawValue) notifications\(template.category.map { " of category \($0)" } ?? "") off"
                    )
            } else {
                refusal = APIError.notFound("USER_NOT_FOUND", "No user with this user_id")
            }
        } else {
            refusal = APIError.notFound("TEMPLATE_NOT_FOUND", "No \(new.channel.rawValue) template with this template_code")
        }
        if let refusal {
            // A replay of a request accepted before the user changed their mind still returns the original.
            if let earlier = try await repository.existing(new, client: identity.client) {
                return try Self.respond(earlier, context: context, requestID: new.requestID)
            }
            throw refusal
        }
        let outcome: CreateOutcome
        do {
            // If the deadline passes after the commit, the client's retry with the same request_id finds the original.
            outcome = try await withDeadline(.seconds(10)) {
                try await repository.create(
                    new,
                    templateVersion: template?.activeVersion ?? 1,
                    client: identity.client,
                    correlationID: context.correlationID
                )
            }
        } catch let error as APIError {
            throw error
        } catch {
            context.logger.error("notification not stored", metadata: ["error_type": .string(String(describing: type(of: error)))])
            throw APIError.dependencyUnavailable("The notification could not be stored durably; nothing was accepted")
        }
        return try Self.respond(outcome, context: context, requestID: new.requestID)
    }

    static func respond(_ outcome: CreateOutcome, context: NotifyRequestContext, requestID: String) throws -> Response {
        switch outcome {
        case .created(let notification):
            context.logger.info(
                "notification accepted",
                metadata: ["notification_id": .string(notification.notificationID), "request_id": .string(requestID)]
            )
            return .envelope(.accepted, data: notification, message: "Notification accepted")
        case .replayed(let notification):
            return .envelope(.ok, data: Accepted(notification), message: "Notification already accepted", headers: [.idempotentReplayed: "true"])
        case .conflict:
            throw APIError(
                .unprocessableContent,
                code: "IDEMPOTENCY_CONFLICT",
                message: "This request_id was already used with a different payload"
            )
        }
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.scopes.contains("notifications:read") || identity.scopes.contains("notifications:write") || identity.scopes.contains("admin")
        else { throw APIError.forbidden("This credential lacks the scope notifications:read") }
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            throw APIError.notFound("NOTIFICATION_NOT_FOUND", "No notification with this id")
        }
        guard let notification = try await repository.find(id: id, client: identity.client, withHistory: true) else {
            throw APIError.notFound("NOTIFICATION_NOT_FOUND", "No notification with this id")
        }
        return .envelope(data: notification, message: "Notification retrieved successfully")
    }

    /// `GET /api/v1/notifications/?request_id=&user_id=&status=&page=&limit=`: this client's notifications, newest first.
    @Sendable func list(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.scopes.contains("notifications:read") || identity.scopes.contains("notifications:write") || identity.scopes.contains("admin")
        else { throw APIError.forbidden("This credential lacks the scope notifications:read") }
        let query = request.uri.queryParameters
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        var userID: UUID?
        if let raw = query.get("user_id") {
            userID = UUID(uuidString: raw)
            if userID == nil { errors.append(FieldError(field: "user_id", message: "must be a UUID")) }
        }
        let status = query.get("status")
        let statuses = ["pending", "processing", "retrying", "sent", "delivered", "failed", "cancelled"]
        if let status, !statuses.contains(status) {
            errors.append(FieldError(field: "status", message: "must be one of: " + statuses.joined(separator: ", ")))
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let (items, total) = try await repository.list(
            client: identity.client,
            requestID: query.get("request_id"),
            userID: userID,
            status: status,
            page: page,
            limit: limit
        )
        return .envelope(data: items, message: "Notifications retrieved successfully", meta: PageMeta(total: total, limit: limit, page: page))
    }

    /// `POST /api/v1/{email|push}/status/`: a delivery report, from a service credential.
    func report(_ request: Request, context: NotifyRequestContext, channel: String) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.scopes.contains("service") || identity.scopes.contains("admin") else {
            throw APIError.forbidden("Delivery reports need a service credential")
        }
        var fields = FieldValidator(try await request.jsonObject())
        let id = fields.uuid("notification_id")
        let status = fields.oneOf("status", ["delivered", "pending", "failed"])
        let error = fields.string("error", required: false, maxLength: 2000)
        var at: Date?
        if let raw = fields.string("timestamp", required: false, maxLength: 64) {
            at = Self.parseTimestamp(raw)
            if at == nil { fields.fail("timestamp", "must be an RFC 3339 timestamp") }
        }
        try fields.check()
        guard let id, let status else { throw APIError.internalError }
        switch try await repository.report(id: id, channel: channel, status: status, error: error, at: at) {
        case .recorded(let notification):
            return .envelope(data: notification, message: "Delivery report recorded")
        case .alreadyRecorded(let notification):
            return .envelope(data: notification, message: "Delivery report already recorded", headers: [.idempotentReplayed: "true"])
        case .notFound:
            throw APIError.notFound("NOTIFICATION_NOT_FOUND", "No \(channel) notification with this id")
        case .invalid(let current):
            throw APIError(
                .conflict,
                code: "INVALID_TRANSITION",
                message: "A notification that is \(current) cannot become \(status): it has not been sent"
            )
        }
    }

    static func validate(_ body: [String: JSONValue], idempotencyKey: String?) throws -> NewNotification {
        var fields = FieldValidator(body)
        let channel = fields.oneOf("notification_type", ["email", "push"])
        let userID = fields.uuid("user_id")
        let templateCode = fields.string("template_code", maxLength: 100)
        let variables = fields.object("variables") ?? [:]
        var requestID = fields.string("request_id", required: idempotencyKey == nil, maxLength: 255)
        if requestID == nil, let idempotencyKey {
            if idempotencyKey.isEmpty || idempotencyKey.count > 255 {
                fields.fail("Idempotency-Key", "must be 1 to 255 characters")
            } else {
                requestID = idempotencyKey
            }
        }
        let priority = fields.int("priority", range: 0...10) ?? 0
        let metadata = fields.object("metadata")
        let language = fields.string("language", required: false, maxLength: 35)
        var sendAt: Date?
        if let raw = fields.string("send_at", required: false, maxLength: 64) {
            sendAt = Self.parseTimestamp(raw)
            if sendAt == nil { fields.fail("send_at", "must be an RFC 3339 timestamp") }
        }
        try fields.check()
        guard let channel, let userID, let templateCode, let requestID else { throw APIError.internalError }
        return NewNotification(
            channel: NotificationChannel(rawValue: channel) ?? .email,
            userID: userID,
            templateCode: templateCode,
            variables: variables,
            requestID: requestID,
            priority: priority,
            metadata: metadata,
            language: language,
            sendAt: sendAt
        )
    }

    static func parseTimestamp(_ raw: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: raw) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: raw)
    }
}

/// The `data` of a 202: what the client needs to follow its notification.
struct Accepted: Encodable, Sendable {
    var notificationID: String
    var requestID: String
    var status: String
    var notificationType: String
    var createdAt: Date

    init(notificationID: String, requestID: String, status: String, notificationType: String, createdAt: Date) {
        self.notificationID = notificationID
        self.requestID = requestID
        self.status = status
        self.notificationType = notificationType
        self.createdAt = createdAt
    }

    init(_ resource: NotificationResource) {
        notificationID = resource.notificationID
        requestID = resource.requestID
        status = resource.status
        notificationType = resource.notificationType
        createdAt = resource.createdAt
    }

    enum CodingKeys: String, CodingKey {
        case notificationID = "notification_id"
        case requestID = "request_id"
        case status
        case notificationType = "notification_type"
        case createdAt = "created_at"
    }
}
