import Breakers
import Broker
import Foundation
import JobQueue
import Logging
import NIOConcurrencyHelpers
import NotificationModel
import PostgresAccess
import PostgresNIO
import ServiceLifecycle
import Telemetry

/// Publishes outbox rows to RabbitMQ. Woken by `LISTEN outbox` and by a safety poll; claims unpublished rows with
/// `FOR UPDATE SKIP LOCKED` (so several relays share the work), publishes them through the management API (each its
/// own HTTP request, `concurrency` at once) or over AMQP with publisher confirms (the whole batch, then its confirms),
/// and marks as published only what RabbitMQ routed (and, over AMQP, confirmed). A crash mid-batch rolls the marks back: those rows are published again,
/// and the workers' job claim makes the duplicate harmless. While the publish circuit is open nothing is claimed:
/// rows wait in the outbox (and the workers deliver from PostgreSQL) until a probe gets through.
public struct OutboxRelay: Service {
    public struct Configuration: Sendable {
        public var batchSize: Int
        public var concurrency: Int
        public var pollInterval: Duration
        /// Over the management API: at most this many jobs in one batch message (1: every job its own message) …
        public var httpBatch: Int
        /// … and at most this many bytes of their bodies.
        public var httpBatchBytes: Int
        /// How long a wake waits before claiming, for more rows to arrive (0: claims at once).
        public var linger: Duration

        public init(
            batchSize: Int = 100,
            concurrency: Int = 8,
            pollInterval: Duration = .seconds(1),
            httpBatch: Int = 100,
            httpBatchBytes: Int = 256 * 1024,
            linger: Duration = .zero
        ) {
            self.linger = linger
            self.httpBatch = max(1, httpBatch)
            self.httpBatchBytes = max(1, httpBatchBytes)
            self.batchSize = batchSize
            self.concurrency = concurrency
            self.pollInterval = pollInterval
        }
    }

    public struct Counters: Sendable {
        public var published = 0
        public var failed = 0
    }

    let postgres: Database
    let management: RabbitManagementClient
    /// When set, messages go out over AMQP with confirms instead of the management API (which still declares the
    /// topology).
    let amqp: AMQPPublisher?
    public let breaker: CircuitBreaker
    let configuration: Configuration
    let logger: Logger
    public let counters = NIOLockedValueBox(Counters())
    let topologyReady = NIOLockedValueBox(false)

    public init(
        postgres: Database,
        management: RabbitManagementClient,
        amqp: AMQPPublisher? = nil,
        breaker: CircuitBreaker,
        configuration: Configuration,
        logger: Logger
    ) {
        self.postgres = postgres
        self.management = management
        self.amqp = amqp
        self.breaker = breaker
        self.configuration = configuration
        self.logger = logger
    }

    public var isTopologyDeclared: Bool { topologyReady.withLockedValue { $0 } }

    public func run() async throws {
        await Self.whenWoken(postgres, on: OutboxStore.channel, poll: configuration.pollInterval, logger: logger) {
            if !isTopologyDeclared { await declareTopology() }
            guard isTopologyDeclared else { return }
            // Every accept wakes the relay; lingering a moment lets the rows of the next few arrive too, so one
            // claim, one batch message per queue and priority, and the workers' claims of it serve many. Wakes
            // meanwhile coalesce.
            if configuration.linger > .zero { try? await Task.sleep(for: configuration.linger) }
            await drain()
        }
        // The broker sees a clean close of the publishing connection, not a dropped socket.
        await amqp?.shutdown()
        logger.info("relay stopped")
    }

    func declareTopology() async {
        do {
            try await breaker.run { try await management.declareTopology() }
            topologyReady.withLockedValue { $0 = true }
            logger.info("topology declared")
        } catch {
            logger.warning("topology not declared yet", metadata: ["error": .string(String(describing: error))])
        }
    }

