import Foundation
import Logging
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

@testable import Migrations

@Suite("Migrations")
struct MigratorTests {
    static var sqlDirectory: URL { NotifyProcess.repositoryRoot.appendingPathComponent("sql") }

    /// Runs `body` with fresh test settings and drops the databases it created afterwards, whatever happened.
    func withInfrastructure(_ body: (TestInfrastructure) async throws -> Void) async throws {
        let infra = try TestInfrastructure()
        do {
            try await body(infra)
        } catch {
            await infra.dropDatabases()
            throw error
        }
        await infra.dropDatabases()
    }

    @Test("creates the three databases, applies every file once, and a second run applies nothing")
    func appliesOnce() async throws {
        try await withInfrastructure { infra in
            let migrator = Migrator(settings: infra.postgres, directory: Self.sqlDirectory, logger: TestInfrastructure.logger)
            let first = try await migrator.run()
            #expect(Set(first.map(\.database)) == Set(PostgresSettings.Database.allCases.map { infra.postgres.databaseName($0) }))
            let fileCount = try PostgresSettings.Database.allCases.reduce(0) {
                $0 + (try FileManager.default.contentsOfDirectory(atPath: Self.sqlDirectory.appendingPathComponent($1.rawValue).path).count)
            }
            #expect(first.count == fileCount)
            let second = try await migrator.run()
            #expect(second.isEmpty)
            let recorded = try await infra.withDatabase(.notifications) { client in
                var names: [String] = []
                for try await name in try await client.query("SELECT name FROM schema_migrations ORDER BY version", logger: TestInfrastructure.logger)
                    .decode(String.self)
                { names.append(name) }
                return names
            }
            #expect(recorded.first == "0001_notifications.sql")
        }
    }

    @Test("several migrators at once apply each file exactly once")
    func concurrentRuns() async throws {
        try await withInfrastructure { infra in
            let results = try await withThrowingTaskGroup(of: [Migrator.Applied].self) { group in
                for _ in 0..<4 {
                    group.addTask {
                        try await Migrator(settings: infra.postgres, directory: Self.sqlDirectory, logger: TestInfrastructure.logger).run()
                    }
                }
                var all: [[Migrator.Applied]] = []
                for try await result in group { all.append(result) }
                return all
            }
            let applied = results.flatMap { $0 }
            #expect(applied.count == Set(applied.map { "\($0.database)/\($0.file)" }).count)
            #expect(results.filter { !$0.isEmpty }.count == 1)
        }
    }

    @Test("refuses to run when an applied file was edited")
    func refusesEditedFile() async throws {
        try await withInfrastructure { infra in
            let copy = FileManager.default.temporaryDirectory.appendingPathComponent("sql-\(infra.runID)")
            try FileManager.default.copyItem(at: Self.sqlDirectory, to: copy)
            defer { try? FileManager.default.removeItem(at: copy) }
            let migrator = Migrator(settings: infra.postgres, directory: copy, logger: TestInfrastructure.logger)
            try await migrator.run()
            let file = copy.appendingPathComponent("users/0001_users.sql")
            try (try String(contentsOf: file, encoding: .utf8) + "\n-- edited\n").write(to: file, atomically: true, encoding: .utf8)
            await #expect(throws: Migrator.MigrationError.self) { try await migrator.run() }
        }
    }

    @Test("splits SQL on semicolons outside quotes, dollar-quoted bodies and comments")
    func splitsStatements() {
        let sql = """
            -- a comment; with a semicolon
            CREATE TABLE a (x text DEFAULT 'a;b');
            CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
            /* block; comment */ SELECT "odd;name" FROM a;
            """
        let statements = SQLScript.statements(sql)
        #expect(statements.count == 3)
        #expect(statements[0].hasSuffix("CREATE TABLE a (x text DEFAULT 'a;b')"))
        #expect(statements[1] == "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$")
        #expect(statements[2].hasSuffix("SELECT \"odd;name\" FROM a"))
    }
}
