import Admin
import ArgumentParser
import Credentials
import Crypto
import Foundation
import Gateway
import Hummingbird
import HummingbirdBcrypt
import Logging
import Migrations
import NotificationModel
import NotifyConfig
import NotifyLogging
import PostgresAccess
import PostgresNIO
import PushTransport
import Relay
import ServiceLifecycle
import Telemetry
import TemplateService
import UnixSignals
import UserService
import Workers

@main
struct Notify: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify",
        abstract: "The notification platform: one binary, one subcommand per process.",
        subcommands: [
            GatewayCommand.self, UsersCommand.self, TemplatesCommand.self, EmailWorkerCommand.self, PushWorkerCommand.self, SMSWorkerCommand.self,
            AdminCommand.self, RelayCommand.self, MigrateCommand.self,
        ]
    )
}

/// Installs the JSON log handler once and returns the process's logger.
func bootstrap(_ component: String) -> Logger {
    LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
    return Logger.make(component: component)
}

/// Runs an application, turning a configuration problem into a clear message and exit code 2.
func serve<App: ApplicationProtocol>(_ component: String, _ build: (EnvironmentReader, Logger) async throws -> App) async throws {
    let logger = bootstrap(component)
    Telemetry.bootstrap()
    let app: App
    do {
        app = try await build(EnvironmentReader(), logger)
    } catch let error as ConfigurationError {
        FileHandle.standardError.write(Data("notify \(component): \(error.description)\n".utf8))
        throw ExitCode(2)
    }
    // SIGTERM/SIGINT start a graceful shutdown (workers finish what they hold); past the bound, what is left is
    // cancelled: its jobs keep their lease and are rescued, its messages were never acked.
    var configuration = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
    configuration.maximumGracefulShutdownDuration = .seconds(
        Int(ProcessInfo.processInfo.environment["NOTIFY_SHUTDOWN_SECONDS"] ?? "") ?? 30
    )
    try await ServiceGroup(configuration: configuration).run()
}

struct GatewayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "gateway", abstract: "The public REST API (port 8000).")
    func run() async throws { try await serve("gateway") { env, logger in await buildGateway(try GatewayConfiguration(env), logger: logger) } }
}

struct UsersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "users", abstract: "The user service (port 8001).")
    func run() async throws { try await serve("users") { env, logger in await buildUserService(try UserServiceConfiguration(env), logger: logger) } }
}

struct TemplatesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "templates", abstract: "The template service (port 8002).")
    func run() async throws {
        try await serve("templates") { env, logger in buildTemplateService(try TemplateServiceConfiguration(env), logger: logger) }
    }
}

struct EmailWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "email-worker", abstract: "Delivers email.queue over SMTP (port 8003).")
    func run() async throws {
        try await serve("email-worker") { env, logger in buildWorker(try WorkerConfiguration(channel: .email, env), logger: logger) }
    }
}

struct PushWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "push-worker", abstract: "Delivers push.queue to the push provider (port 8004).")
    func run() async throws {
        try await serve("push-worker") { env, logger in buildWorker(try WorkerConfiguration(channel: .push, env), logger: logger) }
    }
}

struct SMSWorkerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sms-worker",
        abstract: "Delivers sms.queue through the SMS providers, Twilio and Vonage (port 8007)."
    )
    func run() async throws {
        try await serve("sms-worker") { env, logger in buildWorker(try WorkerConfiguration(channel: .sms, env), logger: logger) }
    }
}

struct RelayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "relay", abstract: "Publishes the outbox to RabbitMQ (port 8006).")
    func run() async throws { try await serve("relay") { env, logger in buildRelay(try RelayConfiguration(env), logger: logger) } }
}

