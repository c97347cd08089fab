import AsyncHTTPClient
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel
import NotifyHTTP

/// The dashboard's self-service over users and templates: `/api/v1/admin/users/…` and `/api/v1/admin/templates/…`
/// call the user and template services' own APIs with the service key, so every action goes through the same checks
/// as any other caller's. Only these routes are forwarded, and only with parameters checked here (ids are UUIDs,
/// codes are codes, channels are channels): admin is no open proxy. Admin scope only.
struct DirectoryController: Sendable {
    let http: HTTPClient
    let usersURL: String
    let templatesURL: String
    /// Nil when `NOTIFY_SERVICE_KEY` is not set on admin: these routes answer 503.
    let serviceKey: String?

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.get("/api/v1/admin/users", use: users)
        router.get("/api/v1/admin/users/:id", use: user)
        router.post("/api/v1/admin/users/:id/disable") { request, context in try await setDisabled(true, request, context) }
        router.post("/api/v1/admin/users/:id/enable") { request, context in try await setDisabled(false, request, context) }
        router.get("/api/v1/admin/templates", use: templates)
        router.get("/api/v1/admin/templates/:code/versions") { request, context in try await template(.GET, "versions/", request, context) }
        router.post("/api/v1/admin/templates/:code/render") { request, context in try await template(.POST, "render/", request, context) }
        router.post("/api/v1/admin/templates/:code/archive") { request, context in try await template(.POST, "archive/", request, context) }
        router.post("/api/v1/admin/templates/:code/restore") { request, context in try await template(.POST, "restore/", request, context) }
    }

    static let userNotFound = APIError.notFound(.userNotFound, "No user with this user_id")
    static let templateNotFound = APIError.notFound(.templateNotFound, "No template with this code")

    /// A service's answer: its status and body as they are (the same envelope), except that a refusal of admin's own
    /// credential is the operator's configuration problem (503), never a signal that the operator's session ended.
    struct Answer: Sendable {
        var status: Int
        var body: ByteBuffer
        var json: [String: Any]? { (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] }
    }

    func call(
        _ method: HTTPMethod,
        _ url: String,
        json: [String: Any]? = nil,
        rawBody: ByteBuffer? = nil,
        context: NotifyRequestContext
    ) async throws
        -> Answer
    {
        guard let serviceKey else {
            throw APIError.dependencyUnavailable("User and template management needs NOTIFY_SERVICE_KEY on the admin service")
        }
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(serviceKey)")
        request.headers.add(name: "X-Correlation-ID", value: context.correlationID)
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: json)))
        } else if let rawBody {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(rawBody)
        }
        let answer: Answer
        do {
            let response = try await http.execute(request, timeout: .seconds(10))
            answer = Answer(status: Int(response.status.code), body: try await response.body.collect(upTo: 8 << 20))
        } catch {
            context.logger.warning("directory call failed", metadata: ["error_type": .string(String(describing: type(of: error)))])
            throw APIError.dependencyUnavailable("The user or template service cannot answer right now; try again shortly")
        }
        if answer.status == 401 || answer.status == 403 {
            context.logger.error("the user or template service refused admin's service key", metadata: ["status": "\(answer.status)"])
            throw APIError.dependencyUnavailable("The user or template service refused the admin service's credential (check NOTIFY_SERVICE_KEY)")
        }
        return answer
    }

    static func passThrough(_ answer: Answer) -> Response {
        Response(
            status: HTTPResponse.Status(code: answer.status),
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: answer.body)
        )
    }

    /// `page`, `limit` and the named text parameters, checked, as a query string.
    static func query(_ request: Request, _ extra: [(String, String)] = []) throws -> String {
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        if !errors.isEmpty { throw APIError.validation(errors) }
        var items = [URLQueryItem(name: "page", value: String(page)), URLQueryItem(name: "limit", value: String(limit))]
        items += extra.map { URLQueryItem(name: $0.0, value: $0.1) }
        var components = URLComponents()
        components.queryItems = items
        return components.percentEncodedQuery ?? ""
    }

    @Sendable func users(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var extra: [(String, String)] = []
        if let search = request.uri.queryParameters.get("search") {
            guard (1...200).contains(search.count), !search.contains("\u{0}") else {
                throw APIError.validation([FieldError(field: "search", message: "must be 1 to 200 characters")])
            }
            extra.append(("search", String(search)))
        }
        return Self.passThrough(try await call(.GET, "\(usersURL)/api/v1/users/?\(try Self.query(request, extra))", context: context))
    }

    func userID(_ context: NotifyRequestContext) throws -> String {
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)) else { throw Self.userNotFound }
        return id.lowercased
    }

    /// The user with their preferences and devices (inactive ones too, with the reason), in one answer.
    @Sendable func user(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        let id = try userID(context)
        let base = "\(usersURL)/api/v1/users/\(id)/"
        let user = try await call(.GET, base, context: context)
        guard user.status == 200 else { return Self.passThrough(user) }
        async let preferences = call(.GET, base + "preferences/", context: context)
        async let devices = call(.GET, base + "devices/", context: context)
        let data: [String: Any] = [
            "user": user.json?["data"] ?? NSNull(),
            "preferences": try await preferences.json?["data"] ?? NSNull(),
            "devices": try await devices.json?["data"] ?? [],
        ]
        let envelope: [String: Any] = [
            "success": true, "data": data, "error": NSNull(), "message": "User retrieved successfully",
            "meta": ["total": 1, "limit": 1, "page": 1, "total_pages": 1, "has_next": false, "has_previous": false],
        ]
        return Response(
            status: .ok,
            headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(data: try JSONSerialization.data(withJSONObject: envelope)))
        )
    }

    func setDisabled(_ disabled: Bool, _ request: Request, _ context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        let id = try userID(context)
        let answer = try await call(.PATCH, "\(usersURL)/api/v1/users/\(id)/", json: ["disabled": disabled], context: context)
        if answer.status == 200 {
            context.logger.info(disabled ? "user disabled" : "user enabled", metadata: ["user_id": .string(id)])
        }
        return Self.passThrough(answer)
    }

    static func channel(_ request: Request) throws -> [(String, String)] {
        guard let channel = request.uri.queryParameters.get("channel") else { return [] }
        guard ["email", "push", "sms"].contains(channel) else {
            throw APIError.validation([FieldError(field: "channel", message: "must be email, push or sms")])
        }
        return [("channel", String(channel))]
    }

    @Sendable func templates(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var extra = try Self.channel(request)
        switch request.uri.queryParameters.get("archived") {
        case nil: break
        case "true"?, "false"?: extra.append(("archived", String(request.uri.queryParameters.get("archived")!)))
        default: throw APIError.validation([FieldError(field: "archived", message: "must be true or false")])
        }
        return Self.passThrough(try await call(.GET, "\(templatesURL)/api/v1/templates/?\(try Self.query(request, extra))", context: context))
    }

    /// One of a template's own routes (`versions/`, `render/`, `archive/`, `restore/`), with `?channel=` as given.
    func template(_ method: HTTPMethod, _ route: String, _ request: Request, _ context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let code = context.parameters.get("code"), code.count <= 100, FieldValidator.isCode(code) else { throw Self.templateNotFound }
        let channel = try Self.channel(request)
        var components = URLComponents()
        components.queryItems = channel.map { URLQueryItem(name: $0.0, value: $0.1) }
        let query = channel.isEmpty ? "" : "?" + (components.percentEncodedQuery ?? "")
        let body = method == .POST ? try await request.body.collect(upTo: 1 << 20) : nil
        let answer = try await call(
            method,
            "\(templatesURL)/api/v1/templates/\(code)/\(route)\(query)",
            rawBody: body.flatMap { $0.readableBytes > 0 ? $0 : nil },
            context: context
        )
        if answer.status == 200, route == "archive/" || route == "restore/" {
            context.logger.info("template \(route.dropLast())d", metadata: ["template_code": .string(code)])
        }
        return Self.passThrough(answer)
    }
}
