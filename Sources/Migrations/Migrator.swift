import Crypto
import Foundation
import Logging
import NIOPosix
import NotifyConfig
import PostgresNIO

/// Applies `sql/<database>/NNNN_name.sql` to each database, creating databases that are missing; each file goes to the
/// server whole, through libpq, in one transaction with its record. Forward-only;
/// every applied file is recorded with its SHA-256 and a changed file stops the run. All migrators serialise on one
/// advisory lock, so any number of processes may run it at once.
public struct Migrator: Sendable {
    public struct Applied: Sendable, Equatable {
        public var database: String
        public var file: String
    }

    public enum MigrationError: Error, CustomStringConvertible {
        case edited(database: String, file: String)
        case missing(database: String, file: String)
        case badFileName(String)
        case badDatabaseName(String)
        case noDirectory(String)
        case roleIsMigrator(String)
        case roleTooPowerful(String)
        case failed(database: String, file: String, message: String)

        public var description: String {
            switch self {
            case .edited(let database, let file): return "migration \(file) of \(database) was edited after it was applied"
            case .missing(let database, let file): return "migration \(file) of \(database) was applied but its file is gone"
            case .badFileName(let name): return "migration file name \(name) is not NNNN_name.sql"
            case .badDatabaseName(let name): return "database name \(name) must be lowercase letters, digits and _"
            case .noDirectory(let path): return "no migrations directory at \(path)"
            case .roleIsMigrator(let role):
                return "service role \(role) is the role migrations run as: the services need a role of their own"
            case .failed(let database, let file, let message): return "migration \(file) of \(database) failed (nothing of it applied): \(message)"
            case .roleTooPowerful(let role):
                return "service role \(role) is a superuser or may create roles or databases or bypass row security: give the services a plain role"
            }
        }
    }

    static let lockKey: Int64 = 0x6E6F_7469_6679  // "notify"

    let settings: PostgresSettings
    let directory: URL
    let roles: ServiceRoles
    let logger: Logger

    public init(settings: PostgresSettings, directory: URL, roles: ServiceRoles = ServiceRoles(), logger: Logger) {
        self.settings = settings
        self.directory = directory
        self.roles = roles
        self.logger = logger
    }

    @discardableResult
    public func run() async throws -> [Applied] {
        guard FileManager.default.fileExists(atPath: directory.path) else { throw MigrationError.noDirectory(directory.path) }
        var applied: [Applied] = []
        let maintenance = try await connect(database: "postgres")
        do {
            _ = try await maintenance.query("SELECT pg_advisory_lock(\(Self.lockKey))", logger: logger)
            for database in PostgresSettings.Database.allCases {
                let folder = directory.appendingPathComponent(database.rawValue)
                guard FileManager.default.fileExists(atPath: folder.path) else { continue }
                let name = settings.databaseName(database)
                try await ensureDatabase(name, on: maintenance)
                applied += try await migrate(database: name, folder: folder)
            }
            if !roles.isEmpty { try await grantRoles(on: maintenance) }
            _ = try await maintenance.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
        } catch {
            try? await maintenance.close()
            throw error
        }
        try await maintenance.close()
        return applied
    }

    func connect(database: String) async throws -> PostgresConnection {
        try await PostgresConnection.connect(configuration: try settings.connectionConfiguration(database: database), id: 1, logger: logger)
    }