    /// Runs `work` each time `channel` is notified, and every `poll` besides, until graceful shutdown; wakes that
    /// come while it runs coalesce into one more run.
    static func whenWoken(
        _ postgres: Database,
        on channel: String,
        poll: Duration,
        logger: Logger,
        _ work: @escaping @Sendable () async -> Void
    ) async {
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await listen(postgres, on: channel, wake: wake, logger: logger) }
            group.addTask {
                while !Task.isCancelled {
                    wake.yield()
                    try? await Task.sleep(for: poll)
                }
            }
            for await _ in wakeups.cancelOnGracefulShutdown() { await work() }
            group.cancelAll()
        }
    }

    /// Holds one connection in LISTEN on `channel`, waking the caller at the start and on every notification;
    /// reconnects after a failure, until cancelled.
    static func listen(_ postgres: Database, on channel: String, wake: AsyncStream<Void>.Continuation, logger: Logger) async {
        while !Task.isCancelled {
            do {
                try await postgres.withHeldConnection { connection in
                    try await connection.listen(on: channel) { notifications in
                        wake.yield()
                        for try await _ in notifications { wake.yield() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                logger.warning("listener lost", metadata: ["channel": .string(channel), "error_type": .string(String(describing: type(of: error)))])
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Publishes batches until the outbox is empty or nothing more can be published right now.
    public func drain() async {
        while !Task.isCancelled {
            do {
                let (claimed, published) = try await publishBatch()
                if claimed < configuration.batchSize || published == 0 { return }
            } catch {
                logger.warning("outbox batch failed", metadata: ["error_type": .string(String(describing: type(of: error)))])
                return
            }
        }
    }

    /// One transaction: lock a batch, publish it, mark what was routed. Returns (claimed, published).
    public func publishBatch() async throws -> (Int, Int) {
        guard breaker.state != .open else { return (0, 0) }
        // The rows stay locked while they are published: the batch may take up to 30 s (then the connection is closed
        // and the rows are claimed again).
        return try await postgres.withTransaction(logger: logger, deadline: .seconds(30)) { connection in
            let messages = try await OutboxStore.claimUnpublished(on: connection, limit: configuration.batchSize, logger: logger)
            guard !messages.isEmpty else { return (0, 0) }
            let errors: [String?] = if let amqp { await publish(messages, over: amqp) } else { await publishOverHTTP(messages) }
            var published: [Int] = []
            var failed: [Int] = []
            var lastError = ""
            for (message, error) in zip(messages, errors) {
                if let error {
                    failed.append(message.id)
                    lastError = error
                } else {
                    published.append(message.id)
                    logger.info(
                        "published",
                        metadata: [
                            "job_id": .string(message.messageID), "correlation_id": .string(message.correlationID),
                            "notification_id": .string(message.notificationID ?? ""), "routing_key": .string(message.routingKey),
                        ]
                    )
                }
            }
            try await OutboxStore.markPublished(on: connection, ids: published, logger: logger)
            try await OutboxStore.markFailed(on: connection, ids: failed, error: lastError, logger: logger)
            Telemetry.published(count: published.count)
            counters.withLockedValue {
                $0.published += published.count
                $0.failed += failed.count
            }
            if !failed.isEmpty {
                logger.warning("publish failed", metadata: ["count": .stringConvertible(failed.count), "error": .string(lastError)])
            }
            return (messages.count, published.count)
        }
    }
}

extension OutboxRelay {
    /// Work messages of one queue and priority go out together, as batch messages of up to `httpBatch` jobs and
    /// `httpBatchBytes` bytes; any other message (a dead letter for failed.queue) goes alone. One HTTP request per
    /// message, `concurrency` at once (a sliding window: the next starts as soon as one ends). Per outbox row: nil
    /// when routed, otherwise why not.
    func publishOverHTTP(_ messages: [OutboxMessage]) async -> [String?] {
        let units = Self.batches(messages, maxJobs: configuration.httpBatch, maxBytes: configuration.httpBatchBytes)
        var errors: [Int: String?] = [:]
        await withTaskGroup(of: ([Int], String?).self) { group in
            var pending = units[...]
            func startNext() {
                guard let unit = pending.popFirst(), let first = unit.first else { return }
                group.addTask {
                    let start = ContinuousClock.now
                    let batch = unit.count > 1
                    do {
                        let routed = try await breaker.run {
                            try await management.publish(
                                routingKey: first.routingKey,
                                payload: batch ? QueueBatch.body(unit.map(\.payload)) : first.payload,
                                properties: .init(
                                    messageID: batch ? "batch-\(first.messageID)-\(unit.count)" : first.messageID,
                                    correlationID: first.correlationID,
                                    priority: first.priority
                                )
                            )
                        }
                        Telemetry.providerLatency("rabbitmq-publish", since: start, outcome: routed ? "ok" : "not_routed")
                        return (unit.map(\.id), routed ? nil : "not routed")
                    } catch {
                        Telemetry.providerLatency("rabbitmq-publish", since: start, outcome: "error")
                        return (unit.map(\.id), String(describing: error))
                    }
                }
            }
            for _ in 0..<max(1, configuration.concurrency) { startNext() }
            for await (ids, error) in group {
                for id in ids { errors[id] = error }
                startNext()
            }
        }
        return messages.map { errors[$0.id] ?? "not published" }
    }

    /// Splits rows (in the order claimed: highest priority first) into what goes out as one message: consecutive work
    /// messages of the same queue and priority, up to `maxJobs` and `maxBytes` of payload; anything else alone.
    static func batches(_ messages: [OutboxMessage], maxJobs: Int, maxBytes: Int) -> [[OutboxMessage]] {
        let workQueues = Set(NotificationChannel.allCases.map(\.routingKey))
        var units: [[OutboxMessage]] = []
        var current: [OutboxMessage] = []
        var bytes = 0
        for message in messages {
            let size = message.payload.utf8.count
            if let last = current.last,
                !workQueues.contains(message.routingKey) || last.routingKey != message.routingKey || last.priority != message.priority
                    || current.count >= maxJobs || bytes + size > maxBytes
            {
                units.append(current)
                current = []
                bytes = 0
            }
            current.append(message)
            bytes += size
            if !workQueues.contains(message.routingKey) {
                units.append(current)
                current = []
                bytes = 0
            }
        }
        if !current.isEmpty { units.append(current) }
        return units
    }

    /// The whole batch over AMQP, then its confirms. Per message: nil when confirmed, otherwise why not.
    func publish(_ messages: [OutboxMessage], over amqp: AMQPPublisher) async -> [String?] {
        let start = ContinuousClock.now
        do {
            let outcomes = try await breaker.run {
                try await amqp.publish(
                    messages.map {
                        AMQPOutgoing(
                            routingKey: $0.routingKey,
                            payload: $0.payload,
                            messageID: $0.messageID,
                            correlationID: $0.correlationID,
                            priority: $0.priority
                        )
                    }
                )
            }
            Telemetry.providerLatency("rabbitmq-publish-batch", since: start, outcome: "ok")
            return outcomes.map { outcome in
                switch outcome {
                case .confirmed: return nil
                case .unroutable: return "not routed"
                case .refused: return "refused by the broker (nack)"
                }
            }
        } catch {
            Telemetry.providerLatency("rabbitmq-publish-batch", since: start, outcome: "error")
            let reason = String(describing: error)
            return messages.map { _ in reason }
        }
    }
}
