import Foundation
import Logging
import NotifyConfig
import PostgresAccess
import PostgresNIO

/// Operators of the admin service, in the notifications database; passwords are kept as bcrypt hashes (hashed by
/// the caller, which owns the bcrypt dependency).
public struct AdminUserStore: Sendable {
    public struct Record: Sendable {
        public var id: UUID
        public var email: String
        public var passwordHash: String
    }

    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Creates the operator, or sets a new password when the email exists. True when created.
    public func upsert(email: String, passwordHash: String) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO admin_users (email, password_hash) VALUES (\(email), \(passwordHash))
                ON CONFLICT ((lower(email))) DO UPDATE SET password_hash = EXCLUDED.password_hash
                RETURNING (xmax = 0)
                """,
                logger: logger
            )
            for try await created in rows.decode(Bool.self) { return created }
            return false
        }
    }

    public func find(email: String) async throws -> Record? {
        let rows = try await client.query(
            "SELECT id, email, password_hash FROM admin_users WHERE lower(email) = lower(\(email))",
            logger: logger
        )
        for try await (id, email, hash) in rows.decode((UUID, String, String).self) { return Record(id: id, email: email, passwordHash: hash) }
        return nil
    }

    public func find(id: UUID) async throws -> Record? {
        let rows = try await client.query("SELECT id, email, password_hash FROM admin_users WHERE id = \(id)", logger: logger)
        for try await (id, email, hash) in rows.decode((UUID, String, String).self) { return Record(id: id, email: email, passwordHash: hash) }
        return nil
    }

    public func touch(id: UUID) async throws {
        _ = try await client.query("UPDATE admin_users SET last_login_at = now() WHERE id = \(id)", logger: logger)
    }
}
