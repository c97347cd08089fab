import Credentials
import Foundation
import NIOHTTP1
import NotifyConfig
import PostgresAccess
import PostgresNIO
import RedisCache

/// What a test calls the platform through: a whole stack of subprocesses (`Stack`) or one service's router in this
/// process (`RouterHarness`). The helpers below work with either.
protocol ServiceClient: Sendable {
    var infra: TestInfrastructure { get }
    /// An API key of the client `test-client` with `notifications:write` and `notifications:read` (where a gateway runs).
    var apiKey: String { get }
    /// The base URL of a service ("" in process: paths alone).
    func url(_ service: Stack.Service) -> String
    func perform(_ method: HTTPMethod, _ url: String, json: Any?, headers: [String: String]) async throws -> Stack.Reply
}

extension ServiceClient {
    var serviceAuth: [String: String] { ["Authorization": "Bearer \(infra.serviceKey)"] }
    var clientAuth: [String: String] { ["Authorization": "Bearer \(apiKey)"] }

    func send(_ body: [String: Any], headers: [String: String] = [:]) async throws -> Stack.Reply {
        try await call(.POST, "\(url(.gateway))/api/v1/notifications/", json: body, headers: clientAuth.merging(headers) { $1 })
    }

    func notification(_ id: String) async throws -> Stack.Reply {
        try await call(.GET, "\(url(.gateway))/api/v1/notifications/\(id)/", headers: clientAuth)
    }

    /// A single value from this test's notifications database.
    func scalar<T: PostgresDecodable & Sendable>(_ query: PostgresQuery, as type: T.Type = T.self) async throws -> T? {
        try await infra.withDatabase(.notifications) { client in
            for try await value in try await client.query(query, logger: TestInfrastructure.logger).decode(T.self) { return value }
            return nil
        }
    }

    func call(_ method: HTTPMethod, _ url: String, json: Any? = nil, headers: [String: String] = [:]) async throws -> Stack.Reply {
        try await perform(method, url, json: json, headers: headers)
    }

    func createKey(client name: String = "test-client", scopes: [String]) async throws -> String {
        try await infra.withDatabase(.notifications) { client in
            try await APIKeyStore(client: client, logger: TestInfrastructure.logger).create(client: name, name: "test", scopes: scopes).key
        }
    }

    func createUser(name: String = "Ada Lovelace", email: String? = nil, pushToken: String? = nil, emailEnabled: Bool = true) async throws -> String {
        var body: [String: Any] = [
            "name": name, "email": email ?? "ada.\(UUID().uuidString.prefix(8))@example.com", "password": "correct horse battery",
            "preferences": ["email": emailEnabled, "push": true],
        ]
        if let pushToken { body["push_token"] = pushToken }
        let reply = try await call(.POST, "\(url(.users))/api/v1/users/", json: body, headers: serviceAuth)
        guard reply.status == 201, let id = reply.data["user_id"] as? String else { throw UnexpectedReply(reply: reply.json, status: reply.status) }
        return id
    }

    /// Changes a user's preferences through the user service (as the user's own backend would).
    func setPreferences(_ userID: String, _ preferences: [String: Any]) async throws -> Stack.Reply {
        try await call(.PUT, "\(url(.users))/api/v1/users/\(userID)/preferences/", json: preferences, headers: serviceAuth)
    }

    func createTemplate(_ fields: [String: Any]) async throws {
        let reply = try await call(.POST, "\(url(.templates))/api/v1/templates/", json: fields, headers: serviceAuth)
        guard reply.status == 201 else { throw UnexpectedReply(reply: reply.json, status: reply.status) }
    }

    func redisKeys(matching pattern: String) async throws -> [String] {
        let redis = RedisClient(host: infra.redis.host, port: infra.redis.port, timeoutMilliseconds: 5000)
        guard case .array(let values) = try await redis.command(["KEYS", infra.redis.keyPrefix + pattern]) else { return [] }
        return values.compactMap { if case .string(let key) = $0 { String(key.dropFirst(infra.redis.keyPrefix.count)) } else { nil } }
    }
}
