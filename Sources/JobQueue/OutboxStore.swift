import Foundation
import Logging
import PostgresAccess
import PostgresNIO

/// An outbox row as the relay publishes it.
public struct OutboxMessage: Sendable {
    public var id: Int
    public var routingKey: String
    public var messageID: String
    public var correlationID: String
    public var priority: Int
    public var payload: String
    /// The notification the message is about (for the log line of its publish); none for some events.
    public var notificationID: String?
}

/// The transactional outbox: rows are written in the transaction of the state change that causes them (by the SQL
/// functions `dispatch_job` and `dead_letter_job`), and published afterwards by the relay, which deletes each row in the
/// transaction that holds its lock once RabbitMQ took its message (`sql/notifications/0024`).
public enum OutboxStore {
    public static let channel = "outbox"

    /// Locks up to `limit` unpublished rows of each queue for the rest of the caller's transaction, highest priority
    /// first, then oldest first (`sql/notifications/0009`); other relays skip them. Each queue's rows come from the
    /// outbox's index by queue (`sql/notifications/0026`), which also serves a worker's look for its own queue's
    /// unpublished rows; the queues are those of the routing key's CHECK.
    public static func claimUnpublished(on connection: PostgresConnection, limit: Int, logger: Logger) async throws -> [OutboxMessage] {
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(limit)
        let rows = try await connection.execute(ClaimStatement.self, bindings, logger: logger)
        var messages: [OutboxMessage] = []
        for try await row in rows.decode((Int, String, String, String, Int, String, String?).self) {
            messages.append(
                OutboxMessage(
                    id: row.0,
                    routingKey: row.1,
                    messageID: row.2,
                    correlationID: row.3,
                    priority: row.4,
                    payload: row.5,
                    notificationID: row.6
                )
            )
        }
        return messages
    }

    /// Deletes the rows whose messages RabbitMQ took: nothing reads a published row again, and writing it once more
    /// (with its payload) only for the cleaner to delete it a day later was a whole row version per notification.
    public static func markPublished(on connection: PostgresConnection, ids: [Int], logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        var bindings = PostgresBindings(capacity: 1)
        bindings.append(ids)
        _ = try await connection.execute(PublishedStatement.self, bindings, logger: logger)
    }

    enum ClaimStatement: PreparedSQL {
        static let sql = """
            SELECT o.id, o.routing_key, o.message_id, o.correlation_id, o.priority, o.payload, o.notification_id
            FROM unnest(ARRAY['email', 'push', 'sms', 'failed']) AS q(routing_key),
                 LATERAL (
                     SELECT id, routing_key, message_id, correlation_id, priority, payload::text, payload->>'notification_id'
                     FROM outbox WHERE published_at IS NULL AND routing_key = q.routing_key
                     ORDER BY priority DESC, id LIMIT $1::bigint
                     FOR UPDATE SKIP LOCKED
                 ) AS o(id, routing_key, message_id, correlation_id, priority, payload, notification_id)
            ORDER BY o.priority DESC, o.id
            """
    }

    enum PublishedStatement: PreparedSQL {
        static let sql = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"
    }

    public static func markFailed(on connection: PostgresConnection, ids: [Int], error: String, logger: Logger) async throws {
        guard !ids.isEmpty else { return }
        _ = try await connection.query(
            "UPDATE outbox SET attempts = attempts + 1, last_error = \(error) WHERE id = ANY(\(ids))",
            logger: logger
        )
    }
}
