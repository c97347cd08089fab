import Foundation
import Logging
import PostgresAccess
import PostgresNIO

/// How many jobs each queue holds in each state, how long the oldest available job has waited (the queue lag), and
/// the outbox backlog: what the admin overview shows and what the relay reports as metrics, read by one query each.
public struct JobStats: Sendable {
    public struct Count: Sendable {
        public var queue: String
        public var state: JobState
        public var count: Int
        /// For available jobs: seconds since the oldest became due.
        public var oldestAgeSeconds: Double?
    }

    /// One entry per queue and state that has jobs, ordered by queue and state.
    public var jobs: [Count]
    public var outboxUnpublished: Int
    /// Seconds since the oldest unpublished outbox row was written; nil when none waits.
    public var outboxOldestAgeSeconds: Double?

    /// Reads the figures. A state the code does not know fails loudly (the `jobs` table's CHECK should make it
    /// impossible): it is never counted as another.
    public static func read(_ postgres: Database, logger: Logger, deadline: Duration? = nil) async throws -> JobStats {
        var jobs: [Count] = []
        for try await (queue, state, count, oldest) in try await postgres.query(
            """
            SELECT queue, state, count(*)::int,
                   (EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE state = 'available')))::float8
            FROM jobs GROUP BY queue, state ORDER BY queue, state
            """,
            logger: logger,
            deadline: deadline
        ).decode((String, String, Int, Double?).self) {
            guard let known = JobState(rawValue: state) else { throw UnknownJobState(state: state) }
            jobs.append(Count(queue: queue, state: known, count: count, oldestAgeSeconds: oldest.map { max(0, $0) }))
        }
        var stats = JobStats(jobs: jobs, outboxUnpublished: 0, outboxOldestAgeSeconds: nil)
        for try await (count, oldest) in try await postgres.query(
            "SELECT count(*)::int, (EXTRACT(EPOCH FROM now() - min(created_at)))::float8 FROM outbox WHERE published_at IS NULL",
            logger: logger,
            deadline: deadline
        ).decode((Int, Double?).self) {
            stats.outboxUnpublished = count
            stats.outboxOldestAgeSeconds = oldest.map { max(0, $0) }
        }
        return stats
    }
}

/// A job row in a state this code does not know.
public struct UnknownJobState: Error, CustomStringConvertible {
    public var state: String
    public var description: String { "a job is in the unknown state \(state)" }
}
