import Credentials
import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyHTTP
import OutboundPolicy

/// An endpoint as the admin API shows it: the secret only once, on creation; afterwards its prefix.
struct WebhookEndpointResource: Encodable, Sendable {
    var id: String
    var client: String
    var url: String
    var events: [String]
    var description: String?
    var secretPrefix: String
    var active: Bool
    var createdAt: Date
    var disabledAt: Date?
    var secret: String?

    init(_ endpoint: WebhookEndpoint, secret: String? = nil) {
        id = endpoint.id.lowercased
        client = endpoint.client
        url = endpoint.url
        events = endpoint.events
        description = endpoint.description
        secretPrefix = endpoint.secretPrefix
        active = endpoint.active
        createdAt = endpoint.createdAt
        disabledAt = endpoint.disabledAt
        self.secret = secret
    }

    enum CodingKeys: String, CodingKey {
        case id, client, url, events, description, active, secret
        case secretPrefix = "secret_prefix"
        case createdAt = "created_at"
        case disabledAt = "disabled_at"
    }
}

struct WebhookDeliveryResource: Encodable, Sendable {
    var id: Int
    var endpointID: String
    var notificationID: String
    var event: String
    var state: String
    var attempt: Int
    var maxAttempts: Int
    var lastStatus: Int?
    var lastError: String?
    var createdAt: Date
    var finalizedAt: Date?

    init(_ delivery: WebhookDelivery) {
        id = delivery.id
        endpointID = delivery.endpointID.lowercased
        notificationID = delivery.notificationID.lowercased
        event = delivery.event
        state = delivery.state
        attempt = delivery.attempt
        maxAttempts = delivery.maxAttempts
        lastStatus = delivery.lastStatus
        lastError = delivery.lastError
        createdAt = delivery.createdAt
        finalizedAt = delivery.finalizedAt
    }

    enum CodingKeys: String, CodingKey {
        case id, event, state, attempt
        case endpointID = "endpoint_id"
        case notificationID = "notification_id"
        case maxAttempts = "max_attempts"
        case lastStatus = "last_status"
        case lastError = "last_error"
        case createdAt = "created_at"
        case finalizedAt = "finalized_at"
    }
}

/// `/api/v1/admin/webhooks/`: clients' status webhooks. Create (the signing secret is shown once), list, show,
/// disable, their deliveries, and replay of a dead letter. Admin scope only.
struct WebhookController: Sendable {
    let store: WebhookStore
    /// Nil when `NOTIFY_WEBHOOK_SECRET_KEY` is not set: endpoints cannot be created (nothing could sign for them).
    let secrets: WebhookSecrets?
    /// Which URLs an endpoint may have: https on the default port, a public host, never an internal address.
    let policy: EndpointPolicy

