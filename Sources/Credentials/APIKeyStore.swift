import Crypto
import Foundation
import Logging
import NotifyConfig
import NotifyHTTP
import PostgresAccess
import PostgresNIO

/// A client credential as stored: never the key itself, only its SHA-256 and a visible prefix.
public struct APIKeyRecord: Sendable, Equatable {
    public var id: UUID
    public var client: String
    public var name: String
    public var prefix: String
    public var scopes: [String]
    public var createdAt: Date
    public var revokedAt: Date?
}

/// Creates, finds and revokes API keys in the notifications database.
public struct APIKeyStore: Sendable {
    public static let knownScopes = Set(Scope.allCases.map(\.rawValue))

    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public static func hash(_ key: String) -> String {
        SHA256.hash(data: Data(key.utf8)).hexString
    }

    /// Makes a new key; the plain key is returned once and never stored.
    public func create(client clientName: String, name: String, scopes: [String]) async throws -> (key: String, record: APIKeyRecord) {
        let prefix = Self.randomToken(bytes: 4)
        let key = "nk_\(prefix)_\(Self.randomToken(bytes: 24))"
        let hash = Self.hash(key)
        let record = try await client.withTransaction(logger: logger) { connection -> APIKeyRecord? in
            let rows = try await connection.query(
                """
                INSERT INTO api_keys (client, name, prefix, key_hash, scopes)
                VALUES (\(clientName), \(name), \(prefix), \(hash), \(scopes))
                RETURNING id, created_at
                """,
                logger: logger
            )
            for try await (id, createdAt) in rows.decode((UUID, Date).self) {
                return APIKeyRecord(id: id, client: clientName, name: name, prefix: prefix, scopes: scopes, createdAt: createdAt, revokedAt: nil)
            }
            return nil
        }
        guard let record else { throw APIKeyError.notCreated }
        return (key, record)
    }

    /// The active key with this plain value, if any.
    public func find(key: String) async throws -> APIKeyRecord? {
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM api_keys WHERE key_hash = \(Self.hash(key)) AND revoked_at IS NULL
            """,
            logger: logger
        )
        for try await row in rows.decode(Row.self) { return Self.record(row) }
        return nil
    }

    static let columns = "id, client, name, prefix, scopes, created_at, revoked_at"
    typealias Row = (UUID, String, String, String, [String], Date, Date?)

    static func record(_ row: Row) -> APIKeyRecord {
        APIKeyRecord(id: row.0, client: row.1, name: row.2, prefix: row.3, scopes: row.4, createdAt: row.5, revokedAt: row.6)
    }

    /// Keys newest first, with the total; revoked keys only when asked for.
    public func list(includeRevoked: Bool, page: Int, limit: Int) async throws -> (records: [APIKeyRecord], total: Int) {
        var records: [APIKeyRecord] = []
        for try await row in try await client.query(
            """
            SELECT \(unescaped: Self.columns) FROM api_keys WHERE \(includeRevoked) OR revoked_at IS NULL
            ORDER BY created_at DESC, id LIMIT \(limit) OFFSET \((page - 1) * limit)
            """,
            logger: logger
        ).decode(Row.self) { records.append(Self.record(row)) }
        var total = 0
        for try await count in try await client.query(
            "SELECT count(*)::int FROM api_keys WHERE \(includeRevoked) OR revoked_at IS NULL",
            logger: logger
        ).decode(Int.self) { total = count }
        return (records, total)
    }

    public func get(id: UUID) async throws -> APIKeyRecord? {
        let rows = try await client.query("SELECT \(unescaped: Self.columns) FROM api_keys WHERE id = \(id)", logger: logger)
        for try await row in rows.decode(Row.self) { return Self.record(row) }
        return nil
    }

    /// Revokes a key (once: a second revoke keeps the first time). Nil when there is no such key.
    public func revoke(id: UUID) async throws -> APIKeyRecord? {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = \(id) RETURNING \(unescaped: Self.columns)",
                logger: logger
            )
            for try await row in rows.decode(Row.self) { return Self.record(row) }
            return nil
        }
    }

    static func randomToken(bytes count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<count).map { _ in UInt8.random(in: 0...255, using: &generator) }.hexString
    }
}

public enum APIKeyError: Error {
    case notCreated
}
