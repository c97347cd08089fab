import Credentials
import Foundation
import Hummingbird
import Logging
import NotificationModel
import NotifyHTTP

/// An API key as the admin API shows it: never the key itself, except once, in `key`, on creation.
struct APIKeyResource: Encodable, Sendable {
    var id: String
    var client: String
    var name: String
    var prefix: String
    var scopes: [String]
    var createdAt: Date
    var revokedAt: Date?
    var key: String?

    init(_ record: APIKeyRecord, key: String? = nil) {
        id = record.id.lowercased
        client = record.client
        name = record.name
        prefix = record.prefix
        scopes = record.scopes
        createdAt = record.createdAt
        revokedAt = record.revokedAt
        self.key = key
    }

    enum CodingKeys: String, CodingKey {
        case id, client, name, prefix, scopes, key
        case createdAt = "created_at"
        case revokedAt = "revoked_at"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(id, forKey: .id)
        try container.encode(client, forKey: .client)
        try container.encode(name, forKey: .name)
        try container.encode(prefix, forKey: .prefix)
        try container.encode(scopes, forKey: .scopes)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(revokedAt, forKey: .revokedAt)
        try container.encodeIfPresent(key, forKey: .key)
    }
}

/// `/api/v1/admin/api-keys/`: create (the key is shown once), list, show and revoke client API keys. Admin scope only.
struct APIKeyController: Sendable {
    let store: APIKeyStore

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/admin/api-keys", use: create)
        router.get("/api/v1/admin/api-keys", use: list)
        router.get("/api/v1/admin/api-keys/:id", use: show)
        router.delete("/api/v1/admin/api-keys/:id", use: revoke)
    }

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        let body = try await request.jsonObject(limit: 64 << 10)
        var fields = FieldValidator(body)
        let client = fields.string("client", maxLength: 100)
        let name = fields.string("name", required: false, maxLength: 100) ?? "default"
        var scopes: [String] = []
        switch body["scopes"] {
        case .array(let values)?:
            for value in values {
                if let scope = value.stringValue, APIKeyStore.knownScopes.contains(scope) {
                    if !scopes.contains(scope) { scopes.append(scope) }
                } else {
                    fields.fail("scopes", "each scope must be one of: " + APIKeyStore.knownScopes.sorted().joined(separator: ", "))
                    break
                }
            }
            if values.isEmpty { fields.fail("scopes", "must name at least one scope") }
        case nil, .null?:
            fields.fail("scopes", "is required")
        default:
            fields.fail("scopes", "must be an array of strings")
        }
        try fields.check()
        guard let client else { throw APIError.internalError }
        let (key, record) = try await store.create(client: client, name: name, scopes: scopes)
        context.logger.info(
            "api key created",
            metadata: ["key_id": .string(record.id.lowercased), "key_prefix": .string(record.prefix), "key_client": .string(client)]
        )
        return .envelope(.created, data: APIKeyResource(record, key: key), message: "API key created; store it now, it is not shown again")
    }

    @Sendable func list(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        let includeRevoked: Bool
        switch request.uri.queryParameters.get("include_revoked") {
        case nil, "false"?: includeRevoked = false
        case "true"?: includeRevoked = true
        default:
            includeRevoked = false
            errors.append(FieldError(field: "include_revoked", message: "must be true or false"))
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let (records, total) = try await store.list(includeRevoked: includeRevoked, page: page, limit: limit)
        return .envelope(
            data: records.map { APIKeyResource($0) },
            message: "API keys retrieved successfully",
            meta: PageMeta(total: total, limit: limit, page: page)
        )
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)), let record = try await store.get(id: id) else {
            throw APIError.notFound(.apiKeyNotFound, "No API key with this id")
        }
        return .envelope(data: APIKeyResource(record), message: "API key retrieved successfully")
    }

    /// Revokes a key; the gateway stops accepting it within its key cache time (NOTIFY_KEY_CACHE_SECONDS).
    @Sendable func revoke(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)), let record = try await store.revoke(id: id) else {
            throw APIError.notFound(.apiKeyNotFound, "No API key with this id")
        }
        context.logger.info("api key revoked", metadata: ["key_id": .string(record.id.lowercased)])
        return .envelope(data: APIKeyResource(record), message: "API key revoked")
    }
}
