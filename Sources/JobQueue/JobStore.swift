import Foundation
import Logging
import NotificationModel
import PostgresAccess
import PostgresNIO

/// A job a worker has won: everything needed to deliver it, read from the rows that decide its fate.
public struct ClaimedJob: Sendable {
    public var jobID: Int
    public var notificationID: UUID
    public var channel: NotificationChannel
    public var attempt: Int
    public var maxAttempts: Int
    /// The user it goes to; nil when it goes to `recipient`, an address.
    public var userID: UUID?
    public var templateCode: String
    /// The template version pinned when the notification was accepted.
    public var templateVersion: Int?
    public var language: String?
    public var variables: [String: JSONValue]
    public var requestID: String
    public var correlationID: String
    public var priority: Int = 0
    /// The address an email goes to instead of the user's (the platform's own mail, such as an address verification).
    public var deliverTo: String? = nil
    /// Where it goes when it was sent to an address rather than a user.
    public var recipient: DirectRecipient? = nil
    /// Why the row could not be read as it must be (variables that are not a JSON object, an unknown queue): such a
    /// job fails permanently with this reason instead of being sent with defaults.
    public var corruption: String? = nil
}

/// How a worker came to claim a job.
public enum ClaimPath: String, Sendable {
    /// From a RabbitMQ message.
    case broker
    /// Straight from PostgreSQL while the broker circuit is open.
    case fallback
}

/// All SQL that moves jobs between states. Functions that must join a caller's transaction take `on connection`.
///
/// A statement that finds jobs by id checks their state as `(state = 'running') IS TRUE`, not `state = 'running'`:
/// the planner matches the plain form against the partial indexes of unsettled jobs (`jobs_available`,
/// `jobs_state_run_at`) and, when the statistics were gathered while few jobs waited (as they usually are), reads all
/// of them instead of the few rows by primary key: 1.8 ms instead of 0.06 ms for 20 of 3,000 running jobs, and every
/// completion, failure, snooze and heartbeat does it (docs/benchmarks.md, fourteenth round). `IS TRUE` gives the same
/// rows and is no index condition. `MaintenanceTests.jobsByIDUseThePrimaryKey` checks the plans.
public struct JobStore: Sendable {
    public let client: Database
    public let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// The atomic claim of one job named by a broker message: only an `available` job can be taken, by exactly one
    /// worker, with a lease.
    public func claim(jobID: Int, worker: String, lease: Duration) async throws -> ClaimedJob? {
        try await claim(jobIDs: [jobID], queue: nil, unpublishedFor: nil, limit: 1, via: .broker, worker: worker, lease: lease).first
    }

    /// The claim of several jobs named by broker messages, in one statement: those that are `available` are taken.
    /// One answer per id named, in order: the job, or nil when it was not available. A job named twice (a redelivered
    /// message in the same group) goes to its first naming only.
    public func claim(jobIDs: [Int], worker: String, lease: Duration) async throws -> [ClaimedJob?] {
        guard !jobIDs.isEmpty else { return [] }
        let claimed = try await claim(
            jobIDs: jobIDs,
            queue: nil,
            unpublishedFor: nil,
            limit: jobIDs.count,
            via: .broker,
            worker: worker,
            lease: lease
        )
        var byID = Dictionary(claimed.map { ($0.jobID, $0) }, uniquingKeysWith: { first, _ in first })
        return jobIDs.map { byID.removeValue(forKey: $0) }
    }

    /// The fallback path: claims up to `limit` available jobs of a queue straight from PostgreSQL, highest priority
    /// first. `SKIP LOCKED` lets any number of workers do this at once without taking the same job.
    public func claimAvailable(queue: NotificationChannel, limit: Int, worker: String, lease: Duration) async throws -> [ClaimedJob] {
        guard limit > 0 else { return [] }
        return try await claim(jobIDs: nil, queue: queue, unpublishedFor: nil, limit: limit, via: .fallback, worker: worker, lease: lease)
    }

