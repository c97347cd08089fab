import Foundation
import Logging
import Migrations
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

@testable import JobQueue

/// Scheduler, rescuer and cleaner, each called through `runOnce()` against a real migrated database; plus the SQL
/// that operators use: transitions, dead letters and their replay, the inspection views.
@Suite("Maintenance and SQL inspection")
struct MaintenanceTests {
    /// Runs `body` with a client on a freshly migrated notifications database.
    func withDatabase(_ body: @Sendable (Database) async throws -> Void) async throws {
        let infra = try TestInfrastructure()
        try await Migrator(
            settings: infra.postgres,
            directory: NotifyProcess.repositoryRoot.appendingPathComponent("sql"),
            logger: TestInfrastructure.logger
        ).run()
        do {
            try await infra.withDatabase(.notifications, body)
        } catch {
            await infra.dropDatabases()
            throw error
        }
        await infra.dropDatabases()
    }

    /// A notification and its job, inserted as the gateway does. Returns (notification id, job id).
    func insertJob(_ client: Database, runAt: Date? = nil, maxAttempts: Int = 3) async throws -> (UUID, Int) {
        let id = UUID()
        let logger = TestInfrastructure.logger
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let sendAt = runAt.map { formatter.string(from: $0) } ?? ""
        var jobID: Int?
        for try await value in try await client.query(
            """
            SELECT job_id FROM accept_notifications(
                \([id])::uuid[], ARRAY['c'], \([id.lowercased])::text[], ARRAY['h'], ARRAY['email'], \([UUID()])::uuid[],
                ARRAY['welcome'], ARRAY[''], ARRAY['{"name":"Ada"}'], ARRAY[''], ARRAY[0], \([sendAt])::text[], ARRAY['corr'],
                ARRAY[1], \(maxAttempts)::int)
            """,
            logger: logger
        ).decode(Int.self) { jobID = value }
        guard let jobID else { throw JobStoreError.noRowReturned }
        return (id, jobID)
    }

    func scalar<T: PostgresDecodable & Sendable>(_ client: Database, _ query: PostgresQuery, as: T.Type = T.self) async throws -> T? {
        for try await value in try await client.query(query, logger: TestInfrastructure.logger).decode(T.self) { return value }
        return nil
    }

    func jobState(_ client: Database, _ jobID: Int) async throws -> String? {
        try await scalar(client, "SELECT state FROM jobs WHERE id = \(jobID)")
    }

    func outboxCount(_ client: Database, messageID: String) async throws -> Int {
        try await scalar(client, "SELECT count(*)::int FROM outbox WHERE message_id = \(messageID)") ?? -1
    }

    @Test("the scheduler makes due retryable and scheduled jobs available and dispatches them; future ones wait")
    func schedulerDispatchesDueJobs() async throws {
        try await withDatabase { client in
            let store = JobStore(client: client, logger: TestInfrastructure.logger)
            let (_, retrying) = try await insertJob(client)
            _ = try await store.claim(jobID: retrying, worker: "w", lease: .seconds(60))
            try await store.fail(jobID: retrying, error: "451 try later", permanent: false, retryAfter: .zero)
            let (_, later) = try await insertJob(client, runAt: Date().addingTimeInterval(3600))
            #expect(try await jobState(client, retrying) == "retryable")
            #expect(try await jobState(client, later) == "scheduled")

            let made = try await Scheduler(client: client, logger: TestInfrastructure.logger).runOnce()
            #expect(made == 1)
            #expect(try await jobState(client, retrying) == "available")
            #expect(try await jobState(client, later) == "scheduled")
            #expect(try await outboxCount(client, messageID: String(retrying)) == 2, "the original dispatch and the retry")
            let attempt: Int? = try await scalar(
                client,
                "SELECT (payload->>'attempt')::int FROM outbox WHERE message_id = \(String(retrying)) ORDER BY id DESC LIMIT 1"
            )
            #expect(attempt == 1)
        }
    }

