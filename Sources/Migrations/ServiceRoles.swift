import Crypto
import Foundation
import NotifyConfig

/// The PostgreSQL roles the services log in as, one per database, each with only what its services need: data
/// rights (no DDL, no migration records) on its own database, and nothing on the others except the user service's
/// read of `api_keys`. `notify migrate`, which runs as the owner of the databases, creates them and grants their
/// rights after every run (so new tables are covered). Unset: the services use the migrating role, as before.
///
/// `NOTIFY_PG_USERS_ROLE` (user service), `NOTIFY_PG_TEMPLATES_ROLE` (template service), `NOTIFY_PG_NOTIFICATIONS_ROLE`
/// (gateway, workers, relay, admin), each with `…_ROLE_PASSWORD` (optional: without it the role's password is left
/// as it is, for roles an operator manages).
public struct ServiceRoles: Sendable, Equatable {
    public struct Role: Sendable, Equatable {
        public var name: String
        public var password: String?

        public init(name: String, password: String? = nil) {
            self.name = name
            self.password = password
        }
    }

    public var users: Role?
    public var templates: Role?
    public var notifications: Role?

    public init(users: Role? = nil, templates: Role? = nil, notifications: Role? = nil) {
        self.users = users
        self.templates = templates
        self.notifications = notifications
    }

    public init(_ env: EnvironmentReader, problems: inout [String]) {
        func role(_ key: String) -> Role? {
            guard let name = env.optionalString(key) else { return nil }
            if !Self.isValidName(name) { problems.append("\(key) must be lowercase letters, digits and _ (at most 63)") }
            return Role(name: name, password: env.optionalString(key + "_PASSWORD"))
        }
        users = role("NOTIFY_PG_USERS_ROLE")
        templates = role("NOTIFY_PG_TEMPLATES_ROLE")
        notifications = role("NOTIFY_PG_NOTIFICATIONS_ROLE")
    }

    public var isEmpty: Bool { users == nil && templates == nil && notifications == nil }

    var all: [Role] { [users, templates, notifications].compactMap { $0 } }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.first, first == "_" || (first.isASCII && first.isLowercase), name.utf8.count <= 63 else { return false }
        return name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }
    }

    /// The statements, run in `database`, that give each role its rights there. Idempotent.
    func grants(in database: PostgresSettings.Database) -> [String] {
        var statements = ["REVOKE CREATE ON SCHEMA public FROM PUBLIC"]
        func dataRights(_ role: Role) {
            let name = "\"\(role.name)\""
            statements += [
                "GRANT USAGE ON SCHEMA public TO \(name)",
                // Not `ON ALL TABLES / FUNCTIONS IN SCHEMA`: that names every object there, an extension's too (an
                // operator's pg_stat_statements, owned by a superuser), and the migrator may not grant on those.
                Self.grantOnOwnedObjects(to: role.name),
                // The record of applied migrations is the migrator's alone.
                "REVOKE ALL ON schema_migrations FROM \(name)",
            ]
        }
        switch database {
        case .users:
            if let users { dataRights(users) }
        case .templates:
            if let templates { dataRights(templates) }
        case .notifications:
            if let notifications { dataRights(notifications) }
            // The user service checks client API keys, and does nothing else here.
            if let users, users != notifications {
                statements += ["GRANT USAGE ON SCHEMA public TO \"\(users.name)\"", "GRANT SELECT ON api_keys TO \"\(users.name)\""]
            }
        }
        return statements
    }

    /// Data rights on the tables, views and sequences and EXECUTE on the functions of the schema `public` that the
    /// migrating role owns (itself or through roles it is a member of; a superuser's implicit rights over every role do
    /// not count) and that belong to no extension. `role` is a checked name (`isValidName`), and is quoted here anyway.
    static func grantOnOwnedObjects(to role: String) -> String {
        let literal = role.replacingOccurrences(of: "'", with: "''")
        return """
            DO $grants$
            DECLARE
                object record;
                owners oid[];
            BEGIN
                WITH RECURSIVE memberships(oid) AS (
                    SELECT oid FROM pg_roles WHERE rolname = current_user
                    UNION SELECT m.roleid FROM pg_auth_members m JOIN memberships ON m.member = memberships.oid
                ) SELECT array_agg(oid) INTO owners FROM memberships;
                FOR object IN
                    SELECT c.oid::regclass::text AS name, c.relkind = 'S' AS is_sequence FROM pg_class c
                    WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')
                      AND c.relowner = ANY (owners)
                      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
                LOOP
                    IF object.is_sequence THEN
                        EXECUTE format('GRANT USAGE, SELECT, UPDATE ON SEQUENCE %s TO %I', object.name, '\(literal)');
                    ELSE
                        EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE %s TO %I', object.name, '\(literal)');
                    END IF;
                END LOOP;
                FOR object IN
                    SELECT p.oid::regprocedure::text AS name, p.prokind = 'p' AS is_procedure FROM pg_proc p
                    WHERE p.pronamespace = 'public'::regnamespace AND p.proowner = ANY (owners)
                      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
                LOOP
                    EXECUTE format('GRANT EXECUTE ON %s %s TO %I', CASE WHEN object.is_procedure THEN 'PROCEDURE' ELSE 'FUNCTION' END,
                                   object.name, '\(literal)');
                END LOOP;
            END
            $grants$
            """
    }

    /// The roles that may connect to `database`.
    func connecting(to database: PostgresSettings.Database) -> [Role] {
        switch database {
        case .users: return [users].compactMap { $0 }
        case .templates: return [templates].compactMap { $0 }
        case .notifications: return [notifications, users].compactMap { $0 }
        }
    }
}

/// PostgreSQL's SCRAM-SHA-256 verifier of a password (RFC 5802/7677, the form `password_encryption = scram-sha-256`
/// stores): `CREATE ROLE … PASSWORD '<verifier>'` sets the password without the password itself ever reaching the
/// server, its logs or `pg_stat_statements`. The password is used as UTF-8 without SASLprep (identical for ASCII).
public enum SCRAMVerifier {
    public static func make(password: String, salt: [UInt8]? = nil, iterations: Int = 4096) -> String {
        let salt = salt ?? (0..<16).map { _ in UInt8.random(in: .min ... .max) }
        let key = SymmetricKey(data: Data(password.utf8))
        // PBKDF2-HMAC-SHA-256, one block (the output is exactly one SHA-256 long).
        var block = Data(HMAC<SHA256>.authenticationCode(for: Data(salt) + Data([0, 0, 0, 1]), using: key))
        var salted = [UInt8](block)
        for _ in 1..<iterations {
            block = Data(HMAC<SHA256>.authenticationCode(for: block, using: key))
            for (index, byte) in block.enumerated() { salted[index] ^= byte }
        }
        let saltedKey = SymmetricKey(data: salted)
        let clientKey = Data(HMAC<SHA256>.authenticationCode(for: Data("Client Key".utf8), using: saltedKey))
        let storedKey = Data(SHA256.hash(data: clientKey))
        let serverKey = Data(HMAC<SHA256>.authenticationCode(for: Data("Server Key".utf8), using: saltedKey))
        return "SCRAM-SHA-256$\(iterations):\(Data(salt).base64EncodedString())$"
            + "\(storedKey.base64EncodedString()):\(serverKey.base64EncodedString())"
    }
}