    /// Claims up to `limit` available jobs of a queue whose outbox message has waited unpublished for longer than
    /// `age` (no relay could publish it: all relays down, or RabbitMQ's HTTP publish stalled), highest priority first.
    /// Their outbox rows are deleted, so they are not published afterwards; a copy a relay published
    /// meanwhile is dropped by the claim. Rows a relay is publishing right now (locked) are left to it.
    public func claimUnpublished(
        queue: NotificationChannel,
        olderThan age: Duration,
        limit: Int,
        worker: String,
        lease: Duration
    ) async throws
        -> [ClaimedJob]
    {
        guard limit > 0 else { return [] }
        return try await claim(jobIDs: nil, queue: queue, unpublishedFor: age, limit: limit, via: .fallback, worker: worker, lease: lease)
    }

    /// Every claim in one statement: pick `available` jobs (the named ones; the queue's next due ones; or those whose
    /// outbox message waited unpublished for longer than `unpublishedFor`), make them `running` under a lease, mark
    /// their notifications `processing` (and delete their unpublished outbox rows), and return what delivery needs.
    /// Each way of picking is a statement of its own, prepared once per connection, so that each gets a plan of its
    /// own that the server keeps (one statement for all three was planned anew on every call: 0.8 ms each).
    func claim(
        jobIDs: [Int]?,
        queue: NotificationChannel?,
        unpublishedFor: Duration?,
        limit: Int,
        via: ClaimPath,
        worker: String,
        lease: Duration
    ) async throws
        -> [ClaimedJob]
    {
        var bindings = PostgresBindings(capacity: 6)
        bindings.append(worker)
        bindings.append(via.rawValue)
        bindings.append(lease.inSeconds)
        // In a transaction: the claim must be committed before anything is delivered (a lone statement's rows arrive
        // before its commit, which a crash of the server can still undo; the job would then be claimed again).
        if let jobIDs {
            bindings.append(jobIDs)
            return try await client.withTransaction(logger: logger) { [logger, bindings] connection in
                try await Self.decode(connection.execute(ClaimNamed.self, bindings, logger: logger))
            }
        }
        bindings.append(queue?.rawValue ?? "")
        bindings.append(limit)
        if let unpublishedFor {
            bindings.append(unpublishedFor.inSeconds)
            return try await client.withTransaction(logger: logger) { [logger, bindings] connection in
                try await Self.decode(connection.execute(ClaimUnpublished.self, bindings, logger: logger))
            }
        }
        return try await client.withTransaction(logger: logger) { [logger, bindings] connection in
            try await Self.decode(connection.execute(ClaimDue.self, bindings, logger: logger))
        }
    }

    /// The jobs named by broker messages: `$4` their ids. By primary key only: with the state in this condition the
    /// planner may scan the partial index of available jobs instead, thousands of them under load (whether each may
    /// be claimed is `due`, read from the row once locked).
    enum ClaimNamed: PreparedSQL {
        static let sql = """
            WITH next AS (
                SELECT id, state = 'available' AS due FROM jobs WHERE id = ANY ($4::bigint[])
                FOR UPDATE SKIP LOCKED
            )\(claimedCTEs)
            \(claimedRows)
            """
    }

    /// The queue's (`$4`) next `$5` due jobs, highest priority first.
    enum ClaimDue: PreparedSQL {
        static let sql = """
            WITH next AS (
                SELECT id, true AS due FROM jobs
                WHERE state = 'available' AND queue = $4::text AND run_at <= now()
                ORDER BY priority DESC, run_at, id
                LIMIT $5::bigint
                FOR UPDATE SKIP LOCKED
            )\(claimedCTEs)
            \(claimedRows)
            """
    }

