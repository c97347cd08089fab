import Foundation
import Gateway
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Migrations
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotifyConfig
import TemplateService
import UserService

/// One service in this test process, its router driven by `app.test(.router)`, against the real PostgreSQL (the
/// test's own copies of the databases, the service logged in as its role) and Redis: HTTP behaviour without
/// subprocesses. It offers the calls of `Stack` that such tests use, with paths instead of URLs. The gateway's
/// user and template services run in this process too, live on their own ports (`.live`), as its peers.
struct RouterHarness: ServiceClient {
    let client: any TestClientProtocol
    let infra: TestInfrastructure
    /// The services the one under test calls, live in this process: `url(service)` names them.
    var peers: [Stack.Service: any TestClientProtocol] = [:]
    /// An API key of the client `test-client` with `notifications:write` and `notifications:read` (gateway only).
    var apiKey = ""

    /// Paths are relative to the service: the base of its own URLs is empty; a peer's is `peer:<service>`.
    func url(_ service: Stack.Service) -> String { peers[service] == nil ? "" : "peer:" + service.rawValue }

    func perform(_ method: HTTPMethod, _ path: String, json: Any?, headers: [String: String]) async throws -> Stack.Reply {
        var target = client
        var path = path
        for (service, peer) in peers where path.hasPrefix("peer:" + service.rawValue + "/") {
            target = peer
            path = String(path.dropFirst(("peer:" + service.rawValue).count))
        }
        var fields = HTTPFields()
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        var body: ByteBuffer?
        if let json {
            fields.append(HTTPField(name: .contentType, value: "application/json"))
            body = ByteBuffer(data: try JSONSerialization.data(withJSONObject: json))
        }
        let response = try await target.executeRequest(uri: path, method: HTTPRequest.Method(method.rawValue)!, headers: fields, body: body)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
        return Stack.Reply(
            status: Int(response.status.code),
            headers: HTTPHeaders(response.headers.map { ($0.name.rawName, $0.value) }),
            json: object
        )
    }

    /// A request with exactly these body bytes (a signed webhook: the signature covers them).
    func raw(_ method: HTTPMethod, _ path: String, body: Data, headers: [String: String]) async throws -> Stack.Reply {
        var fields = HTTPFields()
        for (name, value) in headers { fields.append(HTTPField(name: HTTPField.Name(name)!, value: value)) }
        let response = try await client.executeRequest(
            uri: path,
            method: HTTPRequest.Method(method.rawValue)!,
            headers: fields,
            body: ByteBuffer(data: body)
        )
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] ?? [:]
        return Stack.Reply(
            status: Int(response.status.code),
            headers: HTTPHeaders(response.headers.map { ($0.name.rawName, $0.value) }),
            json: object
        )
    }

    /// `service` in process, configured from the environment its subprocess would get (with `extra`), logged in to
    /// PostgreSQL as its role.
    static func with<T: Sendable>(
        _ service: Stack.Service,
        extra: [String: String] = [:],
        _ body: @Sendable (RouterHarness) async throws -> T
    ) async throws -> T {
        let infra = try TestInfrastructure()
        do {
            try await TemplateDatabases.clone(into: infra)
            let result: T
            switch service {
            case .users:
                let app = await buildUserService(try UserServiceConfiguration(environment(infra, .users, extra)), logger: TestInfrastructure.logger)
                result = try await app.test(.router) { client in try await body(RouterHarness(client: client, infra: infra)) }
            case .templates:
                let app = buildTemplateService(
                    try TemplateServiceConfiguration(environment(infra, .templates, extra)),
                    logger: TestInfrastructure.logger
                )
                result = try await app.test(.router) { client in try await body(RouterHarness(client: client, infra: infra)) }
            case .gateway:
                let users = await buildUserService(try UserServiceConfiguration(environment(infra, .users, extra)), logger: TestInfrastructure.logger)
                let templates = buildTemplateService(
                    try TemplateServiceConfiguration(environment(infra, .templates, extra)),
                    logger: TestInfrastructure.logger
                )
                result = try await users.test(.live) { usersClient in
                    try await templates.test(.live) { templatesClient in
                        var settings = extra
                        settings["NOTIFY_USERS_URL"] = "http://localhost:\(usersClient.port!)"
                        settings["NOTIFY_TEMPLATES_URL"] = "http://localhost:\(templatesClient.port!)"
                        let gateway = await buildGateway(
                            try GatewayConfiguration(environment(infra, .gateway, settings)),
                            logger: TestInfrastructure.logger
                        )
                        return try await gateway.test(.router) { client in
                            var harness = RouterHarness(client: client, infra: infra, peers: [.users: usersClient, .templates: templatesClient])
                            harness.apiKey = try await harness.createKey(scopes: ["notifications:write", "notifications:read"])
                            return try await body(harness)
                        }
                    }
                }
            default:
                preconditionFailure("\(service.rawValue) has no in-process harness yet")
            }
            await infra.dropDatabases()
            return result
        } catch {
            await infra.dropDatabases()
            throw error
        }
    }

    /// The environment `service` would get as a subprocess, logged in to PostgreSQL as its own role.
    static func environment(_ infra: TestInfrastructure, _ service: Stack.Service, _ extra: [String: String]) -> EnvironmentReader {
        let role =
            switch service {
            case .users: infra.roles.users!
            case .templates: infra.roles.templates!
            default: infra.roles.notifications!
            }
        var settings = extra
        settings["NOTIFY_PG_USER"] = role.name
        settings["NOTIFY_PG_PASSWORD"] = role.password
        return EnvironmentReader(infra.processEnvironment(settings))
    }

    static func templates<T: Sendable>(_ body: @Sendable (RouterHarness) async throws -> T) async throws -> T {
        try await with(.templates, body)
    }
}
