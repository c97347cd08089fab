import Deadlines
import Foundation
import Logging
import NIOConcurrencyHelpers
import PostgresAccess
import PostgresNIO
import ServiceLifecycle

/// Runs the scheduler, rescuer and cleaner in exactly one copy among all processes that host it: the copy that holds
/// a PostgreSQL advisory lock on a connection it keeps open. If that process dies, its connection closes, the lock is
/// released and another copy takes over within one election interval.
public struct MaintenanceService: Service {
    public struct Configuration: Sendable {
        public var interval: Duration = .seconds(1)
        public var cleanEvery: Duration = .seconds(300)
        public var electionInterval: Duration = .seconds(2)
        /// A newly elected leader rescues no expired lease for this long. A new election follows a lost database
        /// connection, mostly a database outage, during which no worker could renew a lease: their jobs look abandoned
        /// although the workers are alive, some with the notification already sent and its completion on its way.
        /// They get this long to renew their leases and record what they did (workers renew every third of a lease).
        public var rescueGrace: Duration = .seconds(30)
        public var scheduler = Scheduler.Configuration()
        public var rescuer = Rescuer.Configuration()
        public var cleaner = Cleaner.Configuration()
        public init() {}
    }

    static let lockKey: Int64 = 0x6D61_696E_7465_6E  // "mainten"

    let client: Database
    let configuration: Configuration
    let logger: Logger
    public let isLeader = NIOLockedValueBox(false)

    public init(client: Database, configuration: Configuration = .init(), logger: Logger) {
        self.client = client
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        let scheduler = Scheduler(client: client, configuration: configuration.scheduler, logger: logger)
        let rescuer = Rescuer(client: client, configuration: configuration.rescuer, logger: logger)
        let cleaner = Cleaner(client: client, configuration: configuration.cleaner, logger: logger)
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    try await client.withHeldConnection { connection in
                        guard try await tryLock(connection) else { return }
                        isLeader.withLockedValue { $0 = true }
                        logger.info("maintenance leader elected")
                        defer { isLeader.withLockedValue { $0 = false } }
                        let lastClean = NIOLockedValueBox(ContinuousClock.now - configuration.cleanEvery)
                        let lastRedispatch = NIOLockedValueBox(ContinuousClock.now - configuration.rescuer.redispatchEvery)
                        let rescueFrom = ContinuousClock.now + configuration.rescueGrace
                        do {
                            while !Task.isCancelled {
                                // Each round has a deadline: a query caught on a dropped connection may never return.
                                try await withDeadline(.seconds(30)) {
                                    // The lock lives as long as this connection: check it is still there.
                                    _ = try await connection.query("SELECT 1", logger: logger)
                                    try await runRound(
                                        scheduler: scheduler,
                                        rescuer: ContinuousClock.now >= rescueFrom ? rescuer : nil,
                                        cleaner: cleaner,
                                        lastClean: lastClean,
                                        lastRedispatch: lastRedispatch
                                    )
                                }
                                try await Task.sleep(for: configuration.interval)
                            }
                        } catch {
                            // Never hand a connection that still holds the lock back to the pool.
                            _ = try? await withDeadline(.seconds(5)) {
                                _ = try await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                            }
                            throw error
                        }
                        _ = try? await connection.query("SELECT pg_advisory_unlock(\(Self.lockKey))", logger: logger)
                    }
                } catch {
                    if Task.isCancelled { break }
                    logger.warning("maintenance interrupted", metadata: ["error_type": "\(type(of: error))"])
                }
                try? await Task.sleep(for: configuration.electionInterval)
            }
        }
    }

    func runRound(
        scheduler: Scheduler,
        rescuer: Rescuer?,
        cleaner: Cleaner,
        lastClean: NIOLockedValueBox<ContinuousClock.Instant>,
        lastRedispatch: NIOLockedValueBox<ContinuousClock.Instant>
    ) async throws {
        let scheduled = try await scheduler.runOnce()
        let redispatch = ContinuousClock.now - lastRedispatch.withLockedValue { $0 } >= configuration.rescuer.redispatchEvery
        let rescued = try await rescuer?.runOnce(redispatchLost: redispatch) ?? Rescuer.Result()
        // A full batch means more are waiting: the next round looks again instead of after the interval.
        if redispatch, rescuer != nil, rescued.redispatched < configuration.rescuer.batchSize {
            lastRedispatch.withLockedValue { $0 = ContinuousClock.now }
        }
        if rescued != Rescuer.Result() {
            logger.warning(
                "rescued jobs",
                metadata: ["rescued": "\(rescued.rescued)", "discarded": "\(rescued.discarded)", "redispatched": "\(rescued.redispatched)"]
            )
        }
        if scheduled > 0 { logger.debug("scheduled jobs", metadata: ["count": "\(scheduled)"]) }
        if ContinuousClock.now - lastClean.withLockedValue({ $0 }) >= configuration.cleanEvery {
            let cleaned = try await cleaner.runOnce()
            lastClean.withLockedValue { $0 = ContinuousClock.now }
            if cleaned != Cleaner.Result() {
                logger.info("cleaned", metadata: ["jobs": "\(cleaned.jobs)", "outbox": "\(cleaned.outbox)"])
            }
        }
    }

    func tryLock(_ connection: PostgresConnection) async throws -> Bool {
        let rows = try await connection.query("SELECT pg_try_advisory_lock(\(Self.lockKey))", logger: logger)
        for try await locked in rows.decode(Bool.self) { return locked }
        return false
    }
}