    static let notFound = APIError.notFound(.webhookNotFound, "No webhook endpoint with this id")

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/admin/webhooks", use: create)
        router.get("/api/v1/admin/webhooks", use: list)
        router.get("/api/v1/admin/webhooks/:id", use: show)
        router.delete("/api/v1/admin/webhooks/:id", use: disable)
        router.get("/api/v1/admin/webhooks/:id/deliveries", use: deliveries)
        router.post("/api/v1/admin/webhook-deliveries/:id/replay", use: replay)
    }

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var fields = FieldValidator(try await request.jsonObject(limit: 64 << 10))
        let client = fields.string("client", maxLength: 100)
        let url = fields.string("url", maxLength: 2048)
        if let url, let reason = policy.refusal(endpoint: url) { fields.fail("url", reason.replacingOccurrences(of: "push service", with: "public")) }
        let description = fields.string("description", required: false, maxLength: 500)
        var events: [String] = []
        switch fields.object["events"] {
        case .array(let values)?:
            for value in values {
                guard let event = value.stringValue, WebhookStore.events.contains(event) else {
                    fields.fail("events", "each event must be one of: " + WebhookStore.events.joined(separator: ", "))
                    break
                }
                if !events.contains(event) { events.append(event) }
            }
            if values.isEmpty { fields.fail("events", "must name at least one event") }
        case nil, .null?:
            fields.fail("events", "is required: the statuses to be told about (" + WebhookStore.events.joined(separator: ", ") + ")")
        default:
            fields.fail("events", "must be an array of strings")
        }
        try fields.check()
        guard let secrets else {
            throw APIError(
                .serviceUnavailable,
                code: .webhookNotConfigured,
                message: "Webhooks are not configured on this platform (the operator sets NOTIFY_WEBHOOK_SECRET_KEY)"
            )
        }
        guard let client, let url else { throw APIError.internalError }
        let secret = WebhookSecrets.generate()
        let endpoint = try await store.create(
            client: client,
            url: url,
            events: events,
            description: description,
            sealed: try secrets.seal(secret),
            prefix: String(secret.prefix(12))
        )
        context.logger.info(
            "webhook endpoint created",
            metadata: ["endpoint_id": .string(endpoint.id.lowercased), "webhook_client": .string(client)]
        )
        return .envelope(
            .created,
            data: WebhookEndpointResource(endpoint, secret: secret),
            message: "Webhook endpoint created; store the secret now, it is not shown again"
        )
    }

    @Sendable func list(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        let client = request.uri.queryParameters.get("client").map { String($0) }
        if let client, client.isEmpty || client.count > 100 { errors.append(FieldError(field: "client", message: "must be 1 to 100 characters")) }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let (endpoints, total) = try await store.list(client: client, page: page, limit: limit)
        return .envelope(
            data: endpoints.map { WebhookEndpointResource($0) },
            message: "Webhook endpoints retrieved successfully",
            meta: PageMeta(total: total, limit: limit, page: page)
        )
    }

    func endpoint(_ context: NotifyRequestContext) async throws -> WebhookEndpoint {
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)), let endpoint = try await store.get(id: id) else {
            throw Self.notFound
        }
        return endpoint
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        return .envelope(data: WebhookEndpointResource(try await endpoint(context)), message: "Webhook endpoint retrieved successfully")
    }

    /// Disables the endpoint: no new deliveries; those still waiting are cancelled.
    @Sendable func disable(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)), let endpoint = try await store.disable(id: id) else {
            throw Self.notFound
        }
        context.logger.info("webhook endpoint disabled", metadata: ["endpoint_id": .string(id.lowercased)])
        return .envelope(data: WebhookEndpointResource(endpoint), message: "Webhook endpoint disabled; its waiting deliveries are cancelled")
    }

    @Sendable func deliveries(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        let states = ["available", "running", "retryable", "completed", "discarded", "cancelled"]
        let state = request.uri.queryParameters.get("state").map { String($0) }
        if let state, !states.contains(state) {
            errors.append(FieldError(field: "state", message: "must be one of: " + states.joined(separator: ", ")))
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let endpoint = try await endpoint(context)
        let (items, total) = try await store.deliveries(endpoint: endpoint.id, state: state, page: page, limit: limit)
        return .envelope(
            data: items.map(WebhookDeliveryResource.init),
            message: "Webhook deliveries retrieved successfully",
            meta: PageMeta(total: total, limit: limit, page: page)
        )
    }

    /// A dead-lettered delivery goes out again with a fresh set of attempts.
    @Sendable func replay(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let id = context.parameters.get("id").flatMap({ Int($0) }), let replayed = try await store.replay(id: id) else {
            throw APIError.notFound(.webhookNotFound, "No webhook delivery with this id")
        }
        guard replayed else {
            throw APIError(.conflict, code: .notRetryable, message: "Only a dead-lettered delivery of an active endpoint can be replayed")
        }
        return .envelope(data: EmptyPayload(), message: "Webhook delivery re-queued")
    }
}
