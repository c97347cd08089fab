import Crypto
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

    @Test(
        "services' roles: each connects only to its databases, has data rights but no DDL, no migration records, a password set as a SCRAM verifier"
    )
    func serviceRoles() async throws {
        let infra = try TestInfrastructure()
        let roles = ServiceRoles(
            users: .init(name: "\(infra.runID)_users", password: "users 'secret' \(infra.runID)"),
            templates: .init(name: "\(infra.runID)_templates", password: "templates-\(infra.runID)"),
            notifications: .init(name: "\(infra.runID)_notifications", password: "notifications-\(infra.runID)")
        )
        let logger = TestInfrastructure.logger

        /// Runs `sql` as `role` in `database`; nil if it ran, else PostgreSQL's SQLSTATE (or "connect").
        @Sendable func attempt(
            _ role: ServiceRoles.Role,
            _ database: PostgresSettings.Database,
            _ sql: String,
            password: String? = nil
        ) async -> String? {
            var settings = infra.postgres
            settings.user = role.name
            settings.password = password ?? role.password ?? ""
            let connection: PostgresConnection
            do {
                let configuration = try settings.connectionConfiguration(database: infra.postgres.databaseName(database))
                connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
            } catch {
                return "connect"
            }
            defer { Task { try? await connection.close() } }
            do {
                for try await _ in try await connection.query(PostgresQuery(unsafeSQL: sql), logger: logger) {}
                return nil
            } catch let error as PSQLError {
                return error.serverInfo?[.sqlState] ?? "error"
            } catch {
                return "error"
            }
        }

        do {
            let migrator = Migrator(settings: infra.postgres, directory: Self.sqlDirectory, roles: roles, logger: logger)
            try await migrator.run()
            // An operator's object in the schema that the migrator does not own and may not grant on (as
            // pg_stat_statements' functions, a superuser's, no EXECUTE for PUBLIC): the grants leave it alone.
            let migratorRole = ServiceRoles.Role(name: infra.postgres.user, password: infra.postgres.password)
            let operatorRole = "\(infra.runID)_operator"
            let operatorObject = """
                DO $$ BEGIN
                    CREATE ROLE \(operatorRole) NOLOGIN;
                    EXECUTE format('GRANT \(operatorRole) TO %I', current_user);
                    GRANT CREATE ON SCHEMA public TO \(operatorRole);
                    CREATE FUNCTION operator_tool() RETURNS int LANGUAGE sql AS 'SELECT 1';
                    REVOKE EXECUTE ON FUNCTION operator_tool() FROM PUBLIC;
                    ALTER FUNCTION operator_tool() OWNER TO \(operatorRole);
                    REVOKE CREATE ON SCHEMA public FROM \(operatorRole);
                    EXECUTE format('REVOKE \(operatorRole) FROM %I', current_user);
                END $$
                """
            #expect(await attempt(migratorRole, .notifications, operatorObject) == nil)
            try await migrator.run()  // idempotent: roles exist, passwords are set again, grants repeat
            let users = roles.users!
            let templates = roles.templates!
            let notifications = roles.notifications!

            // Data rights in their own database.
            #expect(await attempt(notifications, .notifications, "SELECT count(*) FROM jobs") == nil)
            #expect(await attempt(notifications, .notifications, "UPDATE jobs SET priority = priority WHERE false") == nil)
            #expect(await attempt(notifications, .notifications, "SELECT * FROM dead_letters LIMIT 1") == nil)
            #expect(await attempt(notifications, .notifications, "SELECT replay_dead_letter(gen_random_uuid())") == nil)
            #expect(await attempt(notifications, .notifications, "SELECT operator_tool()") == "42501")
            #expect(await attempt(users, .users, "SELECT count(*) FROM users") == nil)
            #expect(await attempt(templates, .templates, "DELETE FROM templates WHERE false") == nil)
            // No DDL, no migration records (42501: insufficient privilege).
            #expect(await attempt(notifications, .notifications, "CREATE TABLE intruder (x int)") == "42501")
            #expect(await attempt(notifications, .notifications, "DROP TABLE jobs") == "42501")
            #expect(await attempt(notifications, .notifications, "SELECT * FROM schema_migrations") == "42501")
            #expect(await attempt(users, .users, "ALTER TABLE users ADD COLUMN x int") == "42501")
            #expect(await attempt(templates, .templates, "DELETE FROM schema_migrations") == "42501")
            // Only their own databases; the user service reads client API keys and nothing else there.
            #expect(await attempt(notifications, .users, "SELECT 1") == "connect")
            #expect(await attempt(templates, .notifications, "SELECT 1") == "connect")
            #expect(await attempt(users, .templates, "SELECT 1") == "connect")
            #expect(await attempt(users, .notifications, "SELECT count(*) FROM api_keys") == nil)
            #expect(await attempt(users, .notifications, "SELECT count(*) FROM jobs") == "42501")
            #expect(await attempt(users, .notifications, "DELETE FROM api_keys WHERE false") == "42501")
            // The password works (the migrator sent only its SCRAM verifier); another does not.
            #expect(await attempt(users, .users, "SELECT 1", password: "wrong") == "connect")

            // A service role cannot be the role the migrations run as.
            var same = roles
            same.notifications = .init(name: infra.postgres.user)
            await #expect(throws: Migrator.MigrationError.self) {
                try await Migrator(settings: infra.postgres, directory: Self.sqlDirectory, roles: same, logger: logger).run()
            }
        } catch {
            await infra.dropDatabases()
            await dropRoles(roles, infra, also: ["\(infra.runID)_operator"])
            throw error
        }
        await infra.dropDatabases()
        await dropRoles(roles, infra, also: ["\(infra.runID)_operator"])
    }

    func dropRoles(_ roles: ServiceRoles, _ infra: TestInfrastructure, also others: [String] = []) async {
        let client = PostgresClient(
            configuration: infra.postgres.clientConfiguration(databaseName: "postgres"),
            backgroundLogger: TestInfrastructure.logger
        )
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            for name in [roles.users, roles.templates, roles.notifications].compactMap({ $0?.name }) + others {
                _ = try? await client.query(PostgresQuery(unsafeSQL: "DROP ROLE IF EXISTS \"\(name)\""), logger: TestInfrastructure.logger)
            }
            group.cancelAll()
        }
    }

    @Test("the SCRAM-SHA-256 verifier's server key signs RFC 7677's exchange as the RFC says")
    func scramVerifier() throws {
        // RFC 7677, section 3: password "pencil", this salt, 4096 iterations.
        let verifier = SCRAMVerifier.make(password: "pencil", salt: Array(Data(base64Encoded: "W22ZaJ0SNY7soEsUEjb6gQ==")!))
        #expect(verifier.hasPrefix("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$"))
        let keys = try #require(verifier.split(separator: "$").last).split(separator: ":")
        let serverKey = SymmetricKey(data: try #require(Data(base64Encoded: String(keys[1]))))
        let authMessage =
            "n=user,r=rOprNGfwEbeRWgbNEkqO,"
            + "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,"
            + "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
        let signature = Data(HMAC<SHA256>.authenticationCode(for: Data(authMessage.utf8), using: serverKey))
        #expect(signature.base64EncodedString() == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
        #expect(SCRAMVerifier.make(password: "pencil") != SCRAMVerifier.make(password: "pencil"), "a fresh salt each time")
    }

    @Test("a file goes to the server whole (quotes, dollar-quoted bodies, comments); a failing file leaves nothing, named in the error")
    func wholeFiles() async throws {
        try await withInfrastructure { infra in
            let copy = FileManager.default.temporaryDirectory.appendingPathComponent("sql-\(infra.runID)")
            try FileManager.default.copyItem(at: Self.sqlDirectory, to: copy)
            defer { try? FileManager.default.removeItem(at: copy) }
            let tricky = """
                -- a comment; with a semicolon
                CREATE TABLE tricky (x text DEFAULT 'a;b');
                CREATE FUNCTION tricky_one() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1; END $$;
                /* block; comment */ INSERT INTO tricky VALUES ('c;d');
                """
            try tricky.write(to: copy.appendingPathComponent("users/0900_tricky.sql"), atomically: true, encoding: .utf8)
            let migrator = Migrator(settings: infra.postgres, directory: copy, logger: TestInfrastructure.logger)
            try await migrator.run()
            let rows = try await infra.withDatabase(.users) { client in
                var values: [String] = []
                for try await (x, one) in try await client.query("SELECT x, tricky_one() FROM tricky", logger: TestInfrastructure.logger)
                    .decode((String, Int).self)
                { values.append("\(x) \(one)") }
                return values
            }
            #expect(rows == ["c;d 1"])

            // The first statement worked, the second fails: nothing of the file stays, and it is not recorded.
            try "CREATE TABLE half (x int);\nSELECT no_such_column FROM half;\n"
                .write(to: copy.appendingPathComponent("users/0901_broken.sql"), atomically: true, encoding: .utf8)
            do {
                try await migrator.run()
                Issue.record("a failing migration was reported as applied")
            } catch let error as Migrator.MigrationError {
                #expect(error.description.contains("0901_broken.sql"), "\(error)")
                #expect(error.description.contains("no_such_column"), "\(error)")
            }
            let left = try await infra.withDatabase(.users) { client in
                var found: [String] = []
                for try await name in try await client.query(
                    "SELECT tablename::text FROM pg_tables WHERE tablename = 'half' UNION ALL SELECT name FROM schema_migrations WHERE version = 901",
                    logger: TestInfrastructure.logger
                ).decode(String.self) { found.append(name) }
                return found
            }
            #expect(left.isEmpty, "\(left)")
        }
    }
}
