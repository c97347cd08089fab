import Foundation
import Logging
import NotificationModel
import PostgresNIO

/// A job a worker has won: everything needed to deliver it, read from the rows that decide its fate.
public struct ClaimedJob: Sendable {
    public var jobID: Int
    public var notificationID: UUID
    public var channel: NotificationChannel
    public var attempt: Int
    public var maxAttempts: Int
    public var userID: UUID
    public var templateCode: String
    public var language: String?
    public var variables: [String: JSONValue]
    public var requestID: String
    public var correlationID: String
}

/// All SQL that moves jobs between states. Functions that must join a caller's transaction take `on connection`.
public struct JobStore: Sendable {
    public let client: PostgresClient
    public let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Inserts the job of a new notification inside the caller's transaction and returns its id.
    public static func insert(
        on connection: PostgresConnection, notificationID: UUID, channel: NotificationChannel, priority: Int, state: JobState, runAt: Date?,
        logger: Logger
    ) async throws -> Int {
        let rows = try await connection.query(
            """
            INSERT INTO jobs (notification_id, queue, state, priority, run_at)
            VALUES (\(notificationID), \(channel.rawValue), \(state.rawValue), \(priority), COALESCE(\(runAt), now()))
            RETURNING id
            """, logger: logger)
        for try await id in rows.decode(Int.self) { return id }
        throw JobStoreError.noRowReturned
    }

    /// The atomic claim: only an `available` job can be taken, by exactly one worker, with a lease.
    public func claim(jobID: Int, worker: String, lease: Duration) async throws -> ClaimedJob? {
        let leaseSeconds = Double(lease.components.seconds)
        let rows = try await client.query(
            """
            WITH claimed AS (
                UPDATE jobs
                SET state = 'running', attempt = attempt + 1, attempted_at = now(), attempted_by = \(worker),
                    lease_expires_at = now() + make_interval(secs => \(leaseSeconds)), updated_at = now()
                WHERE id = \(jobID) AND state = 'available'
                RETURNING id, notification_id, queue, attempt, max_attempts
            ), marked AS (
                UPDATE notifications n SET status = 'processing', updated_at = now()
                FROM claimed WHERE n.id = claimed.notification_id
                RETURNING n.id, n.user_id, n.template_code, n.language, n.variables::text, n.request_id, n.correlation_id
            )
            SELECT claimed.id, claimed.notification_id, claimed.queue, claimed.attempt, claimed.max_attempts,
                   marked.user_id, marked.template_code, marked.language, marked.variables, marked.request_id, marked.correlation_id
            FROM claimed JOIN marked ON marked.id = claimed.notification_id
            """, logger: logger)
        for try await row in rows.decode((Int, UUID, String, Int, Int, UUID, String, String?, String, String, String).self) {
            let variables = (try? JSONValue.parseObject(Data(row.8.utf8))) ?? [:]
            return ClaimedJob(
                jobID: row.0, notificationID: row.1, channel: NotificationChannel(rawValue: row.2) ?? .email, attempt: row.3, maxAttempts: row.4,
                userID: row.5, templateCode: row.6, language: row.7, variables: variables, requestID: row.9, correlationID: row.10)
        }
        return nil
    }

    /// The job is done: the notification was handed to the SMTP server or push provider.
    public func complete(jobID: Int) async throws {
        _ = try await client.query(
            """
            WITH done AS (
                UPDATE jobs SET state = 'completed', finalized_at = now(), lease_expires_at = NULL, updated_at = now()
                WHERE id = \(jobID) AND state = 'running'
                RETURNING notification_id
            )
            UPDATE notifications n SET status = 'sent', sent_at = now(), updated_at = now(), last_error = NULL
            FROM done WHERE n.id = done.notification_id
            """, logger: logger)
    }

    /// Records a failed attempt: retried at `retryAt` if transient and attempts remain, otherwise discarded.
    @discardableResult
    public func fail(jobID: Int, error: String, permanent: Bool, retryAfter: Duration) async throws -> JobState? {
        let delaySeconds = Double(retryAfter.components.seconds) + Double(retryAfter.components.attoseconds) / 1e18
        let rows = try await client.query(
            """
            WITH failed AS (
                UPDATE jobs
                SET state = CASE WHEN \(permanent) OR attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
                    run_at = now() + make_interval(secs => \(delaySeconds)),
                    finalized_at = CASE WHEN \(permanent) OR attempt >= max_attempts THEN now() END,
                    errors = errors || jsonb_build_array(jsonb_build_object(
                        'at', now(), 'attempt', attempt, 'error', \(error)::text, 'permanent', \(permanent))),
                    lease_expires_at = NULL, updated_at = now()
                WHERE id = \(jobID) AND state = 'running'
                RETURNING notification_id, state
            )
            UPDATE notifications n
            SET status = CASE WHEN failed.state = 'discarded' THEN 'failed' ELSE 'retrying' END,
                last_error = \(error), updated_at = now()
            FROM failed WHERE n.id = failed.notification_id
            RETURNING failed.state
            """, logger: logger)
        for try await state in rows.decode(String.self) { return JobState(rawValue: state) }
        return nil
    }
}

public enum JobStoreError: Error {
    case noRowReturned
}