    @Test("the rescuer returns jobs with expired leases, dead-letters those out of attempts, and re-dispatches lost messages")
    func rescuerReturnsLostWork() async throws {
        try await withDatabase { client in
            let store = JobStore(client: client, logger: TestInfrastructure.logger)
            let (_, crashed) = try await insertJob(client)
            _ = try await store.claim(jobID: crashed, worker: "worker-a", lease: .milliseconds(1))
            let (exhaustedID, exhausted) = try await insertJob(client, maxAttempts: 1)
            _ = try await store.claim(jobID: exhausted, worker: "worker-a", lease: .milliseconds(1))
            let (_, lost) = try await insertJob(client)
            _ = try await client.query(
                // Published (the relay deletes the row), and the job still not claimed ten minutes later.
                "DELETE FROM outbox WHERE message_id = \(String(lost))",
                logger: TestInfrastructure.logger
            )
            _ = try await client.query(
                "UPDATE jobs SET updated_at = now() - interval '10 minutes' WHERE id = \(lost)",
                logger: TestInfrastructure.logger
            )
            let (_, healthy) = try await insertJob(client)
            _ = try await store.claim(jobID: healthy, worker: "worker-b", lease: .seconds(300))
            // Leases of 1 ms: make sure they are in the past.
            _ = try await client.query("SELECT pg_sleep(0.01)", logger: TestInfrastructure.logger)

            var configuration = Rescuer.Configuration()
            configuration.redispatchAfter = .seconds(60)
            #expect(configuration.redispatchEvery == .milliseconds(7500))
            let rescuer = Rescuer(client: client, configuration: configuration, logger: TestInfrastructure.logger)
            // The rounds between two looks for lost messages rescue leases only.
            let leasesOnly = try await rescuer.runOnce(redispatchLost: false)
            #expect(leasesOnly == Rescuer.Result(rescued: 1, discarded: 1, redispatched: 0))
            let result = try await rescuer.runOnce()
            #expect(result == Rescuer.Result(rescued: 0, discarded: 0, redispatched: 1))
            #expect(try await jobState(client, crashed) == "retryable")
            #expect(try await jobState(client, exhausted) == "discarded")
            #expect(try await jobState(client, healthy) == "running")
            // Its published message left no row; the new one waits for the relay.
            #expect(try await outboxCount(client, messageID: String(lost)) == 1)
            let error: String? = try await scalar(client, "SELECT errors->-1->>'error' FROM jobs WHERE id = \(crashed)")
            #expect(error == "lease expired: worker worker-a is gone")
            let deadLetter: String? = try await scalar(
                client,
                "SELECT payload->>'notification_id' FROM outbox WHERE routing_key = 'failed' AND message_id LIKE \("dead-\(exhausted)-%")"
            )
            #expect(deadLetter == exhaustedID.lowercased)
            let status: String? = try await scalar(client, "SELECT status FROM notifications WHERE id = \(exhaustedID)")
            #expect(status == "failed")
        }
    }

    @Test("the cleaner deletes old finished jobs and old published outbox rows, and nothing else")
    func cleanerAppliesRetention() async throws {
        try await withDatabase { client in
            let store = JobStore(client: client, logger: TestInfrastructure.logger)
            let (_, old) = try await insertJob(client)
            _ = try await store.claim(jobID: old, worker: "w", lease: .seconds(60))
            try await store.complete(jobID: old, worker: "w")
            let (_, recent) = try await insertJob(client)
            _ = try await store.claim(jobID: recent, worker: "w", lease: .seconds(60))
            try await store.complete(jobID: recent, worker: "w")
            let (_, pending) = try await insertJob(client)
            _ = try await client.query(
                "UPDATE jobs SET finalized_at = now() - interval '30 days' WHERE id = \(old)",
                logger: TestInfrastructure.logger
            )
            // Rows a relay of an earlier release marked published instead of deleting them (sql/notifications/0024).
            _ = try await client.query(
                "UPDATE outbox SET published_at = now() - interval '30 days' WHERE message_id IN (\(String(old)), \(String(recent)))",
                logger: TestInfrastructure.logger
            )
            let result = try await Cleaner(client: client, logger: TestInfrastructure.logger).runOnce()
            #expect(result == Cleaner.Result(jobs: 1, outbox: 2))
            #expect(try await jobState(client, old) == nil)
            // The deleted job's history went with it; the kept job's stayed.
            let transitions: (Int?, Int?) = (
                try await scalar(client, "SELECT count(*)::int FROM job_transitions WHERE job_id = \(old)"),
                try await scalar(client, "SELECT count(*)::int FROM job_transitions WHERE job_id = \(recent)")
            )
            #expect(transitions.0 == 0)
            #expect(transitions.1 == 2, "running and completed are stored; the first state comes from the row (sql/notifications/0025)")
            let story: Int? = try await scalar(client, "SELECT count(*)::int FROM job_history WHERE job_id = \(recent)")
            #expect(story == 3)
            let gone: Int? = try await scalar(client, "SELECT count(*)::int FROM job_history WHERE job_id = \(old)")
            #expect(gone == 0)
            #expect(try await jobState(client, recent) == "completed")
            #expect(try await jobState(client, pending) == "available")
            #expect(try await outboxCount(client, messageID: String(pending)) == 1)
        }
    }

