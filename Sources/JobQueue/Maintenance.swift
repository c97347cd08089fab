import Foundation
import Logging
import NotificationModel
import PostgresAccess
import PostgresNIO

/// Makes due `retryable` and `scheduled` jobs `available` and dispatches them through the outbox.
public struct Scheduler: Sendable {
    public struct Configuration: Sendable {
        public var batchSize = 1000
        public init() {}
    }

    let client: Database
    let configuration: Configuration
    let logger: Logger

    public init(client: Database, configuration: Configuration = .init(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// Returns how many jobs were made available.
    @discardableResult
    public func runOnce() async throws -> Int {
        let rows = try await client.query(
            """
            WITH due AS (
                SELECT id FROM jobs WHERE state IN ('retryable', 'scheduled') AND run_at <= now()
                ORDER BY run_at LIMIT \(configuration.batchSize) FOR UPDATE SKIP LOCKED
            ), made AS (
                UPDATE jobs j SET state = 'available', updated_at = now() FROM due WHERE j.id = due.id RETURNING j.id
            )
            SELECT count(dispatch_job(id))::int FROM made
            """,
            logger: logger
        )
        var count = 0
        for try await value in rows.decode(Int.self) { count = value }
        return count
    }
}

/// Returns work that nobody is doing: `running` jobs whose lease expired (their worker died) become `retryable`
/// (or `discarded` when out of attempts), and `available` jobs whose broker message was evidently lost are dispatched
/// again.
public struct Rescuer: Sendable {
    public struct Configuration: Sendable {
        /// An available job with no unpublished outbox row, untouched for this long, lost its message.
        public var redispatchAfter: Duration = .seconds(120)
        public var batchSize = 1000
        /// How often the maintenance leader looks for lost messages: an eighth of `redispatchAfter` (at least a
        /// second). The look scans the available jobs, thousands under load (35 ms a time on a million notifications,
        /// 4 % of a core when it ran every second); a lost message waits at most this much longer.
        public var redispatchEvery: Duration { max(.seconds(1), redispatchAfter / 8) }
        public init() {}
    }

    public struct Result: Sendable, Equatable {
        public var rescued = 0
        public var discarded = 0
        public var redispatched = 0

        public init(rescued: Int = 0, discarded: Int = 0, redispatched: Int = 0) {
            self.rescued = rescued
            self.discarded = discarded
            self.redispatched = redispatched
        }
    }

    let client: Database
    let configuration: Configuration
    let logger: Logger

    public init(client: Database, configuration: Configuration = .init(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// Rescues expired leases and, with `redispatchLost`, dispatches lost messages again.
    public func runOnce(redispatchLost: Bool = true) async throws -> Result {
        try await client.withTransaction(logger: logger) { [configuration, logger] connection in
            var result = Result()
            let rows = try await connection.query(
                """
                WITH expired AS (
                    SELECT id FROM jobs WHERE state = 'running' AND lease_expires_at < now()
                    LIMIT \(configuration.batchSize) FOR UPDATE SKIP LOCKED
                ), rescued AS (
                    UPDATE jobs j
                    SET state = CASE WHEN j.attempt >= j.max_attempts THEN 'discarded' ELSE 'retryable' END,
                        run_at = now(), finalized_at = CASE WHEN j.attempt >= j.max_attempts THEN now() END,
                        errors = j.errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', j.attempt,
                            'error', 'lease expired: worker ' || coalesce(j.attempted_by, 'unknown') || ' is gone', 'permanent', false)),
                        lease_expires_at = NULL, updated_at = now()
                    FROM expired WHERE j.id = expired.id
                    RETURNING j.id, j.notification_id, j.state
                ), marked AS (
                    UPDATE notifications n
                    SET status = CASE WHEN rescued.state = 'discarded' THEN 'failed' ELSE 'retrying' END,
                        last_error = 'lease expired', updated_at = now()
                    FROM rescued WHERE n.id = rescued.notification_id
                )
                SELECT id, state FROM rescued
                """,
                logger: logger
            )
            var discarded: [Int] = []
            for try await (id, state) in rows.decode((Int, String).self) {
                if state == "discarded" { discarded.append(id) } else { result.rescued += 1 }
            }
            for id in discarded {
                _ = try await connection.query("SELECT dead_letter_job(\(id))", logger: logger)
            }
            result.discarded = discarded.count

            guard redispatchLost else { return result }
            let lost = try await connection.query(
                """
                WITH lost AS (
                    SELECT j.id FROM jobs j
                    WHERE j.state = 'available' AND j.updated_at < now() - make_interval(secs => \(configuration.redispatchAfter.inSeconds))
                      AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.message_id = j.id::text AND o.published_at IS NULL)
                    LIMIT \(configuration.batchSize) FOR UPDATE SKIP LOCKED
                ), touched AS (
                    UPDATE jobs j SET updated_at = now() FROM lost WHERE j.id = lost.id RETURNING j.id
                )
                SELECT count(dispatch_job(id))::int FROM touched
                """,
                logger: logger
            )
            for try await count in lost.decode(Int.self) { result.redispatched = count }
            return result
        }
    }
}

/// Retention: deletes finished jobs older than their retention, and outbox rows that relays of releases before
/// `sql/notifications/0024` marked published instead of deleting them.
public struct Cleaner: Sendable {
    public struct Configuration: Sendable {
        public var jobRetention: Duration = .seconds(7 * 24 * 3600)
        public var outboxRetention: Duration = .seconds(24 * 3600)
        public var batchSize = 10_000
        public init() {}
    }

    public struct Result: Sendable, Equatable {
        public var jobs = 0
        public var outbox = 0

        public init(jobs: Int = 0, outbox: Int = 0) {
            self.jobs = jobs
            self.outbox = outbox
        }
    }

    let client: Database
    let configuration: Configuration
    let logger: Logger

    public init(client: Database, configuration: Configuration = .init(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    /// Deletes one batch of published outbox rows and one of finished jobs (with their history) past retention.
    public func runOnce() async throws -> Result {
        var result = Result()
        let outbox = try await client.query(
            """
            WITH gone AS (
                DELETE FROM outbox WHERE id IN (
                    SELECT id FROM outbox
                    WHERE published_at < now() - make_interval(secs => \(configuration.outboxRetention.inSeconds))
                    LIMIT \(configuration.batchSize))
                RETURNING 1
            ) SELECT count(*)::int FROM gone
            """,
            logger: logger
        )
        for try await count in outbox.decode(Int.self) { result.outbox = count }
        let jobs = try await client.query(
            """
            WITH gone AS (
                DELETE FROM jobs WHERE id IN (
                    SELECT id FROM jobs
                    WHERE state IN ('completed', 'cancelled')
                      AND finalized_at < now() - make_interval(secs => \(configuration.jobRetention.inSeconds))
                    LIMIT \(configuration.batchSize))
                RETURNING id
            ), transitions AS (
                -- The job's history goes with it (job_transitions has no foreign key: sql/notifications/0022).
                DELETE FROM job_transitions t USING gone WHERE t.job_id = gone.id
            ) SELECT count(*)::int FROM gone
            """,
            logger: logger
        )
        for try await count in jobs.decode(Int.self) { result.jobs = count }
        return result
    }
}