    /// Up to `$5` jobs of the queue `$4` whose outbox message waited unpublished for longer than `$6` seconds; their
    /// outbox rows are deleted.
    enum ClaimUnpublished: PreparedSQL {
        static let sql = """
            WITH stale AS (
                SELECT o.id, o.message_id::bigint AS job_id FROM outbox o
                WHERE o.published_at IS NULL AND o.routing_key = $4::text
                  AND o.created_at < now() - make_interval(secs => $6::float8)
                ORDER BY o.priority DESC, o.id
                LIMIT $5::bigint
                FOR UPDATE SKIP LOCKED
            ), next AS (
                SELECT j.id, j.state = 'available' AND j.run_at <= now() AS due FROM jobs j JOIN stale ON j.id = stale.job_id
                FOR UPDATE OF j SKIP LOCKED
            )\(claimedCTEs), settled AS (
                DELETE FROM outbox o USING stale JOIN claimed ON claimed.id = stale.job_id WHERE o.id = stale.id
            )
            \(claimedRows)
            """
    }

    /// The CTEs of every claim after a CTE `next` of the jobs picked and locked, with `due` whether each may be claimed
    /// (read from the locked row, its latest version): `$1` the worker, `$2` the path, `$3` the lease in seconds.
    ///
    /// No condition on the state of `j` here: the planner would then read the jobs through the partial index of
    /// available jobs and join them with `next`, all of them (a backlog of 5,000 cost 5 ms per claim of 20 whenever
    /// the statistics had been gathered while few jobs waited, as they usually are; docs/benchmarks.md).
    static let claimedCTEs = """
        , claimed AS (
            UPDATE jobs j
            SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), attempted_by = $1::text,
                attempted_via = $2::text, lease_expires_at = now() + make_interval(secs => $3::float8),
                updated_at = now()
            FROM next WHERE j.id = next.id AND next.due
            RETURNING j.id, j.notification_id, j.queue, j.attempt, j.max_attempts
        ), marked AS (
            UPDATE notifications n SET status = 'processing', updated_at = now()
            FROM claimed WHERE n.id = claimed.notification_id
        )
        """

    /// What every claim returns.
    static let claimedRows = """
        SELECT claimed.id, claimed.notification_id, claimed.queue, claimed.attempt, claimed.max_attempts,
               n.user_id, n.template_code, n.language, n.variables::text, n.request_id, n.correlation_id, n.template_version,
               n.priority, n.deliver_to, n.recipient::text
        FROM claimed JOIN notifications n ON n.id = claimed.notification_id
        """

