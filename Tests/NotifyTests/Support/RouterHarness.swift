import Foundation
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
/// subprocesses. It offers the calls of `Stack` that such tests use, with paths instead of URLs.
struct RouterHarness: ServiceClient {
    let client: any TestClientProtocol
    let infra: TestInfrastructure

    /// Paths are relative to the service: the base of every URL is empty.
    func url(_ service: Stack.Service) -> String { "" }

    func perform(_ method: HTTPMethod, _ path: String, json: Any?, headers: [String: String]) async throws -> Stack.Reply {
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
            let role = service == .users ? infra.roles.users! : infra.roles.templates!
            var settings = extra
            settings["NOTIFY_PG_USER"] = role.name
            settings["NOTIFY_PG_PASSWORD"] = role.password
            let env = EnvironmentReader(infra.processEnvironment(settings))
            let result: T
            switch service {
            case .users:
                let app = await buildUserService(try UserServiceConfiguration(env), logger: TestInfrastructure.logger)
                result = try await app.test(.router) { client in try await body(RouterHarness(client: client, infra: infra)) }
            case .templates:
                let app = buildTemplateService(try TemplateServiceConfiguration(env), logger: TestInfrastructure.logger)
                result = try await app.test(.router) { client in try await body(RouterHarness(client: client, infra: infra)) }
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

    static func templates<T: Sendable>(_ body: @Sendable (RouterHarness) async throws -> T) async throws -> T {
        try await with(.templates, body)
    }
}