struct AdminCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "admin",
        abstract: "The operator service (port 8005) and operator tasks.",
        subcommands: [Serve.self, CreateKey.self, CreateAdmin.self, RemoveAdmin.self, VAPIDKeys.self],
        defaultSubcommand: Serve.self
    )

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "serve", abstract: "Run the admin service.")
        func run() async throws { try await serve("admin") { env, logger in await buildAdmin(try AdminConfiguration(env), logger: logger) } }
    }

    struct CreateAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-admin",
            abstract: "Create an operator for the admin service and dashboard (or set a new password for one)."
        )

        @Option(help: "The operator's email (the login).") var email: String

        func run() async throws {
            let logger = bootstrap("admin")
            var problems: [String] = []
            let env = EnvironmentReader()
            let settings = PostgresSettings(env, problems: &problems)
            guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
            // The password comes from NOTIFY_ADMIN_PASSWORD, never from the command line (it would show in `ps`);
            // without it one is made and printed once.
            let given = env.optionalString("NOTIFY_ADMIN_PASSWORD")
            let password = given ?? (0..<18).map { _ in String("abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789".randomElement()!) }.joined()
            guard password.count >= 12 else { throw ValidationError("NOTIFY_ADMIN_PASSWORD must be at least 12 characters") }
            let hash = Bcrypt.hash(password, cost: UInt8(clamping: Int(env.string("NOTIFY_BCRYPT_COST", default: "10")) ?? 10))
            let client = Database(settings, database: .notifications, applicationName: "notify-admin-cli", logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.run() }
                let created = try await AdminUserStore(client: client, logger: logger).upsert(email: email, passwordHash: hash)
                if given == nil { print(password) }
                logger.info(created ? "admin created" : "admin password changed", metadata: ["email": .string(email)])
                group.cancelAll()
            }
        }
    }

    struct RemoveAdmin: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "remove-admin",
            abstract: "Remove an operator; their sessions end at once."
        )

        @Option(help: "The operator's email.") var email: String

        func run() async throws {
            let logger = bootstrap("admin")
            var problems: [String] = []
            let settings = PostgresSettings(EnvironmentReader(), problems: &problems)
            guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
            let client = Database(settings, database: .notifications, applicationName: "notify-admin-cli", logger: logger)
            let removed = try await withThrowingTaskGroup(of: Bool.self) { group in
                group.addTask {
                    try await client.run()
                    return false
                }
                defer { group.cancelAll() }
                return try await AdminUserStore(client: client, logger: logger).remove(email: email)
            }
            guard removed else { throw ValidationError("no operator with the email \(email)") }
            logger.info("admin removed", metadata: ["email": .string(email)])
        }
    }

    struct VAPIDKeys: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "vapid-keys",
            abstract: "Make a VAPID key pair for Web Push: the private key for NOTIFY_VAPID_PRIVATE_KEY, the public key for browsers."
        )

        func run() throws {
            let key = P256.Signing.PrivateKey()
            print("NOTIFY_VAPID_PRIVATE_KEY=\(Base64URL.encode(key.rawRepresentation))")
            print("VAPID public key (applicationServerKey): \(Base64URL.encode(key.publicKey.x963Representation))")
        }
    }

    struct CreateKey: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "create-key",
            abstract: "Create an API key; the key is printed once and stored only as a hash."
        )

        @Option(help: "The client (calling backend) the key belongs to; request_id is unique per client.") var client: String
        @Option(help: "A name for the key.") var name: String = "default"
        @Option(help: "Comma-separated scopes: notifications:write, notifications:read, admin, service.")
        var scopes: String = "notifications:write,notifications:read"

        func run() async throws {
            let logger = bootstrap("admin")
            var problems: [String] = []
            let settings = PostgresSettings(EnvironmentReader(), problems: &problems)
            guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
            let scopeList = scopes.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            let unknown = scopeList.filter { !APIKeyStore.knownScopes.contains($0) }
            guard unknown.isEmpty, !scopeList.isEmpty else { throw ValidationError("unknown scopes: \(unknown.joined(separator: ", "))") }
            let client = Database(settings, database: .notifications, applicationName: "notify-admin-cli", logger: logger)
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await client.run() }
                let (key, record) = try await APIKeyStore(client: client, logger: logger).create(
                    client: self.client,
                    name: name,
                    scopes: scopeList
                )
                print(key)
                FileHandle.standardError.write(
                    Data("created key \(record.prefix) for client \(record.client) with scopes \(scopeList.joined(separator: ","))\n".utf8)
                )
                group.cancelAll()
            }
        }
    }
}

struct MigrateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Create the databases and apply sql/ migrations (idempotent, safe to run concurrently)."
    )

    @Option(help: "The migrations directory.") var directory: String = ProcessInfo.processInfo.environment["NOTIFY_SQL_DIR"] ?? "sql"

    func run() async throws {
        let logger = bootstrap("migrate")
        var problems: [String] = []
        let settings = PostgresSettings(EnvironmentReader(), problems: &problems)
        let roles = ServiceRoles(EnvironmentReader(), problems: &problems)
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
        do {
            let applied = try await Migrator(settings: settings, directory: URL(fileURLWithPath: directory), roles: roles, logger: logger)
                .run()
            logger.info("migrations done", metadata: ["applied": .stringConvertible(applied.count)])
        } catch let error as Migrator.MigrationError {
            FileHandle.standardError.write(Data("notify migrate: \(error.description)\n".utf8))
            throw ExitCode(3)
        }
    }
}
