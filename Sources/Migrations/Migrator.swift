import Crypto
import Foundation
import Logging
import NIOPosix
import NotifyConfig
import PostgresNIO

/// Applies `sql/<database>/NNNN_name.sql` to each database, creating databases that are missing. Forward-only;
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

        public var description: String {
            switch self {
            case .edited(let database, let file): return "migration \(file) of \(database) was edited after it was applied"
            case .missing(let database, let file): return "migration \(file) of \(database) was applied but its file is gone"
            case .badFileName(let name): return "migration file name \(name) is not NNNN_name.sql"
            case .badDatabaseName(let name): return "database name \(name) must be lowercase letters, digits and _"
            case .noDirectory(let path): return "no migrations directory at \(path)"
            }
        }
    }

    static let lockKey: Int64 = 0x6E6F_7469_6679  // "notify"

    let settings: PostgresSettings
    let directory: URL
    let logger: Logger

    public init(settings: PostgresSettings, directory: URL, logger: Logger) {
        self.settings = settings
        self.directory = directory
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
            _ = try await maintenance.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
        } catch {
            try? await maintenance.close()
            throw error
        }
        try await maintenance.close()
        return applied
    }

    func connect(database: String) async throws -> PostgresConnection {
        let configuration = PostgresConnection.Configuration(
            host: settings.host,
            port: settings.port,
            username: settings.user,
            password: settings.password,
            database: database,
            tls: try settings.connectionTLS()
        )
        return try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
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
                _ = try await connection.query("BEGIN", logger: logger)
                do {
                    for statement in SQLScript.statements(text) {
                        _ = try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                    }
                    _ = try await connection.query(
                        "INSERT INTO schema_migrations (version, name, checksum) VALUES (\(version), \(file), \(checksum))",
                        logger: logger
                    )
                    _ = try await connection.query("COMMIT", logger: logger)
                } catch {
                    _ = try? await connection.query("ROLLBACK", logger: logger)
                    throw error
                }
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
