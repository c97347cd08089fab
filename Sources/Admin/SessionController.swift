import Credentials
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdBcrypt
import Logging
import NotificationModel
import NotifyHTTP
import RateLimiting

/// Operator sessions: `POST /api/v1/admin/login/` checks an operator's email and password and starts a session held
/// on the server (`admin_sessions`); the browser gets only the HttpOnly, SameSite=Strict cookie, `Secure` with the
/// `__Host-` prefix unless `NOTIFY_ADMIN_COOKIE_SECURE=false` (local http). The token is never in a response body.
/// Logout revokes the session; removing an operator or resetting their password ends theirs. Also serves the
/// dashboard's two pages.
struct SessionController: Sendable {
    static let csrfHeader = HTTPField.Name("X-Requested-With")!
    static let csrfValue = "notify-dashboard"

    let admins: AdminUserStore
    let hasher: PasswordHasher
    let lifetime: Int
    let secureCookie: Bool
    let throttle: LoginThrottle
    let logger: Logger
    /// Checked for unknown emails, so a login takes as long whether or not the operator exists.
    let decoyHash = Bcrypt.hash(UUID().uuidString, cost: 10)

    /// `__Host-notify_admin` (Secure, host-only, path /) or, for local http only, `notify_admin`.
    static func cookieName(secure: Bool) -> String { secure ? "__Host-notify_admin" : "notify_admin" }
    var cookie: String { Self.cookieName(secure: secureCookie) }

    func setCookie(_ value: String, maxAge: Int) -> HTTPField {
        HTTPField(
            name: .setCookie,
            value: "\(cookie)=\(value); Path=/; HttpOnly; SameSite=Strict; Max-Age=\(maxAge)\(secureCookie ? "; Secure" : "")"
        )
    }

    func registerPublic(on router: Router<NotifyRequestContext>) {
        router.post("/api/v1/admin/login", use: login)
        router.get("/admin/login") { _, _ in Self.html(DashboardPages.login(error: nil)) }
        router.get("/admin") { request, _ in await dashboard(request) }
    }

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/admin/logout", use: logout)
    }

    @Sendable func login(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        // Only JSON: a cross-site form can send text/plain or form bodies but not this type without a preflight,
        // so no other site can log a browser in to an account of its choosing (login CSRF).
        let mediaType = request.headers[.contentType]?.split(separator: ";").first?.trimmingCharacters(in: .whitespaces).lowercased()
        guard mediaType == "application/json" else {
            throw APIError(.unsupportedMediaType, code: .unsupportedMediaType, message: "The login body must be application/json")
        }
        var fields = FieldValidator(try await request.jsonObject(limit: 16 << 10))
        let email = fields.string("email", maxLength: 254)
        let password = fields.string("password", maxLength: 1024, allowEmpty: true)
        try fields.check()
        guard let email, let password else { throw APIError.internalError }
        if let refused = await throttle.admit(account: email, address: context.remoteAddress) {
            context.logger.warning("admin login throttled")
            throw APIError.loginThrottled(retryAfterSeconds: refused.retryAfterSeconds)
        }
        let invalid = APIError(.unauthorized, code: .invalidCredentials, message: "Email or password is wrong")
        let admin: AdminUserStore.Record?
        do { admin = try await admins.find(email: email) } catch {
            throw APIError.dependencyUnavailable("The operator store is unavailable; try again shortly")
        }
        let hash = admin?.passwordHash ?? decoyHash
        let matches: Bool
        do { matches = try await hasher.verify(password, hash: hash) } catch is PasswordHasher.Busy { throw APIError.hashingBusy }
        guard let admin, matches else {
            context.logger.warning("admin login refused")
            throw invalid
        }
        await throttle.succeeded(account: email)
        try? await admins.touch(id: admin.id)
        let token = try await admins.createSession(adminID: admin.id, lifetimeSeconds: lifetime)
        context.logger.info("admin logged in", metadata: ["admin_id": .string(admin.id.lowercased)])
        var response = Response.envelope(data: AdminLogin(adminID: admin.id.lowercased, expiresIn: lifetime), message: "Logged in")
        response.headers.append(setCookie(token, maxAge: lifetime))
        return response
    }

    /// Ends the session server-side (the cookie alone would only hide it from this browser).
    @Sendable func logout(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        if let token = request.cookies[cookie]?.value { _ = try await admins.revoke(token: token) }
        var response = Response.envelope(data: EmptyPayload(), message: "Logged out")
        response.headers.append(setCookie("", maxAge: 0))
        return response
    }

    /// The dashboard for a logged-in operator; anyone else is sent to the login page.
    func dashboard(_ request: Request) async -> Response {
        guard let token = request.cookies[cookie]?.value, (try? await admins.session(token: token)) != nil else {
            return Response(status: .seeOther, headers: [.location: "/admin/login"])
        }
        return Self.html(DashboardPages.dashboard)
    }

    static func html(_ page: String) -> Response {
        Response(
            status: .ok,
            headers: [
                .contentType: "text/html; charset=utf-8",
                .cacheControl: "no-store",
                HTTPField.Name("Content-Security-Policy")!:
                    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            ],
            body: .init(byteBuffer: ByteBuffer(string: page))
        )
    }
}

/// Who may use the admin API: an operator's session (the dashboard cookie) or an API key with the `admin` scope
/// (checked by each handler). State changes made with the cookie must carry `X-Requested-With: notify-dashboard`,
/// which a cross-site form cannot send.
struct AdminAuthMiddleware: RouterMiddleware {
    typealias Context = NotifyRequestContext

    let admins: AdminUserStore
    let cookie: String
    let credentials: CredentialMiddleware

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var context = context
        if request.credential != nil {
            return try await credentials.handle(request, context: context, next: next)
        }
        guard let token = request.cookies[cookie]?.value else { throw APIError.unauthorized }
        let adminID: UUID?
        do { adminID = try await admins.session(token: token) } catch {
            throw APIError.dependencyUnavailable("The session store is unavailable; try again shortly")
        }
        guard let adminID else { throw APIError.unauthorized }
        if request.method != .get, request.method != .head, request.headers[SessionController.csrfHeader] != SessionController.csrfValue {
            throw APIError.forbidden("A change made with the dashboard's session must come from the dashboard")
        }
        context.identity = Self.operator(adminID)
        return try await next(request, context)
    }

    static func `operator`(_ id: UUID) -> Identity {
        Identity(client: "admin:\(id.lowercased)", keyID: nil, scopes: [Scope.admin])
    }
}

/// The answer to an operator's login: the session itself is only in the cookie.
struct AdminLogin: Encodable, Sendable {
    var adminID: String
    /// Seconds the session lasts (an integer, as `expires_in` of the users' login).
    var expiresIn: Int
}