    /// The rest of a digest: every other job of the same client, user, channel and template whose notification was
    /// held until the same window end and is not yet sent (at most `limit`, oldest first). Those waiting are claimed
    /// now, under a lease, as the claim of a single job does (`claimed`); those this worker already holds (claimed in
    /// the same wave as `job`) are returned as they are (`held`): their own turn must then do nothing. Empty when
    /// `job` was not held or has no company.
    public func claimDigest(
        of job: ClaimedJob,
        worker: String,
        lease: Duration,
        limit: Int = 500
    ) async throws
        -> (claimed: [ClaimedJob], held: [ClaimedJob])
    {
        try await client.withTransaction(logger: logger) { [logger] connection in
            let claimed = try await Self.decode(
                try await connection.query(
                    """
                    WITH main AS (
                        SELECT client, user_id, channel, template_code, send_at FROM notifications WHERE id = \(job.notificationID)
                    ), siblings AS (
                        SELECT j.id FROM main
                        JOIN notifications n ON n.client = main.client AND n.user_id = main.user_id AND n.channel = main.channel
                             AND n.template_code = main.template_code AND n.send_at = main.send_at AND n.id <> \(job.notificationID)
                        JOIN jobs j ON j.notification_id = n.id
                        WHERE main.send_at IS NOT NULL AND main.user_id IS NOT NULL AND j.state IN ('scheduled', 'available', 'retryable')
                        ORDER BY n.created_at, n.id
                        LIMIT \(limit)
                        FOR UPDATE OF j SKIP LOCKED
                    ), claimed AS (
                        UPDATE jobs j
                        SET state = 'running', attempt = j.attempt + 1, attempted_at = now(), attempted_by = \(worker), attempted_via = 'digest',
                            lease_expires_at = now() + make_interval(secs => \(lease.inSeconds)), updated_at = now()
                        FROM siblings WHERE j.id = siblings.id
                        RETURNING j.id, j.notification_id, j.queue, j.attempt, j.max_attempts
                    ), marked AS (
                        UPDATE notifications n SET status = 'processing', updated_at = now()
                        FROM claimed WHERE n.id = claimed.notification_id
                    )
                    SELECT claimed.id, claimed.notification_id, claimed.queue, claimed.attempt, claimed.max_attempts,
                           n.user_id, n.template_code, n.language, n.variables::text, n.request_id, n.correlation_id, n.template_version,
                           n.priority, n.deliver_to, n.recipient::text
                    FROM claimed JOIN notifications n ON n.id = claimed.notification_id
                    ORDER BY n.created_at, n.id
                    """,
                    logger: logger
                )
            )
            let held = try await Self.decode(
                try await connection.query(
                    """
                    WITH main AS (
                        SELECT client, user_id, channel, template_code, send_at FROM notifications WHERE id = \(job.notificationID)
                    )
                    SELECT j.id, j.notification_id, j.queue, j.attempt, j.max_attempts,
                           n.user_id, n.template_code, n.language, n.variables::text, n.request_id, n.correlation_id, n.template_version,
                           n.priority, n.deliver_to, n.recipient::text
                    FROM main
                    JOIN notifications n ON n.client = main.client AND n.user_id = main.user_id AND n.channel = main.channel
                         AND n.template_code = main.template_code AND n.send_at = main.send_at AND n.id <> \(job.notificationID)
                    JOIN jobs j ON j.notification_id = n.id
                    WHERE main.send_at IS NOT NULL AND main.user_id IS NOT NULL AND j.state = 'running' AND j.attempted_by = \(worker)
                      AND j.attempted_via <> 'digest'
                    ORDER BY n.created_at, n.id
                    LIMIT \(limit)
                    """,
                    logger: logger
                )
            )
            return (claimed, held)
        }
    }

    static func decode<Rows: AsyncSequence & Sendable>(_ rows: Rows) async throws -> [ClaimedJob] where Rows.Element == PostgresRow {
        typealias Row = (Int, UUID, String, Int, Int, UUID?, String, String?, String, String, String, Int?, Int, String?, String?)
        var jobs: [ClaimedJob] = []
        for try await row in rows.decode(Row.self) {
            var corruption: [String] = []
            let variables: [String: JSONValue]
            do { variables = try JSONValue.parseObject(Data(row.8.utf8)) } catch {
                variables = [:]
                corruption.append("its variables are not a JSON object")
            }
            let channel = NotificationChannel(rawValue: row.2)
            if channel == nil { corruption.append("its queue \(row.2) is no channel") }
            var recipient: DirectRecipient?
            if let text = row.14 {
                recipient = try? JSONDecoder().decode(DirectRecipient.self, from: Data(text.utf8))
                if recipient == nil { corruption.append("its recipient is not one this release knows") }
            } else if row.5 == nil {
                corruption.append("it names neither a user nor a recipient")
            }
            jobs.append(
                ClaimedJob(
                    jobID: row.0,
                    notificationID: row.1,
                    channel: channel ?? .email,
                    attempt: row.3,
                    maxAttempts: row.4,
                    userID: row.5,
                    templateCode: row.6,
                    templateVersion: row.11,
                    language: row.7,
                    variables: variables,
                    requestID: row.9,
                    correlationID: row.10,
                    priority: row.12,
                    deliverTo: row.13,
                    recipient: recipient,
                    corruption: corruption.isEmpty ? nil : "corrupt job row: " + corruption.joined(separator: "; ")
                )
            )
        }
        return jobs
    }

