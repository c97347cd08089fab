import AsyncHTTPClient
import Broker
import Credentials
import Hummingbird
import Logging
import NotifyConfig
import NotifyHTTP
import PostgresNIO

public struct AdminConfiguration: Sendable {
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var rabbit: RabbitSettings
    public var serviceKey: ServiceKeySettings

    public init(_ env: EnvironmentReader) throws {
        var problems: [String] = []
        listen = ListenSettings(env, portKey: "NOTIFY_ADMIN_PORT", defaultPort: 8005, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        rabbit = RabbitSettings(env, problems: &problems)
        serviceKey = ServiceKeySettings(env, problems: &problems)
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// The admin service (port 8005): health and API key management (the first admin key comes from
/// `notify admin create-key --scopes admin`). The dashboard comes with the operations issue.
public func buildAdmin(_ configuration: AdminConfiguration, logger: Logger) async -> some ApplicationProtocol {
    let postgres = PostgresClient(configuration: configuration.postgres.clientConfiguration(.notifications), backgroundLogger: logger)
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    let management = RabbitManagementClient(
        http: http,
        baseURL: configuration.rabbit.managementURL,
        user: configuration.rabbit.user,
        password: configuration.rabbit.password,
        vhost: configuration.rabbit.vhost
    )
    let router = Router(context: NotifyRequestContext.self)
    router.add(middleware: EnvelopeMiddleware())
    HealthRoutes(
        service: "admin",
        checks: [
            .timed("postgres") { _ = try await postgres.query("SELECT 1", logger: logger) },
            .timed("rabbitmq", critical: false) { try await management.ping() },
        ]
    ).register(on: router)
    let store = APIKeyStore(client: postgres, logger: logger)
    let api = router.group().add(
        middleware: CredentialMiddleware(
            serviceKey: ServiceKeyMiddleware(serviceKey: configuration.serviceKey.key),
            tokens: nil,
            store: store,
            cacheSeconds: 0
        )
    )
    APIKeyController(store: store).register(on: api)
    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "notify-admin"),
        services: [postgres, HTTPClientService(client: http)],
        logger: logger
    )
}
