import AsyncHTTPClient
import Broker
import Foundation
import Logging
import Migrations
import NotifyConfig
import PostgresAccess
import PostgresNIO

/// The infrastructure the test command started (deploy/local/test exports its addresses), plus a unique database
/// prefix, RabbitMQ vhost and Redis key prefix for each test, so tests never see each other's data.
struct TestInfrastructure: Sendable {
    let env: [String: String]
    let postgres: PostgresSettings
    let rabbit: RabbitSettings
    let redis: RedisSettings
    let smtpHost: String
    let smtpPort: Int
    let maildir: URL
    let smtpControl: String
    let serviceKey: String
    let runID: String
    /// The roles the services of a test stack log in as (cluster-wide, shared by every test; each test's migration
    /// grants them their rights in its own databases).
    let roles = ServiceRoles(
        users: .init(name: "notify_test_users", password: "users-role-password"),
        templates: .init(name: "notify_test_templates", password: "templates-role-password"),
        notifications: .init(name: "notify_test_notifications", password: "notifications-role-password")
    )

    static let logger: Logger = {
        var logger = Logger(label: "tests")
        logger.logLevel = .warning
        return logger
    }()

    init() throws {
        let environment = ProcessInfo.processInfo.environment
        guard environment["NOTIFY_PG_PORT"] != nil, let maildir = environment["NOTIFY_SMTP_MAILDIR"] else {
            throw MissingInfrastructure()
        }
        var problems: [String] = []
        let config = EnvironmentReader(environment)
        let runID = "t" + String(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(10))
        self.runID = runID
        var postgres = PostgresSettings(config, problems: &problems)
        postgres.databasePrefix = runID + "_"
        self.postgres = postgres
        var rabbit = RabbitSettings(config, problems: &problems)
        rabbit.vhost = runID
        self.rabbit = rabbit
        var redis = RedisSettings(config, problems: &problems)
        redis.keyPrefix = runID + ":"
        self.redis = redis
        smtpHost = config.string("NOTIFY_SMTP_HOST", default: "127.0.0.1")
        smtpPort = config.int("NOTIFY_SMTP_PORT", default: 2525, problems: &problems)
        self.maildir = URL(fileURLWithPath: maildir)
        smtpControl = config.string("NOTIFY_SMTP_CONTROL", default: "http://127.0.0.1:\(smtpPort + 1)")
        serviceKey = "svc_" + UUID().uuidString
        self.env = environment
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }

    /// The environment a `notify` subprocess gets: the test's database prefix, vhost and Redis prefix.
    func processEnvironment(_ extra: [String: String]) -> [String: String] {
        var environment = env
        environment["NOTIFY_PG_DB_PREFIX"] = postgres.databasePrefix
        environment["NOTIFY_RABBIT_VHOST"] = rabbit.vhost
        environment["NOTIFY_REDIS_PREFIX"] = redis.keyPrefix
        environment["NOTIFY_SERVICE_KEY"] = serviceKey
        environment["NOTIFY_JWT_SECRET"] = "test-signing-key-" + runID + "-0123456789abcdef"
        environment["NOTIFY_LOG_LEVEL"] = environment["NOTIFY_TEST_LOG_LEVEL"] ?? "info"
        environment["NOTIFY_BCRYPT_COST"] = "4"
        // Limits high enough for the load the tests make; the rate-limit tests set their own. The limiter still runs.
        environment["NOTIFY_RATE_LIMIT_PER_KEY"] = "100000/s"
        environment["NOTIFY_RATE_LIMIT_PER_USER"] = "100000/s"
        environment["NOTIFY_RATE_LIMIT_KEY_BURST"] = "100000"
        environment["NOTIFY_RATE_LIMIT_USER_BURST"] = "100000"
        // The tests change users and templates and expect the very next call to see it; the cache test turns it on.
        environment["NOTIFY_DIRECTORY_CACHE_SECONDS"] = "0"
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// The management API as the tests use it: a request may take long on a loaded machine (creating a vhost starts
    /// its message stores, which write to disk), so each gets 30 s rather than the services' 5 s.
    func management(_ http: HTTPClient) -> RabbitManagementClient {
        RabbitManagementClient(
            http: http,
            baseURL: rabbit.managementURL,
            user: rabbit.user,
            password: rabbit.password,
            vhost: rabbit.vhost,
            timeout: .seconds(30)
        )
    }

    /// Runs `body` with a client connected to one of this test's databases (as the services connect).
    func withDatabase<T: Sendable>(_ database: PostgresSettings.Database, _ body: @Sendable (Database) async throws -> T) async throws -> T {
        let client = Database(postgres, database: database, applicationName: "notify-tests", logger: Self.logger)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// Drops this test's databases.
    func dropDatabases() async {
        let client = PostgresClient(configuration: postgres.clientConfiguration(databaseName: "postgres"), backgroundLogger: Self.logger)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            for database in PostgresSettings.Database.allCases {
                let name = postgres.databaseName(database)
                _ = try? await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \"\(name)\" WITH (FORCE)"), logger: Self.logger)
            }
            group.cancelAll()
        }
    }
}

struct MissingInfrastructure: Error, CustomStringConvertible {
    var description: String { "run the tests through deploy/local/test, which starts PostgreSQL, RabbitMQ, Redis and the SMTP sink" }
}
