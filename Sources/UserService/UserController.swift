import Foundation
import HummingbirdBcrypt
import Hummingbird
import Logging
import NIOPosix
import NotificationModel
import NotifyHTTP
import RedisCache

/// The users API: registration and lookup. Lookups read through the Redis cache; writes invalidate it.
struct UserController: Sendable {
    let repository: UserRepository
    let cache: RedisCache
    let bcryptCost: UInt8

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/users", use: create)
        router.get("/api/v1/users/:id", use: show)
        router.get("/users/:id", use: show)
    }

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        var fields = FieldValidator(try await request.jsonObject())
        let name = fields.string("name", maxLength: 200)
        let email = fields.email("email")
        let password = fields.string("password", maxLength: 72, allowEmpty: true)
        if let password, password.count < 8 { fields.fail("password", "must be at least 8 characters") }
        let pushToken = fields.string("push_token", required: false, maxLength: 4096)
        let preferences = fields.object("preferences") ?? [:]
        var preferenceFields = FieldValidator(preferences)
        let emailEnabled = preferenceFields.bool("email") ?? true
        let pushEnabled = preferenceFields.bool("push") ?? true
        for error in preferenceFields.errors { fields.fail("preferences.\(error.field)", error.message) }
        try fields.check()
        guard let name, let email, let password else { throw APIError.internalError }

        let cost = bcryptCost
        let hash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
        do {
            let user = try await repository.create(
                name: name, email: email, passwordHash: hash, pushToken: pushToken, emailEnabled: emailEnabled, pushEnabled: pushEnabled)
            context.logger.info("user created", metadata: ["user_id": .string(user.userID)])
            return .envelope(.created, data: user, message: "User created")
        } catch UserRepositoryError.emailTaken {
            throw APIError(.conflict, code: "EMAIL_TAKEN", message: "A user with this email already exists")
        }
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else {
            throw APIError.notFound("USER_NOT_FOUND", "No user with this id")
        }
        let key = "user:\(id.uuidString.lowercased())"
        if let cached = await cache.get(key), let user = try? JSONDecoder.iso8601.decode(UserResource.self, from: Data(cached.utf8)) {
            return .envelope(data: user, message: "User retrieved successfully")
        }
        guard let user = try await repository.find(id: id) else {
            throw APIError.notFound("USER_NOT_FOUND", "No user with this id")
        }
        if let data = try? JSONEncoder.iso8601.encode(user) { await cache.set(key, String(decoding: data, as: UTF8.self)) }
        return .envelope(data: user, message: "User retrieved successfully")
    }
}

extension JSONEncoder {
    static var iso8601: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }
}

extension JSONDecoder {
    static var iso8601: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
