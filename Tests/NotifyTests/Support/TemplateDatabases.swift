import Crypto
import Foundation
import Migrations
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

/// Each test's databases are copies of one set migrated once per test run (`CREATE DATABASE … TEMPLATE`), instead of
/// applying every migration file to every test's databases. The set is named after a hash of `sql/`, so a changed
/// migration makes a new one; it is migrated under an advisory lock, once per test process.
actor TemplateDatabases {
    static let shared = TemplateDatabases()

    private var ready: Task<String, any Error>?

    /// The prefix of the migrated set (made the first time).
    func prefix(_ infra: TestInfrastructure) async throws -> String {
        if let ready { return try await ready.value }
        let task = Task { try await Self.prepare(infra) }
        ready = task
        return try await task.value
    }

    static let lockKey: Int64 = 0x7465_6d70_6c61  // "templa"

    static func prepare(_ infra: TestInfrastructure) async throws -> String {
        let directory = NotifyProcess.repositoryRoot.appendingPathComponent("sql")
        var hasher = SHA256()
        let files =
            FileManager.default.enumerator(atPath: directory.path)?.compactMap { $0 as? String }.filter { $0.hasSuffix(".sql") }.sorted() ?? []
        for file in files {
            hasher.update(data: Data(file.utf8))
            hasher.update(data: try Data(contentsOf: directory.appendingPathComponent(file)))
        }
        let prefix = "tpl_" + hasher.finalize().prefix(5).map { String(format: "%02x", $0) }.joined() + "_"
        var settings = infra.postgres
        settings.databasePrefix = prefix
        let connection = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(database: "postgres"),
            id: 1,
            logger: TestInfrastructure.logger
        )
        do {
            // Another test process (a second `swift test` beside this one) may be making the same set.
            _ = try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: TestInfrastructure.logger)
            try await Migrator(settings: settings, directory: directory, logger: TestInfrastructure.logger).run()
            _ = try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: TestInfrastructure.logger)
        } catch {
            try? await connection.close()
            throw error
        }
        try await connection.close()
        return prefix
    }

    /// Makes `infra`'s databases as copies of the migrated set, then runs the migrator on them (nothing left to apply;
    /// it grants the services' roles, whose database-level rights a copy does not carry).
    static func clone(into infra: TestInfrastructure) async throws {
        let prefix = try await shared.prefix(infra)
        let client = PostgresClient(
            configuration: infra.postgres.clientConfiguration(databaseName: "postgres"),
            backgroundLogger: TestInfrastructure.logger
        )
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            for database in PostgresSettings.Database.allCases {
                let target = infra.postgres.databaseName(database)
                // A copy needs the template to itself: another test process checking it meanwhile makes it wait.
                _ = try await eventually("a copy of \(prefix)\(database.rawValue)", timeout: .seconds(120)) { () -> Bool? in
                    do {
                        _ = try await client.query(
                            PostgresQuery(unsafeSQL: "CREATE DATABASE \"\(target)\" TEMPLATE \"\(prefix)\(database.rawValue)\""),
                            logger: TestInfrastructure.logger
                        )
                        return true
                    } catch  where error.sqlState == "55006" {
                        return nil
                    }
                }
            }
        }
        try await Migrator(
            settings: infra.postgres,
            directory: NotifyProcess.repositoryRoot.appendingPathComponent("sql"),
            roles: infra.roles,
            logger: TestInfrastructure.logger
        ).run()
    }
}