    /// The job is done: the notification was handed to the SMTP server or push provider.
    public func complete(jobID: Int, worker: String) async throws {
        try await complete(jobIDs: [jobID], worker: worker)
    }

    /// Several jobs of this worker done, in one transaction (committed before it returns: the worker keeps the job
    /// until its completion is durable, so a crash of the server cannot leave a sent job to be sent again).
    public func complete(jobIDs: [Int], worker: String, deliveries: [ProviderDelivery] = []) async throws {
        guard !jobIDs.isEmpty else { return }
        var bindings = PostgresBindings(capacity: 10)
        bindings.append(jobIDs)
        bindings.append(worker)
        ProviderDelivery.bind(deliveries, into: &bindings)
        try await client.withTransaction(logger: logger) { [logger, bindings] connection in
            _ = try await connection.execute(CompleteStatement.self, bindings, logger: logger)
        }
    }

    /// The completion of jobs with which provider sent each message (`ProviderDelivery.bind`, `$3`–`$10`), in one
    /// statement, prepared once per connection.
    enum CompleteStatement: PreparedSQL {
        static let sql = """
            WITH attempts AS (
                SELECT * FROM unnest($3::uuid[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[])
                    WITH ORDINALITY AS t(notification_id, attempt, provider, outcome, message_id, error_code, error, channel, k)
            ), email AS (
                \(ProviderDelivery.insertSQL(into: "email_deliveries", channel: "email"))
            ), sms AS (
                \(ProviderDelivery.insertSQL(into: "sms_deliveries", channel: "sms"))
            ), done AS (
                UPDATE jobs SET state = 'completed', finalized_at = now(), lease_expires_at = NULL, updated_at = now()
                WHERE id = ANY ($1::bigint[]) AND (state = 'running' AND attempted_by = $2::text) IS TRUE
                RETURNING notification_id
            )
            -- A provider's webhook can report delivery (or a bounce) before this commit: its verdict stays.
            UPDATE notifications n
            SET status = CASE WHEN n.status IN ('delivered', 'undelivered', 'bounced', 'complained') THEN n.status ELSE 'sent' END,
                sent_at = now(), updated_at = now(), last_error = NULL
            FROM done WHERE n.id = done.notification_id
            """
    }

    /// Records a failed attempt: `retryable` at now + `retryAfter` if transient and attempts remain, otherwise
    /// `discarded` with a dead-letter event for failed.queue. Returns the new state.
    @discardableResult
    public func fail(jobID: Int, error: String, permanent: Bool, retryAfter: Duration) async throws -> JobState? {
        try await client.withTransaction(logger: logger) { [logger] connection in
            let rows = try await connection.query(
                """
                WITH failed AS (
                    UPDATE jobs
                    SET state = CASE WHEN \(permanent) OR attempt >= max_attempts THEN 'discarded' ELSE 'retryable' END,
                        run_at = now() + make_interval(secs => \(retryAfter.inSeconds)),
                        finalized_at = CASE WHEN \(permanent) OR attempt >= max_attempts THEN now() END,
                        errors = errors || jsonb_build_array(jsonb_build_object(
                            'at', now(), 'attempt', attempt, 'error', \(error)::text, 'permanent', \(permanent))),
                        lease_expires_at = NULL, updated_at = now()
                    WHERE id = \(jobID) AND (state = 'running') IS TRUE
                    RETURNING notification_id, state
                )
                UPDATE notifications n
                SET status = CASE WHEN failed.state = 'discarded' THEN 'failed' ELSE 'retrying' END,
                    last_error = \(error), updated_at = now()
                FROM failed WHERE n.id = failed.notification_id
                RETURNING failed.state
                """,
                logger: logger
            )
            var state: JobState?
            for try await value in rows.decode(String.self) { state = JobState(rawValue: value) }
            if state == .discarded {
                _ = try await connection.query("SELECT dead_letter_job(\(jobID))", logger: logger)
            }
            return state
        }
    }

