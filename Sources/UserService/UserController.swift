import Credentials
import Foundation
import Hummingbird
import Logging
import NotificationModel
import NotifyHTTP
import OutboundPolicy
import RateLimiting
import RedisCache

/// The users API. Reads of a user and of their contact data go through the Redis cache; every write invalidates it.
struct UserController: Sendable {
    let repository: UserRepository
    let cache: RedisCache
    let tokens: AccessTokens
    /// Hashes and checks passwords on threads of its own (a service of the process).
    let hasher: PasswordHasher
    let bcryptCost: UInt8
    /// A hash at the configured cost that no password matches: checked for unknown emails so that a login takes
    /// as long whether or not the email exists.
    let decoyHash: String
    /// Which Web Push endpoints may be registered.
    var webPushPolicy = EndpointPolicy()
    /// Active devices per user (`NOTIFY_MAX_DEVICES_PER_USER`).
    var maxDevices = 20
    /// Login attempts per account and per client address.
    var throttle: LoginThrottle?
    /// How long refreshing may extend a session after the login.
    var sessionMaxSeconds = 7 * 86_400
    /// Sends the verification of a new email address (nil: a changed address is used at once; tests of other parts).
    var verification: VerificationMailer?

    /// Login is its own credential (email and password); everything else sits behind `UserAuthMiddleware`.
    func registerPublic(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/users/login", use: login)
        // The token sent to the new address is the credential: whoever reads that mailbox confirms it.
        router.post("/api/v1/users/verify-email", use: verifyEmail)
    }

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/users", use: create)
        router.get("/api/v1/users", use: list)
        router.post("/api/v1/users/token/refresh", use: refresh)
        router.post("/api/v1/users/logout", use: logout)
        router.get("/api/v1/users/:id/token-version", use: tokenVersion)
        router.get("/api/v1/users/:id", use: show)
        router.get("/users/:id", use: show)
        router.patch("/api/v1/users/:id", use: update)
        router.delete("/api/v1/users/:id", use: delete)
        router.get("/api/v1/users/:id/preferences", use: preferences)
        router.put("/api/v1/users/:id/preferences", use: setPreferences)
        router.get("/api/v1/users/:id/contact", use: contact)
        router.post("/api/v1/users/contacts", use: contacts)
        router.get("/api/v1/users/:id/devices", use: devices)
        router.post("/api/v1/users/:id/devices", use: addDevice)
        router.delete("/api/v1/users/:id/devices/:device", use: deleteDevice)
        router.post("/api/v1/users/:id/devices/:device/deactivate", use: deactivateDevice)
    }

    // MARK: registration and login

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.userID == nil, identity.mayAccessEveryUser(.usersWrite) else {
            throw APIError.forbidden("Registering users needs a service credential with the scope users:write")
        }
        var fields = FieldValidator(try await request.jsonObject())
        let name = fields.string("name", maxLength: 200)
        let email = fields.email("email")
        let password = Self.password(&fields, "password", required: true)
        let pushToken = fields.string("push_token", required: false, maxLength: 4096)
        if let pushToken, let problem = DeviceValidation.fcm(pushToken) { fields.fail("push_token", problem) }
        let phone = Self.phone(&fields)
        let phoneVerified = fields.bool("phone_verified") ?? false
        if phoneVerified, phone == nil { fields.fail("phone_verified", "applies only together with phone") }
        var preferenceFields = FieldValidator(fields.object("preferences") ?? [:])
        let emailEnabled = preferenceFields.bool("email") ?? true
        let pushEnabled = preferenceFields.bool("push") ?? true
        let smsEnabled = preferenceFields.bool("sms") ?? true
        for error in preferenceFields.errors { fields.fail("preferences.\(error.field)", error.message) }
        let (timeZone, quietHours) = Self.quietHours(&fields)
        try fields.check()
        guard let name, let email, let password else { throw APIError.internalError }
        do {
            let user = try await repository.create(
                name: name,
                email: email,
                passwordHash: try await hash(password),
                pushToken: pushToken,
                emailEnabled: emailEnabled,
                pushEnabled: pushEnabled,
                phone: phone,
                phoneVerified: phoneVerified,
                smsEnabled: smsEnabled,
                timeZone: timeZone ?? nil,
                quietHours: quietHours ?? [:]
            )
            context.logger.info("user created", metadata: ["user_id": .string(user.userID)])
            return .envelope(.created, data: user, message: "User created")
        } catch UserRepositoryError.emailTaken {
            throw APIError(.conflict, code: .emailTaken, message: "A user with this email already exists")
        }
    }

    /// `time_zone` (an IANA name; null removes it) and `quiet_hours` (per channel `{"start": "22:00", "end": "07:00"}`;
    /// the object replaces every channel's window, `{}` or null removes them). Absent: unchanged.
    static func quietHours(_ fields: inout FieldValidator) -> (timeZone: String??, quietHours: [String: QuietWindow]?) {
        var timeZone: String??
        if let value = fields.object["time_zone"] {
            if value == .null {
                timeZone = .some(nil)
            } else if let text = fields.string("time_zone", maxLength: 64) {
                if let name = TimeZoneName.validate(text) { timeZone = .some(name) } else { fields.fail("time_zone", TimeZoneName.problem) }
            }
        }
        var quietHours: [String: QuietWindow]?
        if let value = fields.object["quiet_hours"] {
            if value == .null {
                quietHours = [:]
            } else if let object = fields.object("quiet_hours") {
                var windows: [String: QuietWindow] = [:]
                for (channel, raw) in object {
                    let field = "quiet_hours.\(channel)"
                    guard ["email", "push", "sms"].contains(channel) else {
                        fields.fail(field, "is not a channel (email, push, sms)")
                        continue
                    }
                    guard case .object(let times) = raw, case .string(let start)? = times["start"], case .string(let end)? = times["end"],
                        times.count == 2
                    else {
                        fields.fail(field, "must be {\"start\": \"HH:MM\", \"end\": \"HH:MM\"}")
                        continue
                    }
                    let window = QuietWindow(start: start, end: end)
                    if let problem = window.problem { fields.fail(field, problem) } else { windows[channel] = window }
                }
                quietHours = windows
            }
        }
        return (timeZone, quietHours)
    }

    /// `phone`: E.164 (spaces, dots, hyphens and parentheses are dropped), stored as `+` and digits.
    static func phone(_ fields: inout FieldValidator) -> String? {
        guard let text = fields.string("phone", required: false, maxLength: 32) else { return nil }
        guard let phone = PhoneNumber.normalize(text) else {
            fields.fail("phone", PhoneNumber.problem)
            return nil
        }
        return phone
    }

    struct TokenResponse: Encodable, Sendable {
        var accessToken: String
        var tokenType = "bearer"
        var expiresIn: Int
        var userID: String
    }

    @Sendable func login(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        var fields = FieldValidator(try await request.jsonObject())
        let email = fields.string("email", maxLength: 254)
        let password = fields.string("password", maxLength: 1024, allowEmpty: true)
        try fields.check()
        guard let email, let password else { throw APIError.internalError }
        if let throttle, let refused = await throttle.admit(account: email, address: context.remoteAddress) {
            context.logger.warning("login throttled")
            throw APIError.loginThrottled(retryAfterSeconds: refused.retryAfterSeconds)
        }
        let invalid = APIError(.unauthorized, code: .invalidCredentials, message: "Email or password is wrong")
        guard let (userID, passwordHash, version) = try await repository.credentials(email: email) else {
            // Spend the same time as a real check, so a response time does not reveal which emails exist.
            _ = try await verify(password, hash: decoyHash)
            throw invalid
        }
        guard try await verify(password, hash: passwordHash) else { throw invalid }
        await throttle?.succeeded(account: email)
        let token = try await tokens.issue(userID: userID, version: version)
        return .envelope(data: TokenResponse(accessToken: token, expiresIn: tokens.lifetime, userID: userID.lowercased), message: "Logged in")
    }

    /// A valid, current token buys a fresh one with a new expiry, within `sessionMaxSeconds` of the login.
    @Sendable func refresh(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard try context.requireIdentity().userID != nil, let credential = request.credential,
            let current = await tokens.verifyToken(credential)
        else { throw APIError.forbidden("Only a user's access token can be refreshed") }
        guard Date().timeIntervalSince(current.authTime) < Double(sessionMaxSeconds) else {
            throw APIError(
                .unauthorized,
                code: .sessionExpired,
                message: "The session is older than its limit; log in again",
                headers: [.wwwAuthenticate: "Bearer"]
            )
        }
        let userID = current.subject
        guard let version = try await repository.tokenVersion(id: userID), version == current.version else { throw APIError.unauthorized }
        let token = try await tokens.issue(userID: userID, version: version, authTime: current.authTime)
        return .envelope(data: TokenResponse(accessToken: token, expiresIn: tokens.lifetime, userID: userID.lowercased), message: "Token refreshed")
    }

    /// Ends every session of the user: all their tokens stop working at once, here and at the gateway.
    @Sendable func logout(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let userID = try context.requireIdentity().userID else {
            throw APIError.forbidden("Only a user's access token can log out")
        }
        guard try await repository.revokeTokens(id: userID) != nil else { throw APIError.unauthorized }
        context.logger.info("user logged out", metadata: ["user_id": .string(userID.lowercased)])
        return .envelope(data: EmptyPayload(), message: "Logged out; every token of this user is revoked")
    }

    /// For the gateway: whether a user's token version is current.
    @Sendable func tokenVersion(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.has(.service) else { throw APIError.forbidden("Only the platform's services may ask this") }
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)), let version = try await repository.tokenVersion(id: id)
        else { throw Self.userNotFound }
        return .envelope(data: ["token_version": version], message: "Token version")
    }

    // MARK: users

    @Sendable func list(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.userID == nil, identity.mayAccessEveryUser(.usersRead) else {
            throw APIError.forbidden("Listing users needs a service credential with the scope users:read")
        }
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        if !errors.isEmpty { throw APIError.validation(errors) }
        let search = request.uri.queryParameters.get("search").map { String($0) }
        if let search, search.isEmpty || search.count > 200 || search.contains("\u{0}") {
            errors.append(FieldError(field: "search", message: "must be 1 to 200 characters"))
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let (users, total) = try await repository.list(page: page, limit: limit, search: search)
        return .envelope(data: users, message: "Users retrieved successfully", meta: PageMeta(total: total, limit: limit, page: page))
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersRead)
        guard let user = try await cache.fetch("user:\(id.lowercased)", as: UserResource.self, load: { try await repository.find(id: id) })
        else { throw Self.userNotFound }
        return .envelope(data: user, message: "User retrieved successfully")
    }

    @Sendable func update(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersWrite)
        let body = try await request.jsonObject()
        var fields = FieldValidator(body)
        var changes = UserChanges()
        changes.name = fields.string("name", required: false, maxLength: 200)
        changes.email = fields.email("email", required: false)
        let newPassword = Self.password(&fields, "password", required: false)
        let currentPassword = fields.string("current_password", required: false, maxLength: 1024, allowEmpty: true)
        // A service that has verified the address itself may say so; otherwise a new address waits for its verification.
        let vouched = fields.bool("email_verified") ?? false
        if vouched, context.identity?.userID != nil { fields.fail("email_verified", "may be set only with a service credential") }
        if vouched, changes.email == nil { fields.fail("email_verified", "applies only together with email") }
        // A user's own token changes the email or the password only with the current password: a stolen token
        // cannot take the account over. (Services and operators act for the user without it.)
        if context.identity?.userID != nil, changes.email != nil || newPassword != nil {
            guard let currentPassword else {
                throw APIError(
                    .forbidden,
                    code: .reauthenticationRequired,
                    message: "Changing the email or the password needs current_password"
                )
            }
            guard let secrets = try await repository.secrets(id: id), try await verify(currentPassword, hash: secrets.passwordHash) else {
                throw APIError(.unauthorized, code: .invalidCredentials, message: "The current password is wrong")
            }
        }
        if let newPassword { changes.passwordHash = try await hash(newPassword) }
        if body.keys.contains("push_token") {
            let token = fields.string("push_token", required: false, maxLength: 4096)
            if let token, let problem = DeviceValidation.fcm(token) { fields.fail("push_token", problem) }
            changes.pushToken = .some(token)
        }
        if body.keys.contains("phone") { changes.phone = .some(Self.phone(&fields)) }
        // As with email: only a service that verified the number itself may say so.
        changes.phoneVerified = fields.bool("phone_verified")
        if changes.phoneVerified != nil, context.identity?.userID != nil {
            fields.fail("phone_verified", "may be set only with a service credential")
        }
        if changes.phoneVerified == true, changes.phone == nil || changes.phone == .some(nil) {
            fields.fail("phone_verified", "applies only together with phone")
        }
        let preferenceObject = fields.object("preferences")
        var preferenceFields = FieldValidator(preferenceObject ?? [:])
        let email = preferenceFields.bool("email")
        let push = preferenceFields.bool("push")
        let sms = preferenceFields.bool("sms")
        for error in preferenceFields.errors { fields.fail("preferences.\(error.field)", error.message) }
        (changes.timeZone, changes.quietHours) = Self.quietHours(&fields)
        // Only an operator or a service disables a user (their own token cannot undo it).
        changes.disabled = fields.bool("disabled")
        if changes.disabled != nil, context.identity?.userID != nil { fields.fail("disabled", "may be set only with a service credential") }
        let known: Set<String> = [
            "name", "email", "email_verified", "password", "current_password", "push_token", "preferences", "phone", "phone_verified",
            "time_zone", "quiet_hours", "disabled",
        ]
        for key in body.keys where !known.contains(key) { fields.fail(key, "is not a field of a user") }
        try fields.check()
        var message = "User updated"
        if let newEmail = changes.email, !vouched, let verification {
            changes.email = nil
            if try await requestEmailChange(id: id, to: newEmail, mailer: verification, context: context) {
                message = "User updated; a verification was sent to the new address, which is used once it is confirmed"
            }
        }
        do {
            guard var user = try await repository.update(id: id, changes) else { throw Self.userNotFound }
            if email != nil || push != nil || sms != nil {
                _ = try await repository.setPreferences(id: id, email: email, push: push, sms: sms, categories: nil)
                user = try await repository.find(id: id) ?? user
            }
            await invalidate(id)
            return .envelope(data: user, message: message)
        } catch UserRepositoryError.emailTaken {
            throw APIError(.conflict, code: .emailTaken, message: "A user with this email already exists")
        }
    }

    /// Stores the new address as pending with a fresh single-use token and mails the token to that address. Whether
    /// another user has the address is not revealed here (it is refused at confirmation, to the mailbox's owner).
    /// False: the address is already the user's (nothing to verify; any pending request is withdrawn).
    func requestEmailChange(id: UUID, to email: String, mailer: VerificationMailer, context: NotifyRequestContext) async throws -> Bool {
        guard let user = try await repository.find(id: id) else { throw Self.userNotFound }
        let (token, tokenHash) = VerificationToken.make()
        if user.email.lowercased() == email.lowercased() {
            if user.pendingEmail != nil { try await repository.cancelEmailChange(id: id) }
            return false
        }
        guard
            let previous = try await repository.requestEmailChange(id: id, email: email, tokenHash: tokenHash, ttlSeconds: mailer.settings.ttlSeconds)
        else { throw Self.userNotFound }
        do {
            try await mailer.send(userID: id, name: user.name, to: email, token: token, tokenHash: tokenHash, correlationID: context.correlationID)
        } catch {
            context.logger.error("email verification not sent", metadata: ["user_id": .string(id.lowercased), "error": .string("\(error)")])
            try? await repository.cancelEmailChange(id: id, tokenHash: tokenHash, restoring: previous)
            if let retryAfter = (error as? VerificationMailer.NotSent)?.retryAfter {
                // The gateway's per-user limit: too many verification mails in a short time.
                throw APIError(
                    .tooManyRequests,
                    code: .rateLimited,
                    message: "Too many verification mails for this user; nothing was changed; try again later",
                    headers: [.retryAfter: retryAfter]
                )
            }
            throw APIError(
                .serviceUnavailable,
                code: .verificationNotSent,
                message: "The verification of the new address could not be sent; nothing was changed; try again shortly",
                headers: [.retryAfter: "5"]
            )
        }
        await invalidate(id)
        context.logger.info("email verification sent", metadata: ["user_id": .string(id.lowercased)])
        return true
    }

    /// `POST /api/v1/users/verify-email/` `{"token": ...}`: confirms a pending address with the token mailed to it.
    @Sendable func verifyEmail(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        var fields = FieldValidator(try await request.jsonObject())
        let token = fields.string("token", maxLength: 200)
        try fields.check()
        guard let token else { throw APIError.internalError }
        switch try await repository.confirmEmail(tokenHash: VerificationToken.hash(token)) {
        case .confirmed(let user):
            if let id = UUID(text: user.userID) { await invalidate(id) }
            context.logger.info("email verified", metadata: ["user_id": .string(user.userID)])
            return .envelope(data: user, message: "Email address confirmed; log in again with it")
        case .invalid:
            throw APIError(
                .badRequest,
                code: .invalidVerificationToken,
                message: "This verification token is unknown, already used or expired; change the email again for a new one"
            )
        case .taken:
            throw APIError(.conflict, code: .emailTaken, message: "Another account uses this address by now; the change was withdrawn")
        }
    }

    @Sendable func delete(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersWrite)
        guard try await repository.delete(id: id) else { throw Self.userNotFound }
        await invalidate(id)
        context.logger.info("user deleted", metadata: ["user_id": .string(id.lowercased)])
        return .envelope(data: EmptyPayload(), message: "User and personal data deleted")
    }

    // MARK: preferences

    @Sendable func preferences(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersRead)
        guard let preferences = try await repository.preferences(id: id) else { throw Self.userNotFound }
        return .envelope(data: preferences, message: "Preferences retrieved successfully")
    }

    @Sendable func setPreferences(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersWrite)
        var fields = FieldValidator(try await request.jsonObject())
        let email = fields.bool("email")
        let push = fields.bool("push")
        let sms = fields.bool("sms")
        var categories: [String: [String: Bool]]?
        if let object = fields.object("categories") {
            categories = [:]
            for (category, value) in object {
                guard category.count <= 64, !category.isEmpty, case .object(let channels) = value else {
                    fields.fail("categories.\(category)", "must be an object like {\"email\": false}")
                    continue
                }
                for (channel, enabled) in channels {
                    guard ["email", "push", "sms"].contains(channel), case .bool(let flag) = enabled else {
                        fields.fail("categories.\(category).\(channel)", "must be email, push or sms with a boolean")
                        continue
                    }
                    categories?[category, default: [:]][channel] = flag
                }
            }
        }
        try fields.check()
        guard let preferences = try await repository.setPreferences(id: id, email: email, push: push, sms: sms, categories: categories) else {
            throw Self.userNotFound
        }
        await invalidate(id)
        return .envelope(data: preferences, message: "Preferences updated")
    }

    // MARK: contact and devices

    @Sendable func contact(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersRead)
        guard
            let contact = try await cache.fetch("contact:\(id.lowercased)", as: ContactResource.self, load: { try await repository.contact(id: id) })
        else { throw Self.userNotFound }
        return .envelope(data: contact, message: "Contact retrieved successfully")
    }

    /// At most this many users in one `POST /api/v1/users/contacts` (a bulk notification holds up to 1,000).
    static let contactsLimit = 1000

    /// `POST /api/v1/users/contacts` `{"user_ids": [...]}`: the contact data of many users in one call (the gateway's
    /// bulk path); `contacts` holds those found, `missing` the ids that name no user.
    @Sendable func contacts(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.userID == nil, identity.mayAccessEveryUser(.usersRead) else {
            throw APIError.forbidden("Looking up many users needs a service credential with the scope users:read")
        }
        let body = try await request.jsonObject(limit: 1 << 20)
        guard case .array(let raw)? = body["user_ids"], (1...Self.contactsLimit).contains(raw.count) else {
            throw APIError.validation([FieldError(field: "user_ids", message: "must be an array of 1 to \(Self.contactsLimit) user ids")])
        }
        var ids: [UUID] = []
        var errors: [FieldError] = []
        for (index, value) in raw.enumerated() {
            if let id = value.stringValue.flatMap(UUID.init(text:)) {
                ids.append(id)
            } else {
                errors.append(FieldError(field: "user_ids[\(index)]", message: "must be a UUID"))
            }
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        var seen = Set<UUID>()
        ids = ids.filter { seen.insert($0).inserted }
        let byKey = try await cache.fetchMany(ids.map { "contact:\($0.lowercased)" }, as: ContactResource.self) { keys in
            let wanted = keys.compactMap { UUID(text: String($0.dropFirst("contact:".count))) }
            let loaded = try await repository.contacts(ids: wanted)
            return Dictionary(uniqueKeysWithValues: loaded.map { ("contact:\($0.key.lowercased)", $0.value) })
        }
        let found = ids.compactMap { byKey["contact:\($0.lowercased)"] }
        let missing = ids.filter { byKey["contact:\($0.lowercased)"] == nil }.map(\.lowercased)
        return .envelope(data: ContactsResource(contacts: found, missing: missing), message: "Contacts retrieved successfully")
    }

    @Sendable func devices(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersRead)
        guard try await repository.find(id: id) != nil else { throw Self.userNotFound }
        let devices = try await repository.devices(userID: id, activeOnly: false)
        return .envelope(
            data: devices,
            message: "Devices retrieved successfully",
            meta: .whole(devices.count)
        )
    }

    @Sendable func addDevice(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersWrite)
        var fields = FieldValidator(try await request.jsonObject())
        let platform = fields.oneOf("platform", ["fcm", "webpush", "apns", "onesignal"])
        var token: String?
        var p256dh: String?
        var auth: String?
        switch platform {
        case "webpush":
            token = fields.string("endpoint", maxLength: 2048)
            var keys = FieldValidator(fields.object("keys", required: true) ?? [:])
            p256dh = keys.string("p256dh", maxLength: 200)
            auth = keys.string("auth", maxLength: 100)
            if let token {
                for error in DeviceValidation.webpush(endpoint: token, p256dh: p256dh, auth: auth, policy: webPushPolicy) {
                    fields.fail(error.field, error.message)
                }
            }
        case "apns":
            token = fields.string("token", maxLength: 200)
            if let token, let problem = DeviceValidation.apns(token) { fields.fail("token", problem) }
        case "onesignal":
            token = fields.string("token", maxLength: 36)
            if let token, UUID(text: token) == nil { fields.fail("token", "must be a OneSignal subscription id (a UUID)") }
            token = token.flatMap(UUID.init(text:))?.lowercased ?? token
        case "fcm":
            token = fields.string("token", maxLength: 4096)
            if let token, let problem = DeviceValidation.fcm(token) { fields.fail("token", problem) }
        default:
            break
        }
        try fields.check()
        guard let platform, let token else { throw APIError.internalError }
        let added: (DeviceResource, Bool)?
        do {
            added = try await repository.addDevice(userID: id, platform: platform, token: token, p256dh: p256dh, auth: auth, limit: maxDevices)
        } catch let error as UserRepository.DeviceLimitReached {
            throw APIError(
                .conflict,
                code: .deviceLimitReached,
                message: "This user already has \(error.limit) active devices; remove one before registering another"
            )
        }
        guard let (device, created) = added else { throw Self.userNotFound }
        await invalidate(id)
        return .envelope(created ? .created : .ok, data: device, message: created ? "Device registered" : "Device already registered")
    }

    @Sendable func deleteDevice(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersWrite)
        guard let device = context.parameters.get("device").flatMap(UUID.init(text:)),
            try await repository.deleteDevice(userID: id, deviceID: device)
        else { throw APIError.notFound(.deviceNotFound, "No device with this id for this user") }
        await invalidate(id)
        return .envelope(data: EmptyPayload(), message: "Device removed")
    }

    /// For the push worker: the provider rejected this token.
    @Sendable func deactivateDevice(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let id = try authorize(context, scope: .usersWrite)
        var fields = FieldValidator(try await request.jsonObject())
        let reason = fields.string("reason", required: false, maxLength: 500) ?? "deactivated"
        try fields.check()
        guard let device = context.parameters.get("device").flatMap(UUID.init(text:)),
            let deactivated = try await repository.deactivateDevice(userID: id, deviceID: device, reason: reason)
        else { throw APIError.notFound(.deviceNotFound, "No device with this id for this user") }
        await invalidate(id)
        context.logger.info("device deactivated", metadata: ["user_id": .string(id.lowercased), "device_id": .string(deactivated.deviceID)])
        return .envelope(data: deactivated, message: "Device deactivated")
    }

    // MARK: helpers

    static let userNotFound = APIError.notFound(.userNotFound, "No user with this id")

    /// The user named in the path, if the caller may reach them: their own token, or a service with `scope`.
    func authorize(_ context: NotifyRequestContext, scope: Scope) throws -> UUID {
        let identity = try context.requireIdentity()
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)) else { throw Self.userNotFound }
        guard identity.mayAccess(user: id, scope: scope) else {
            throw APIError.forbidden(
                identity.userID != nil ? "A user's token reaches only that user's own records" : "This credential lacks the scope \(scope)"
            )
        }
        return id
    }

    func invalidate(_ id: UUID) async {
        await cache.invalidate(["user:\(id.lowercased)", "contact:\(id.lowercased)"])
    }

    /// At least 8 characters and at most 72 bytes (bcrypt's limit), with a letter and a non-letter.
    static func password(_ fields: inout FieldValidator, _ field: String, required: Bool) -> String? {
        guard let password = fields.string(field, required: required, maxLength: 200, allowEmpty: true) else { return nil }
        if password.count < 8 {
            fields.fail(field, "must be at least 8 characters")
        } else if password.utf8.count > 72 {
            fields.fail(field, "must be at most 72 bytes")
        } else if !password.contains(where: \.isLetter) || password.allSatisfy(\.isLetter) {
            fields.fail(field, "must contain a letter and a digit, space or symbol")
        } else {
            return password
        }
        return nil
    }

    func hash(_ password: String) async throws -> String {
        let cost = bcryptCost
        do { return try await hasher.hash(password, cost: cost) } catch is PasswordHasher.Busy { throw APIError.hashingBusy }
    }

    func verify(_ password: String, hash: String) async throws -> Bool {
        do { return try await hasher.verify(password, hash: hash) } catch is PasswordHasher.Busy { throw APIError.hashingBusy }
    }
}