    @Test("every transition is recorded with its cause; a dead letter can be replayed with SQL; the views report it")
    func transitionsDeadLettersAndViews() async throws {
        try await withDatabase { client in
            let store = JobStore(client: client, logger: TestInfrastructure.logger)
            let (id, job) = try await insertJob(client)
            _ = try await store.claim(jobID: job, worker: "w", lease: .seconds(60))
            let state = try await store.fail(jobID: job, error: "550 5.1.1 mailbox unavailable", permanent: true, retryAfter: .zero)
            #expect(state == .discarded)

            var transitions: [String] = []
            for try await (from, to, cause) in try await client.query(
                "SELECT coalesce(from_state, '-'), to_state, coalesce(cause, '') FROM job_history WHERE job_id = \(job) ORDER BY id",
                logger: TestInfrastructure.logger
            ).decode((String, String, String).self) { transitions.append("\(from)>\(to):\(cause)") }
            #expect(transitions == ["->available:accepted", "available>running:", "running>discarded:550 5.1.1 mailbox unavailable"])

            let dead: Int? = try await scalar(client, "SELECT attempts FROM dead_letters WHERE notification_id = \(id)")
            #expect(dead == 1)
            let overview: Int? = try await scalar(client, "SELECT jobs::int FROM job_overview WHERE queue = 'email' AND state = 'discarded'")
            #expect(overview == 1)
            let backlog: Int? = try await scalar(client, "SELECT unpublished::int FROM outbox_backlog WHERE routing_key = 'failed'")
            #expect(backlog == 1)

            let replayed: Bool? = try await scalar(client, "SELECT replay_dead_letter(\(id))")
            #expect(replayed == true)
            #expect(try await jobState(client, job) == "available")
            let again: Bool? = try await scalar(client, "SELECT replay_dead_letter(\(id))")
            #expect(again == false, "only a dead letter can be replayed")
            let lastCause: String? = try await scalar(client, "SELECT cause FROM job_transitions WHERE job_id = \(job) ORDER BY id DESC LIMIT 1")
            #expect(lastCause == "replayed")
            let status: String? = try await scalar(client, "SELECT status FROM notifications WHERE id = \(id)")
            #expect(status == "pending")
            let stuck: Int? = try await scalar(client, "SELECT count(*)::int FROM stuck_jobs")
            #expect(stuck == 0)
        }
    }

    @Test("a grouped claim of broker-named jobs answers each naming in order; a job named twice goes to the first naming only")
    func groupedClaimAnswersInOrder() async throws {
        try await withDatabase { client in
            let store = JobStore(client: client, logger: TestInfrastructure.logger)
            let (_, first) = try await insertJob(client)
            let (_, second) = try await insertJob(client)
            let answers = try await store.claim(jobIDs: [second, first, second, 987_654_321], worker: "w", lease: .seconds(60))
            #expect(answers.map { $0?.jobID } == [second, first, nil, nil])
            #expect(answers.compactMap { $0?.attempt } == [1, 1])
            // Running now: a later naming of either gets nothing, and neither was claimed twice.
            #expect(try await store.claim(jobIDs: [first], worker: "other", lease: .seconds(60)).map { $0?.jobID } == [nil])
            let attempts: Int? = try await scalar(client, "SELECT sum(attempt)::int FROM jobs")
            #expect(attempts == 2)
        }
    }

    @Test("the fallback claim takes each available job once, highest priority first, no more than asked")
    func fallbackClaimsWithSkipLocked() async throws {
        try await withDatabase { client in
            let store = JobStore(client: client, logger: TestInfrastructure.logger)
            var ids: [Int] = []
            for _ in 0..<20 { ids.append(try await insertJob(client).1) }
            _ = try await client.query("UPDATE jobs SET priority = 9 WHERE id = \(ids[19])", logger: TestInfrastructure.logger)
            let first = try await store.claimAvailable(queue: .email, limit: 1, worker: "a", lease: .seconds(60))
            #expect(first.map(\.jobID) == [ids[19]])
            let claimed = try await withThrowingTaskGroup(of: [Int].self) { group in
                for worker in 0..<4 {
                    group.addTask { try await store.claimAvailable(queue: .email, limit: 7, worker: "w\(worker)", lease: .seconds(60)).map(\.jobID) }
                }
                var all: [Int] = []
                for try await batch in group {
                    #expect(batch.count <= 7)
                    all += batch
                }
                return all
            }
            #expect(claimed.count == 19)
            #expect(Set(claimed).count == 19)
            let via: String? = try await scalar(client, "SELECT DISTINCT attempted_via FROM jobs")
            #expect(via == "fallback")
        }
    }

    /// The plan of `sql` with `bindings` (not executed), as one line of text.
    func plan(_ client: Database, _ sql: String, _ bindings: PostgresBindings) async throws -> String {
        var lines: [String] = []
        for try await line in try await client.query(PostgresQuery(unsafeSQL: "EXPLAIN " + sql, binds: bindings), logger: TestInfrastructure.logger)
            .decode(String.self)
        { lines.append(line) }
        return lines.joined(separator: "\n")
    }

