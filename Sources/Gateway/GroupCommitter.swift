import Deadlines
import Foundation
import Logging
import NotifyConfig
import NotifyHTTP
import PostgresAccess
import PostgresNIO
import Telemetry

/// One single create on its way to the database.
struct PendingCreate: Sendable {
    var new: NewNotification
    var templateVersion: Int
    /// Seconds: the age of the last-known user or template data this create was checked against (nil: fresh data).
    var staleDataAge: Int?
    var client: String
    var correlationID: String
    /// The address to check against the suppression list in the write's transaction (nil: none to check there).
    var suppressionAddress: String? = nil
}

/// Group commit of single creates: those that arrive while the database is busy share one transaction (the
/// set-based insert of a bulk), so one commit and its round trips serve many requests. Every request is answered
/// only after its own transaction committed: nothing is acknowledged that is not durable.
final class GroupCommitter: Sendable {
    struct Limits: Sendable {
        /// At most this many creates in one transaction.
        var maxBatch: Int
        /// At most this many of these transactions at once.
        var maxInFlight: Int
    }

    let executor: BatchExecutor<PendingCreate, Result<Written, any Error>>

    init(limits: Limits, repository: NotificationRepository, logger: Logger) {
        var writer = repository
        writer.committer = nil
        executor = BatchExecutor(maxBatch: limits.maxBatch, maxInFlight: limits.maxInFlight, deadline: repository.client.operationTimeout) {
            [writer] items in
            Telemetry.commitBatch(size: items.count)
            do {
                return try await writer.createMany(items).map { .success($0) }
            } catch  where error.sqlState != nil && items.count > 1 {
                // The server refused the statement or its commit: one request must not sink the others, so each is
                // written alone and a request that fails alone gets its own error.
                logger.warning("group commit refused; writing its requests one by one", metadata: ["count": .stringConvertible(items.count)])
                var results: [Result<Written, any Error>] = []
                for item in items {
                    do {
                        results.append(.success(try await writer.createMany([item]).first ?? .alreadyUsed))
                    } catch {
                        results.append(.failure(error))
                    }
                }
                return results
            }
        }
    }

    /// `/health`: down while a group has been writing for longer than the deadline after which it is given up (no create
    /// can be answered then), up otherwise, with the slots' use.
    static func health(_ snapshot: BatchExecutor<PendingCreate, Result<Written, any Error>>.Snapshot, deadline: Duration) -> DependencyHealth {
        let detail = "\(snapshot.running) writing, \(snapshot.waiting) waiting"
        if let oldest = snapshot.oldest, oldest > deadline { return DependencyHealth(status: .down, detail: "stuck: " + detail) }
        return DependencyHealth(status: .up, detail: detail)
    }

    /// What the write did, after the commit.
    func write(_ item: PendingCreate) async throws -> Written {
        try await executor.submit(item).get()
    }
}
