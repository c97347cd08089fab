import Foundation
import Logging
import PostgresAccess
import PostgresNIO

/// One address no email goes to.
public struct Suppression: Sendable, Codable, Equatable {
    public enum Reason: String, Sendable, Codable, CaseIterable {
        case hardBounce = "hard_bounce"
        case complaint
        case manual
        /// The phone number's owner replied STOP.
        case optOut = "opt_out"
    }
    public var address: String
    public var reason: Reason
    public var provider: String?
    public var notificationID: UUID?
    public var detail: String?
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case address, reason, provider
        case notificationID = "notification_id"
        case detail
        case createdAt = "created_at"
    }
}

/// The global suppression list (`suppressions`): hard bounces and complaints from provider webhooks, and addresses an
/// operator added. Addresses are compared lower-cased.
public struct SuppressionList: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Lower-cased by PostgreSQL (`lower`), so that the stored form and every lookup agree on non-ASCII letters too.
    /// The reason each suppressed address among `addresses` is suppressed, keyed by the address as given.
    public func reasons(for addresses: [String]) async throws -> [String: Suppression.Reason] {
        let wanted = Array(Set(addresses))
        guard !wanted.isEmpty else { return [:] }
        var found: [String: Suppression.Reason] = [:]
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(wanted)
        for try await (address, reason) in try await client.execute(ReasonsStatement.self, bindings, logger: logger).decode((String, String).self) {
            found[address] = Suppression.Reason(rawValue: reason) ?? .manual
        }
        return found
    }

    enum ReasonsStatement: PreparedSQL {
        static let sql = "SELECT a, s.reason FROM unnest($1::text[]) AS a JOIN suppressions s ON s.address = lower(btrim(a))"
    }

    public func reason(for address: String) async throws -> Suppression.Reason? {
        try await reasons(for: [address])[address]
    }

    /// Newest first; optionally only addresses containing `matching`.
    public func list(matching: String?, reason: Suppression.Reason?, limit: Int, offset: Int) async throws -> (items: [Suppression], total: Int) {
        let pattern = matching.map { text in
            "%"
                + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(
                    of: "_",
                    with: "\\_"
                ) + "%"
        }
        var items: [Suppression] = []
        var total = 0
        for try await row in try await client.query(
            """
            SELECT address, reason, provider, notification_id, detail, created_at, count(*) OVER ()
            FROM suppressions
            WHERE (\(pattern)::text IS NULL OR address LIKE lower(\(pattern))) AND (\(reason?.rawValue)::text IS NULL OR reason = \(reason?.rawValue))
            ORDER BY created_at DESC, address
            LIMIT \(limit) OFFSET \(offset)
            """,
            logger: logger
        ).decode((String, String, String?, UUID?, String?, Date, Int).self) {
            total = row.6
            items.append(Self.entry((row.0, row.1, row.2, row.3, row.4, row.5)))
        }
        if items.isEmpty && offset > 0 {
            total = try await client.query(
                """
                SELECT count(*) FROM suppressions
                WHERE (\(pattern)::text IS NULL OR address LIKE lower(\(pattern))) AND (\(reason?.rawValue)::text IS NULL OR reason = \(reason?.rawValue))
                """,
                logger: logger
            ).decode(Int.self).reduce(0) { $1 }
        }
        return (items, total)
    }

    /// The entry for exactly this address (compared lower-cased), if listed.
    public func list(exactly address: String) async throws -> Suppression? {
        try await client.query(
            "SELECT address, reason, provider, notification_id, detail, created_at FROM suppressions WHERE address = lower(btrim(\(address)))",
            logger: logger
        ).decode((String, String, String?, UUID?, String?, Date).self).reduce(into: [Suppression]()) { list, row in
            list.append(Self.entry(row))
        }.first
    }

    static func entry(_ row: (String, String, String?, UUID?, String?, Date)) -> Suppression {
        Suppression(
            address: row.0,
            reason: Suppression.Reason(rawValue: row.1) ?? .manual,
            provider: row.2,
            notificationID: row.3,
            detail: row.4,
            createdAt: row.5
        )
    }

    /// Adds an address by hand; an address already listed keeps its first reason. Returns the entry as stored.
    public func add(_ address: String, detail: String?) async throws -> (Suppression, created: Bool) {
        var created = false
        for try await _ in try await client.query(
            """
            INSERT INTO suppressions (address, reason, detail) VALUES (lower(btrim(\(address))), 'manual', \(detail))
            ON CONFLICT (address) DO NOTHING RETURNING address
            """,
            logger: logger
        ).decode(String.self) { created = true }
        let stored = try await list(exactly: address)
        guard let entry = stored else { throw SuppressionVanished() }
        return (entry, created)
    }

    /// Removes an address (it may be mailed again). Returns whether it was listed.
    public func remove(_ address: String) async throws -> Bool {
        var removed = false
        for try await _ in try await client.query(
            "DELETE FROM suppressions WHERE address = lower(btrim(\(address))) RETURNING address",
            logger: logger
        ).decode(String.self) { removed = true }
        return removed
    }
}

struct SuppressionVanished: Error {}