    @Test("claims and completions do not read the jobs they name through the partial indexes of waiting jobs, whatever the statistics")
    func jobsByIDUseThePrimaryKey() async throws {
        try await withDatabase { client in
            let logger = TestInfrastructure.logger
            // Statistics gathered while every job was settled, as when the server is quiet; then a backlog: 260 jobs
            // running, 40 available. Autovacuum would gather them again: off for this table.
            _ = try await client.query("ALTER TABLE jobs SET (autovacuum_enabled = false)", logger: logger)
            for _ in 0..<300 { _ = try await insertJob(client) }
            _ = try await client.query("UPDATE jobs SET state = 'completed', finalized_at = now()", logger: logger)
            _ = try await client.query("ANALYZE jobs", logger: logger)
            var ids: [Int] = []
            for _ in 0..<300 { ids.append(try await insertJob(client).1) }
            let running = Array(ids.prefix(260))
            let available = Array(ids.suffix(40))
            _ = try await client.query("UPDATE jobs SET state = 'running', attempted_by = 'w' WHERE id = ANY(\(running))", logger: logger)

            // The plain condition on the state: the planner reads the whole partial index (the premise of this test).
            var named = PostgresBindings()
            named.append(Array(running.prefix(20)))
            let plain = try await plan(client, "SELECT id FROM jobs WHERE id = ANY ($1::bigint[]) AND state = 'running'", named)
            #expect(plain.contains("jobs_state_run_at"), "\(plain)")
            // The form the single-job statements use (fail, snooze, withdraw, heartbeat) is not: on this small table
            // the planner reads it all, on a large one by primary key.
            let idiom = try await plan(client, "SELECT id FROM jobs WHERE id = ANY ($1::bigint[]) AND (state = 'running') IS TRUE", named)
            #expect(!idiom.contains("jobs_state_run_at"), "\(idiom)")

            // A completion of 20 running jobs.
            var complete = PostgresBindings()
            complete.append(Array(running.prefix(20)))
            complete.append("w")
            ProviderDelivery.bind([], into: &complete)
            let completion = try await plan(client, JobStore.CompleteStatement.sql, complete)
            #expect(!completion.contains("jobs_state_run_at") && !completion.contains("jobs_available"), "\(completion)")

            // A claim of 20 available jobs named by broker messages.
            var claim = PostgresBindings()
            claim.append("w")
            claim.append(ClaimPath.broker.rawValue)
            claim.append(60.0)
            claim.append(Array(available.prefix(20)))
            let claimPlan = try await plan(client, JobStore.ClaimNamed.sql, claim)
            #expect(!claimPlan.contains("jobs_state_run_at") && !claimPlan.contains("jobs_available"), "\(claimPlan)")

            // And they still do what they did: the claim takes only the available ones it names, the completion only
            // this worker's running ones.
            let store = JobStore(client: client, logger: logger)
            let claimed = try await store.claim(jobIDs: [available[0], running[0]], worker: "w2", lease: .seconds(60))
            #expect(claimed.map { $0?.jobID } == [available[0], nil])
            try await store.complete(jobIDs: [running[1], available[0]], worker: "w")
            #expect(try await jobState(client, running[1]) == "completed")
            #expect(try await jobState(client, available[0]) == "running", "another worker's job")
            try await store.complete(jobIDs: [available[0]], worker: "w2")
            #expect(try await jobState(client, available[0]) == "completed")
        }
    }

    /// A statement prepared before its table exists, as during a migration.
    enum LateTableStatement: PreparedSQL {
        static let sql = "SELECT count(*)::bigint FROM prepared_late WHERE id > $1::bigint"
    }

    @Test("a prepared statement that failed to prepare closes its connection, so it works once its cause is gone")
    func failedPreparationClosesConnection() async throws {
        try await withDatabase { client in
            let logger = TestInfrastructure.logger
            var bindings = PostgresBindings()
            bindings.append(0)
            let bound = bindings
            try await client.withConnection { connection in
                let error = await #expect(throws: PSQLError.self) { try await connection.execute(LateTableStatement.self, bound, logger: logger) }
                #expect(error?.serverInfo?[.sqlState] == "42P01")
                // postgres-nio would answer every later call on this connection with the same error: it is closed.
                _ = try await eventually("the connection closed") { connection.isClosed ? true : nil }
            }
            _ = try await client.query("CREATE TABLE prepared_late (id bigint)", logger: logger)
            _ = try await client.query("INSERT INTO prepared_late VALUES (1), (2)", logger: logger)
            var count: Int?
            for try await value in try await client.execute(LateTableStatement.self, bound, logger: logger).decode(Int.self) { count = value }
            #expect(count == 2)
        }
    }
}