    /// Creates the services' roles that are missing (setting the passwords given), and gives each exactly its rights:
    /// CONNECT only to its databases (PUBLIC loses CONNECT there), data rights inside (see `ServiceRoles.grants`).
    func grantRoles(on maintenance: PostgresConnection) async throws {
        var seen = Set<String>()
        for role in roles.all where seen.insert(role.name).inserted {
            guard role.name != settings.user else { throw MigrationError.roleIsMigrator(role.name) }
            var exists = false
            for try await (superuser, createRole, createDB, bypassRLS) in try await maintenance.query(
                "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles WHERE rolname = \(role.name)",
                logger: logger
            ).decode((Bool, Bool, Bool, Bool).self) {
                exists = true
                // A service role that could do more than its service needs defeats its purpose.
                if superuser || createRole || createDB || bypassRLS { throw MigrationError.roleTooPowerful(role.name) }
            }
            // A role an operator made and manages (no password given here) is left as it is: the migrator then
            // needs no CREATEROLE, only to own the databases.
            if exists && role.password == nil { continue }
            let password = role.password.map { " PASSWORD '\(SCRAMVerifier.make(password: $0))'" } ?? ""
            if !exists { logger.info("creating role", metadata: ["role": .string(role.name)]) }
            let statement =
                exists
                ? "ALTER ROLE \"\(role.name)\" LOGIN\(password)"
                : "CREATE ROLE \"\(role.name)\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS\(password)"
            _ = try await maintenance.query(PostgresQuery(unsafeSQL: statement), logger: logger)
        }
        for database in PostgresSettings.Database.allCases {
            let name = settings.databaseName(database)
            var exists = false
            for try await _ in try await maintenance.query("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: logger) {
                exists = true
            }
            guard exists else { continue }
            _ = try await maintenance.query(PostgresQuery(unsafeSQL: "REVOKE ALL ON DATABASE \"\(name)\" FROM PUBLIC"), logger: logger)
            for role in roles.connecting(to: database) {
                _ = try await maintenance.query(
                    PostgresQuery(unsafeSQL: "GRANT CONNECT ON DATABASE \"\(name)\" TO \"\(role.name)\""),
                    logger: logger
                )
            }
            let connection = try await connect(database: name)
            do {
                for statement in roles.grants(in: database) {
                    _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                }
            } catch {
                try? await connection.close()
                throw error
            }
            try await connection.close()
        }
    }

    /// Sends the file whole through libpq (the server splits it, as psql would), with its record, in one transaction:
    /// a file that fails leaves nothing behind. libpq blocks, so this runs on a thread of the blocking pool.
    func apply(_ text: String, version: Int, file: String, database: String) async throws {
        let settings = self.settings
        do {
            try await NIOThreadPool.singleton.runIfActive {
                let connection = try PQConnection(settings: settings, database: database)
                try connection.exec("BEGIN")
                try connection.exec(text)
                try connection.exec(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1::int, $2, $3)",
                    [String(version), file, SHA256.hash(data: Data(text.utf8)).hexString]
                )
                try connection.exec("COMMIT")
            }
        } catch let failure as PQConnection.Failure {
            throw MigrationError.failed(database: database, file: file, message: failure.message)
        }
    }

    func ensureDatabase(_ name: String, on connection: PostgresConnection) async throws {
        guard name.allSatisfy({ $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }), !name.isEmpty else {
            throw MigrationError.badDatabaseName(name)
        }
        let rows = try await connection.query("SELECT 1 FROM pg_database WHERE datname = \(name)", logger: logger)
        var exists = false
        for try await _ in rows { exists = true }
        if !exists {
            logger.info("creating database", metadata: ["database": .string(name)])
            _ = try await connection.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(name)\""), logger: logger)
        }
    }

    func migrate(database: String, folder: URL) async throws -> [Applied] {
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        let connection = try await connect(database: database)
        var applied: [Applied] = []
        do {
            _ = try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now())
                """,
                logger: logger
            )
            var recorded: [Int: (String, String)] = [:]
            for try await (version, name, checksum) in try await connection.query(
                "SELECT version, name, checksum FROM schema_migrations",
                logger: logger
            ).decode((Int, String, String).self) {
                recorded[version] = (name, checksum)
            }
            var seen = Set<Int>()
            for file in files {
                guard let version = Int(file.prefix(while: { $0.isNumber })), file.dropFirst(4).hasPrefix("_") else {
                    throw MigrationError.badFileName(file)
                }
                seen.insert(version)
                let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
                let checksum = SHA256.hash(data: Data(text.utf8)).hexString
                if let (_, recordedChecksum) = recorded[version] {
                    guard recordedChecksum == checksum else { throw MigrationError.edited(database: database, file: file) }
                    continue
                }
                try await apply(text, version: version, file: file, database: database)
                logger.info("applied migration", metadata: ["database": .string(database), "file": .string(file)])
                applied.append(Applied(database: database, file: file))
            }
            for (version, (name, _)) in recorded where !seen.contains(version) {
                throw MigrationError.missing(database: database, file: name)
            }
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        return applied
    }
}