    /// Gives a claimed job back without counting the attempt (a dependency's circuit is open, or the worker is
    /// shutting down): it becomes due again after `delay`.
    public func snooze(jobID: Int, delay: Duration, cause: String) async throws {
        try await client.withTransaction(logger: logger) { [logger] connection in
            _ = try await connection.query("SELECT set_config('notify.cause', \(cause), true)", logger: logger)
            _ = try await connection.query(
                """
                WITH snoozed AS (
                    UPDATE jobs SET state = 'retryable', attempt = greatest(attempt - 1, 0),
                        run_at = now() + make_interval(secs => \(delay.inSeconds)), lease_expires_at = NULL, updated_at = now()
                    WHERE id = \(jobID) AND (state = 'running') IS TRUE
                    RETURNING notification_id
                )
                UPDATE notifications n SET status = 'retrying', updated_at = now() FROM snoozed WHERE n.id = snoozed.notification_id
                """,
                logger: logger
            )
        }
    }

    /// The job will not be sent (see the worker's check at send time): it is `cancelled`, and so is its notification,
    /// with `cause` in both histories.
    public func withdraw(jobID: Int, cause: String) async throws {
        try await client.withTransaction(logger: logger) { [logger] connection in
            _ = try await connection.query("SELECT set_config('notify.cause', \(cause), true)", logger: logger)
            _ = try await connection.query(
                """
                WITH withdrawn AS (
                    UPDATE jobs SET state = 'cancelled', finalized_at = now(), lease_expires_at = NULL, updated_at = now()
                    WHERE id = \(jobID) AND (state = 'running') IS TRUE
                    RETURNING notification_id
                )
                UPDATE notifications n SET status = 'cancelled', last_error = \(cause), updated_at = now()
                FROM withdrawn WHERE n.id = withdrawn.notification_id
                """,
                logger: logger
            )
        }
    }

    /// What a client's cancel found.
    public enum CancelOutcome: Sendable, Equatable {
        /// Withdrawn now: it will never be sent.
        case cancelled
        /// It had been cancelled already (by an earlier call, or at send time).
        case alreadyCancelled
        /// Too late: a worker is sending it right now, or it was sent or failed; the job's state says which.
        case tooLate(JobState)
        /// No job for this notification.
        case notFound
    }

    /// Withdraws a notification that is not yet sent (its job `scheduled`, `available` or `retryable`): the job and
    /// the notification become `cancelled` with `cause` in both histories, and an outbox message not yet published is
    /// deleted. A copy already on the broker finds the job no longer `available` and is dropped by the
    /// claim, so a cancelled job is never sent. A `running` job is left to its worker.
    public func cancel(notificationID: UUID, cause: String) async throws -> CancelOutcome {
        try await client.withTransaction(logger: logger) { [logger] connection in
            _ = try await connection.query("SELECT set_config('notify.cause', \(cause), true)", logger: logger)
            let rows = try await connection.query(
                """
                WITH target AS (
                    SELECT id, state FROM jobs WHERE notification_id = \(notificationID) FOR UPDATE
                ), withdrawn AS (
                    UPDATE jobs j SET state = 'cancelled', finalized_at = now(), lease_expires_at = NULL, updated_at = now()
                    FROM target WHERE j.id = target.id AND target.state IN ('scheduled', 'available', 'retryable')
                    RETURNING j.id, j.notification_id
                ), marked AS (
                    UPDATE notifications n SET status = 'cancelled', last_error = \(cause), updated_at = now()
                    FROM withdrawn WHERE n.id = withdrawn.notification_id
                ), settled AS (
                    DELETE FROM outbox o USING withdrawn WHERE o.message_id = withdrawn.id::text AND o.published_at IS NULL
                )
                SELECT target.state, EXISTS (SELECT 1 FROM withdrawn) FROM target
                """,
                logger: logger
            )
            for try await (state, withdrawn) in rows.decode((String, Bool).self) {
                if withdrawn { return .cancelled }
                guard let state = JobState(rawValue: state) else { return .notFound }
                return state == .cancelled ? .alreadyCancelled : .tooLate(state)
            }
            return .notFound
        }
    }

