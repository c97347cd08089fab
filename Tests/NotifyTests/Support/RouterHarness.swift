import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Migrations
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotifyConfig
import RedisCache
import TemplateService

/// One service in this test process, its router driven by `app.test(.router)`, against the real PostgreSQL (the
/// test's own copies of the databases, the service logged in as its role) and Redis: HTTP behaviour without
/// subprocesses. It offers the calls of `Stack` that such tests use, with paths instead of URLs.
struct RouterHarness: Sendable {
    let client: any TestClientProtocol
    let infra: TestInfrastructure

    /// Paths are relative to the service: the base of every URL is empty.
    func url(_ service: Stack.Service) -> String { "" }

    var serviceAuth: [String: String] { ["Authorization": "Bearer \(infra.serviceKey)"] }

    func call(_ method: HTTPMethod, _ path: String, json: Any? = nil, headers: [String: String] = [:]) async throws -> Stack.Reply {
        var fields = HTTPFields()
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        var body: ByteBuffer?
        if let json {
            fields.append(HTTPField(name: .contentType, value: "application/json"))
            body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
        }
        let response = try await client.executeRequest(uri: path, method: HTTPRequest.Method(method.rawValue)!, headers: fields, body: body)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
        return Stack.Reply(
            status: Int(response.status.code),
            headers: HTTPHeaders(response.headers.map { ($0.name.rawName, $0.value) }),
            json: object
        )
    }

    func createTemplate(_ fields: [String: Any]) async throws {
        let reply = try await call(.POST, "/api/v1/templates/", json: fields, headers: serviceAuth)
        guard reply.status == 201 else { throw UnexpectedReply(reply: reply.json, status: reply.status) }
    }

    func redisKeys(matching pattern: String) async throws -> [String] {
        let redis = RedisClient(host: infra.redis.host, port: infra.redis.port, timeoutMilliseconds: 5000)
        guard case .array(let values) = try await redis.command(["KEYS", infra.redis.keyPrefix + pattern]) else { return [] }
        return values.compactMap { if case .string(let key) = $0 { String(key.dropFirst(infra.redis.keyPrefix.count)) } else { nil } }
    }

    /// The template service, in process.
    static func templates<T: Sendable>(_ body: @Sendable (RouterHarness) async throws -> T) async throws -> T {
        let infra = try TestInfrastructure()
        do {
            try await TemplateDatabases.clone(into: infra)
            var postgres = infra.postgres
            let role = infra.roles.templates!
            postgres.user = role.name
            postgres.password = role.password ?? ""
            let app = buildTemplateService(
                TemplateServiceConfiguration(
                    listen: ListenSettings(host: "127.0.0.1", port: 0),
                    postgres: postgres,
                    redis: infra.redis,
                    serviceKey: ServiceKeySettings(key: infra.serviceKey)
                ),
                logger: TestInfrastructure.logger
            )
            let result = try await app.test(.router) { client in try await body(RouterHarness(client: client, infra: infra)) }
            await infra.dropDatabases()
            return result
        } catch {
            await infra.dropDatabases()
            throw error
        }
    }
}
