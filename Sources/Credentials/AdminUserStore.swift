import Crypto
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

    /// Creates the operator, or sets a new password when the email exists (ending the operator's sessions). True
    /// when created.
    public func upsert(email: String, passwordHash: String) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                INSERT INTO admin_users (email, password_hash) VALUES (\(email), \(passwordHash))
                ON CONFLICT ((lower(email))) DO UPDATE SET password_hash = EXCLUDED.password_hash
                RETURNING id, (xmax = 0)
                """,
                logger: logger
            )
            for try await (id, created) in rows.decode((UUID, Bool).self) {
                if !created {
                    _ = try await connection.query("DELETE FROM admin_sessions WHERE admin_id = \(id)", logger: logger)
                }
                return created
            }
            return false
        }
    }

    /// Removes the operator; their sessions go with them. False when there was none.
    public func remove(email: String) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query(
                "DELETE FROM admin_users WHERE lower(email) = lower(\(email)) RETURNING id",
                logger: logger
            ).decode(UUID.self) { return true }
            return false
        }
    }

    // MARK: sessions

    /// A new session for the operator: the token for the cookie (only its hash is stored).
    public func createSession(adminID: UUID, lifetimeSeconds: Int) async throws -> String {
        let token = "nas_" + Self.randomToken()
        try await client.withTransaction(logger: logger) { connection in
            _ = try await connection.query(
                """
                INSERT INTO admin_sessions (token_hash, admin_id, expires_at)
                VALUES (\(Self.hash(token)), \(adminID), now() + make_interval(secs => \(Double(lifetimeSeconds))))
                """,
                logger: logger
            )
            // Expired and revoked sessions of anyone are cleared now and then.
            _ = try await connection.query(
                "DELETE FROM admin_sessions WHERE expires_at < now() - interval '1 day' OR revoked_at < now() - interval '1 day'",
                logger: logger
            )
        }
        return token
    }

    /// The operator a live session token belongs to (not expired, not revoked, operator still there), or nil.
    public func session(token: String) async throws -> UUID? {
        guard token.hasPrefix("nas_"), token.utf8.count <= 128 else { return nil }
        let rows = try await client.query(
            """
            SELECT s.admin_id FROM admin_sessions s JOIN admin_users a ON a.id = s.admin_id
            WHERE s.token_hash = \(Self.hash(token)) AND s.revoked_at IS NULL AND s.expires_at > now()
            """,
            logger: logger
        )
        for try await id in rows.decode(UUID.self) { return id }
        return nil
    }

    /// Ends the session (logout). True when it was live.
    public func revoke(token: String) async throws -> Bool {
        guard token.hasPrefix("nas_") else { return false }
        return try await client.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query(
                "UPDATE admin_sessions SET revoked_at = now() WHERE token_hash = \(Self.hash(token)) AND revoked_at IS NULL RETURNING admin_id",
                logger: logger
            ).decode(UUID.self) { return true }
            return false
        }
    }

    static func hash(_ token: String) -> Data { Data(SHA256.hash(data: Data(token.utf8))) }

    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        return Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
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