    /// Extends the leases of jobs this worker is still working on.
    public func heartbeat(jobIDs: [Int], worker: String, lease: Duration) async throws {
        guard !jobIDs.isEmpty else { return }
        try await client.query(
            """
            UPDATE jobs SET lease_expires_at = now() + make_interval(secs => \(lease.inSeconds))
            WHERE id = ANY(\(jobIDs)) AND (state = 'running' AND attempted_by = \(worker)) IS TRUE
            """,
            logger: logger
        )
    }

}

public enum JobStoreError: Error {
    case noRowReturned
}

/// One provider's part in one email attempt (`email_deliveries`), in chain order.
public struct ProviderDelivery: Sendable {
    public var notificationID: UUID
    public var attempt: Int
    public var provider: String
    public var outcome: String
    public var providerMessageID: String?
    public var errorCode: String?
    public var error: String?
    /// Email rows go to `email_deliveries`, SMS rows to `sms_deliveries`.
    public var channel: NotificationChannel

    public init(
        notificationID: UUID,
        attempt: Int,
        provider: String,
        outcome: String,
        providerMessageID: String?,
        errorCode: String?,
        error: String?,
        channel: NotificationChannel = .email
    ) {
        self.channel = channel
        self.notificationID = notificationID
        self.attempt = attempt
        self.provider = provider
        self.outcome = outcome
        self.providerMessageID = providerMessageID
        self.errorCode = errorCode
        self.error = error
    }

    /// One statement for all rows, kept in the order given.
    /// Writes provider attempts outside a completion (an email that was not sent), in one prepared statement.
    public static func insert(_ all: [ProviderDelivery], on connection: PostgresConnection, logger: Logger) async throws {
        guard !all.isEmpty else { return }
        var bindings = PostgresBindings(capacity: 8)
        bind(all, into: &bindings)
        _ = try await connection.execute(InsertStatement.self, bindings, logger: logger)
    }

    /// The rows as eight parallel arrays (notification, attempt, provider, outcome, message id, error code, error,
    /// channel; "" for none), in chain order.
    static func bind(_ rows: [ProviderDelivery], into bindings: inout PostgresBindings) {
        bindings.append(rows.map(\.notificationID))
        bindings.append(rows.map(\.attempt))
        bindings.append(rows.map(\.provider))
        bindings.append(rows.map(\.outcome))
        bindings.append(rows.map { $0.providerMessageID ?? "" })
        bindings.append(rows.map { $0.errorCode ?? "" })
        bindings.append(rows.map { $0.error ?? "" })
        bindings.append(rows.map(\.channel.rawValue))
    }

    /// The insert of the rows of one channel from the CTE `attempts`, in chain order.
    static func insertSQL(into table: String, channel: String) -> String {
        """
        INSERT INTO \(table) (notification_id, attempt, provider, outcome, provider_message_id, error_code, error)
                SELECT notification_id, attempt, provider, outcome, NULLIF(message_id, ''), NULLIF(error_code, ''), NULLIF(error, '')
                FROM attempts WHERE channel = '\(channel)' ORDER BY k
        """
    }

    enum InsertStatement: PreparedSQL {
        static let sql = """
            WITH attempts AS (
                SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
                    WITH ORDINALITY AS t(notification_id, attempt, provider, outcome, message_id, error_code, error, channel, k)
            ), email AS (
                \(insertSQL(into: "email_deliveries", channel: "email"))
            )
            \(insertSQL(into: "sms_deliveries", channel: "sms"))
            """
    }
}
