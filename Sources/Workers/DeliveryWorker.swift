import Breakers
import Broker
import Deadlines
import Directory
import Foundation
import JobQueue
import Logging
import NIOConcurrencyHelpers
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Rendering
import ServiceLifecycle
import Telemetry

/// Delivers one channel's jobs. Normally it consumes the channel's queue; while the broker circuit is open it claims
/// `available` jobs straight from PostgreSQL (`FOR UPDATE SKIP LOCKED`), woken by `LISTEN outbox` and a safety poll.
/// Either way the job row decides: work starts only after the worker wins the job's claim, so a message for a job
/// that is done or taken by the fallback is acked, dropped and counted. A message carries one job or a batch of them;
/// broker jobs and fallback jobs share `slots` (jobs delivered at once). On shutdown it stops taking work, finishes what
/// it holds, acks only messages whose jobs are all settled, and gives the others back.
public struct DeliveryWorker: Service {
    public struct Counters: Sendable {
        public var delivered = 0
        public var failed = 0
        public var snoozed = 0
        public var dropped = 0
        public var deadLettered = 0
        public var viaFallback = 0
        public var withdrawn = 0
    }

    public struct Configuration: Sendable {
        public var workerName: String
        public var slots: Int
        public var lease: Duration
        public var retryBase: Duration
        public var retryCap: Duration
        public var fallbackPoll: Duration
        /// Jobs whose outbox message waited unpublished this long are claimed from PostgreSQL even while the broker
        /// works (nil: never).
        public var unpublishedAfter: Duration?
        /// Template categories whose notifications go out as one message per user and window.
        public var digests = DigestPolicy()

        public init(
            workerName: String,
            slots: Int,
            lease: Duration = .seconds(60),
            retryBase: Duration = .seconds(5),
            retryCap: Duration = .seconds(3600),
            fallbackPoll: Duration = .seconds(1),
            unpublishedAfter: Duration? = .seconds(10),
            digests: DigestPolicy = DigestPolicy()
        ) {
            self.digests = digests
            self.unpublishedAfter = unpublishedAfter
            self.workerName = workerName
            self.slots = slots
            self.lease = lease
            self.retryBase = retryBase
            self.retryCap = retryCap
            self.fallbackPoll = fallbackPoll
        }
    }

    let consumer: AMQPConsumer
    let postgres: Database
    let jobs: JobStore
    let directory: PlatformDirectory
    let deliverer: any Deliverer
    let configuration: Configuration
    let logger: Logger
    /// Claims of broker deliveries and completions, each grouped into one statement under load.
    let claims: BatchExecutor<[Int], [ClaimedJob?]>
    let completions: BatchExecutor<Completion, Void>
    /// One digest at a time per user, channel and template in this worker …
    let digestGate = KeyedGate()
    /// … and the jobs of this worker's waves already sent (or given back) in another job's digest.
    let absorbed = NIOLockedValueBox<Set<Int>>([])
    public let counters = NIOLockedValueBox(Counters())
    /// The jobs being delivered (their leases are renewed) …
    let inFlight = NIOLockedValueBox<Set<Int>>([])
    /// … and how many more may be.
    let slots: JobSlots
    let stopping = NIOLockedValueBox(false)
    /// The last fallback claim filled every free slot, so more jobs may be waiting.
    let fallbackBacklog = NIOLockedValueBox(false)
    /// When the claim of jobs left unpublished last ran (it runs at most once per safety poll while consuming).
    let lastUnpublishedCheck = NIOLockedValueBox<ContinuousClock.Instant?>(nil)

    public init(
        consumer: AMQPConsumer,
        postgres: Database,
        directory: PlatformDirectory,
        deliverer: any Deliverer,
        configuration: Configuration,
        logger: Logger
    ) {
        self.consumer = consumer
        self.postgres = postgres
        let jobs = JobStore(client: postgres, logger: logger)
        self.jobs = jobs
        let worker = configuration.workerName
        let lease = configuration.lease
        slots = JobSlots(configuration.slots)
        let batch = max(8, configuration.slots)
        // One statement in flight each: under load, the waves of many deliveries (a slot frees at a time) and the
        // completions of many jobs wait for it and go together, so a statement serves many jobs.
        claims = BatchExecutor(maxBatch: batch, maxInFlight: 1, deadline: postgres.operationTimeout) { waves in
            let claimed = try await jobs.claim(jobIDs: waves.flatMap { $0 }, worker: worker, lease: lease)
            var rest = claimed[...]
            return waves.map { wave in
                defer { rest = rest.dropFirst(wave.count) }
                return Array(rest.prefix(wave.count))
            }
        }
        completions = BatchExecutor(maxBatch: batch, maxInFlight: 1, deadline: postgres.operationTimeout) { done in
            try await jobs.complete(jobIDs: done.flatMap { [$0.jobID] + $0.alsoCompleted }, worker: worker, deliveries: done.flatMap(\.deliveries))
            return done.map { _ in () }
        }
        self.directory = directory
        self.deliverer = deliverer
        self.configuration = configuration
        self.logger = logger
    }

    var queue: String { deliverer.channel.queueName }

    public func run() async throws {
        consumer.start()
        let (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let (outages, outage) = AsyncStream.makeStream(of: Bool.self, bufferingPolicy: .bufferingNewest(1))
        await withDiscardingTaskGroup { group in
            // The fallback loop ends when `wake` finishes, then waits for the jobs it started.
            group.addTask {
                await withDiscardingTaskGroup { fallbackJobs in
                    for await _ in wakeups where !self.stopping.withLockedValue({ $0 }) {
                        await self.fallbackRound(group: &fallbackJobs, wake: wake)
                    }
                }
            }
            await withDiscardingTaskGroup { helpers in
                helpers.addTask { await self.listenWhileAway(outages, wake: wake) }
                helpers.addTask { await self.heartbeats() }
                helpers.addTask {
                    while !Task.isCancelled {
                        wake.yield()
                        try? await Task.sleep(for: configuration.fallbackPoll)
                    }
                }
                // Ends on graceful shutdown; the inner group then waits for the deliveries in flight.
                await withDiscardingTaskGroup { deliveries in
                    // The fallback is woken once when the broker goes away, not by every failed reconnect after that
                    // (NOTIFY, finished jobs and the safety poll keep it going).
                    var wokeForOutage = false
                    for await event in consumer.events.cancelOnGracefulShutdown() {
                        switch event {
                        case .connected:
                            logger.info("consuming", metadata: ["queue": .string(queue)])
                            wokeForOutage = false
                            outage.yield(false)
                        case .disconnected(let reason):
                            logger.warning("broker unavailable", metadata: ["queue": .string(queue), "reason": .string(reason)])
                            if !wokeForOutage { wake.yield() }
                            wokeForOutage = true
                            outage.yield(true)
                        case .delivery(let delivery):
                            deliveries.addTask { await self.handle(delivery) }
                        }
                    }
                    stopping.withLockedValue { $0 = true }
                    logger.info("worker draining", metadata: ["in_flight": .stringConvertible(inFlight.withLockedValue { $0.count })])
                }
                helpers.cancelAll()
            }
            outage.finish()
            wake.finish()
        }
        // Acks of finished work are flushed; unacked deliveries go back to the queue when the connection closes.
        await consumer.stop()
        logger.info("worker stopped", metadata: ["queue": .string(queue)])
    }

    /// While the broker circuit is not closed, claims as many available jobs as there are free slots. While it is
    /// closed, claims (at most once per safety poll) the jobs whose outbox message waited unpublished for longer than
    /// `unpublishedAfter`: no relay could publish them. While the last claim came back full, each job that ends wakes
    /// the loop again (wakes coalesce), so a backlog drains at the speed of delivery, not of the safety poll.
    func fallbackRound(group: inout DiscardingTaskGroup, wake: AsyncStream<Void>.Continuation) async {
        let consuming = consumer.breaker.state == .closed
        if consuming {
            guard let age = configuration.unpublishedAfter else { return }
            let now = ContinuousClock.now
            let due = lastUnpublishedCheck.withLockedValue { last in
                guard fallbackBacklog.withLockedValue({ $0 }) || last.map({ now - $0 >= configuration.fallbackPoll }) ?? true else { return false }
                last = now
                return true
            }
            guard due else { return }
            await claimRound(group: &group, wake: wake) { free in
                try await jobs.claimUnpublished(
                    queue: deliverer.channel,
                    olderThan: age,
                    limit: free,
                    worker: configuration.workerName,
                    lease: configuration.lease
                )
            }
        } else {
            await claimRound(group: &group, wake: wake) { free in
                try await jobs.claimAvailable(queue: deliverer.channel, limit: free, worker: configuration.workerName, lease: configuration.lease)
            }
        }
    }

    /// Claims with `claim` up to the free slots and delivers what it got.
    func claimRound(
        group: inout DiscardingTaskGroup,
        wake: AsyncStream<Void>.Continuation,
        _ claim: (Int) async throws -> [ClaimedJob]
    ) async {
        let free = slots.tryAcquire(upTo: configuration.slots)
        guard free > 0 else { return }
        let claimed: [ClaimedJob]
        do {
            claimed = try await claim(free)
        } catch {
            slots.release(free)
            logger.warning("fallback claim failed", metadata: ["error_type": .string(String(describing: type(of: error)))])
            return
        }
        slots.release(free - claimed.count)
        fallbackBacklog.withLockedValue { $0 = claimed.count == free }
        for job in claimed {
            inFlight.withLockedValue { _ = $0.insert(job.jobID) }
            counters.withLockedValue { $0.viaFallback += 1 }
            group.addTask {
                await self.process(job, logger: self.logger(for: job))
                self.inFlight.withLockedValue { _ = $0.remove(job.jobID) }
                self.slots.release()
                if self.fallbackBacklog.withLockedValue({ $0 }) { wake.yield() }
            }
        }
    }

    /// Holds `LISTEN outbox` only while the broker is away (from a failed connection until the next one succeeds): then
    /// each commit of new work wakes the fallback at once. While the worker consumes from RabbitMQ its fallback runs on
    /// the safety poll alone (the look for unpublished rows), and the NOTIFY of every accepting transaction would only
    /// wake this process and its PostgreSQL backend for nothing (docs/benchmarks.md, eighth round).
    func listenWhileAway(_ outages: AsyncStream<Bool>, wake: AsyncStream<Void>.Continuation) async {
        var listener: Task<Void, Never>?
        for await away in outages {
            if away, listener == nil {
                listener = Task { await self.listen(wake: wake) }
            } else if !away, let running = listener {
                running.cancel()
                await running.value
                listener = nil
            }
        }
        listener?.cancel()
        await listener?.value
    }

    /// Wakes the fallback when new work is dispatched (the gateway and scheduler NOTIFY `outbox`).
    func listen(wake: AsyncStream<Void>.Continuation) async {
        while !Task.isCancelled {
            do {
                try await postgres.withHeldConnection { connection in
                    try await connection.listen(on: "outbox") { notifications in
                        for try await _ in notifications { wake.yield() }
                    }
                }
            } catch {
                if Task.isCancelled { return }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }

    /// Keeps the leases of long deliveries alive, so only a dead worker's jobs are rescued.
    func heartbeats() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: configuration.lease / 3)
            let ids = Array(inFlight.withLockedValue { $0 })
            try? await jobs.heartbeat(jobIDs: ids, worker: configuration.workerName, lease: configuration.lease)
        }
    }

    /// One broker message: a single job, or a batch of jobs of one queue. Its jobs are claimed (together) as slots
    /// free up, never more than are free; each claimed job is delivered in its own task, and the message is acked once
    /// every job in it is settled. A job that is not claimable (done, taken from PostgreSQL, withdrawn) is skipped and
    /// counted; a redelivered batch thus does only what is left.
    func handle(_ delivery: AMQPDelivery) async {
        guard let jobIDs = Self.jobIDs(of: delivery) else {
            logger.warning("unparseable message dead-lettered", metadata: ["message_id": .string(delivery.messageID ?? "")])
            counters.withLockedValue { $0.deadLettered += 1 }
            consumer.deadLetter(delivery)
            return
        }
        var logger = self.logger
        if jobIDs.count == 1 { logger[metadataKey: "job_id"] = .string(String(jobIDs[0])) } else { logger[metadataKey: "jobs"] = "\(jobIDs.count)" }
        if let correlationID = delivery.correlationID { logger[metadataKey: "correlation_id"] = .string(correlationID) }
        var remaining = jobIDs[...]
        let claimFailed = await withDiscardingTaskGroup { deliveries -> Bool in
            while !remaining.isEmpty, !stopping.withLockedValue({ $0 }) {
                let granted = await slots.acquire(upTo: remaining.count)
                let wave = Array(remaining.prefix(granted))
                remaining = remaining.dropFirst(wave.count)
                let claimed: [ClaimedJob?]
                do {
                    // The waves of many deliveries share one statement.
                    claimed = try await claims.submit(wave)
                } catch {
                    slots.release(wave.count)
                    logger.error("claim failed", metadata: ["error_type": .string(String(describing: type(of: error)))])
                    return true
                }
                let skipped = claimed.filter { $0 == nil }.count
                if skipped > 0 {
                    slots.release(skipped)
                    counters.withLockedValue { $0.dropped += skipped }
                    for _ in 0..<skipped { Telemetry.dropped(queue: queue) }
                    logger.debug("jobs that are not claimable skipped", metadata: ["count": "\(skipped)"])
                }
                for case let job? in claimed {
                    inFlight.withLockedValue { _ = $0.insert(job.jobID) }
                    deliveries.addTask {
                        await self.process(job, logger: self.logger(for: job))
                        self.inFlight.withLockedValue { _ = $0.remove(job.jobID) }
                        self.slots.release()
                    }
                }
            }
            return false
        }
        if claimFailed {
            // The database is unreachable: the message goes back (once the jobs taken from it are settled), and its
            // jobs that were done are skipped when it comes again.
            try? await Task.sleep(for: .milliseconds(500))
            consumer.requeue(delivery)
            return
        }
        if !remaining.isEmpty {
            // Shutting down with jobs of this batch not taken: it goes back, for another worker to do the rest.
            consumer.requeue(delivery)
            return
        }
        // Acked even when an outcome could not be recorded: the job then stays `running` in PostgreSQL and the
        // rescuer returns it after its lease, with a new message. Left unacked, the message would hold a prefetch
        // slot until the connection closes: one PostgreSQL outage under load could leave the worker none.
        consumer.ack(delivery)
    }

    func logger(for job: ClaimedJob) -> Logger {
        var logger = self.logger
        logger[metadataKey: "job_id"] = .string(String(job.jobID))
        logger[metadataKey: "notification_id"] = .string(job.notificationID.lowercased)
        logger[metadataKey: "correlation_id"] = .string(job.correlationID)
        return logger
    }

    /// Delivers a claimed job and records the outcome. When the outcome cannot be recorded (it is logged), the job stays
    /// `running` until its lease expires and is rescued.
    func process(_ job: ClaimedJob, logger: Logger) async {
        let deliveries: [ProviderDelivery]
        var company: [ClaimedJob] = []
        var gate: String?
        do {
            // Never sent with defaults in place of what the row should hold: failed, with the reason, for an operator.
            if let corruption = job.corruption { throw DeliveryFailure(message: corruption, permanent: true) }
            let recipient: Recipient
            if let direct = job.recipient {
                // Sent to an address: nothing to look up, no preferences (the client owns consent).
                recipient = .direct(direct)
            } else if let userID = job.userID, let found = try await directory.recipient(userID, correlationID: job.correlationID) {
                recipient = found
            } else {
                throw Withdrawn("not sent: the user no longer exists")
            }
            guard
                let template = try await directory.template(
                    job.templateCode,
                    channel: job.channel.rawValue,
                    language: job.language,
                    version: job.templateVersion,
                    correlationID: job.correlationID
                )
            else { throw DeliveryFailure(message: "template not found", permanent: true) }
            if recipient.disabled == true { throw Withdrawn("not sent: the user was disabled") }
            // The gateway may have accepted it against data that has changed since (or was stale): check again.
            if template.archived == true { throw Withdrawn("not sent: the template was archived") }
            // The platform's own mail to an address the user asked for (a verification) is not subject to their preferences.
            if job.deliverTo == nil, !recipient.isDirect, !recipient.preferences.allows(channel: job.channel.rawValue, category: template.category) {
                throw Withdrawn(
                    "not sent: the user turned \(job.channel.rawValue) notifications\(template.category.map { " of category \($0)" } ?? "") off"
                )
            }
            let isDigest = configuration.digests.isDigest(category: template.category) && job.userID != nil && job.recipient == nil
            // A digest renders with `items` and `count` besides the first notification's own variables.
            let missing = TemplateVariables.missing(
                in: template.parts,
                variables: isDigest ? DigestPolicy.variables([job.variables]) : job.variables
            )
            guard missing.isEmpty else {
                throw DeliveryFailure(message: "missing template variables: \(missing.joined(separator: ", "))", permanent: true)
            }
            var deliverable = job
            if isDigest, let userID = job.userID {
                // One message for every notification of this user, template and window. The jobs of one digest often
                // arrive in one wave: their turns take the gate one after the other; the first sends for them all.
                let key = "\(userID.lowercased):\(job.channel.rawValue):\(job.templateCode)"
                await digestGate.lock(key)
                gate = key
                if absorbed.withLockedValue({ $0.remove(job.jobID) != nil }) {
                    await digestGate.unlock(key)
                    logger.debug("sent in an earlier notification's digest")
                    return
                }
                let (claimed, held) = try await jobs.claimDigest(of: job, worker: configuration.workerName, lease: configuration.lease)
                company = claimed + held
                absorbed.withLockedValue { set in for other in held { set.insert(other.jobID) } }
                inFlight.withLockedValue { running in for other in claimed { running.insert(other.jobID) } }
                deliverable.variables = DigestPolicy.variables([job.variables] + company.map(\.variables))
                if !company.isEmpty { logger.info("digest", metadata: ["items": "\(company.count + 1)"]) }
            }
            deliveries = try await deliverer.deliver(deliverable, to: recipient, template: template, logger: logger)
        } catch {
            await record(error, for: job, logger: logger)
            await release(company, logger: logger)
            if let gate { await digestGate.unlock(gate) }
            return
        }
        let completed = await recordCompletion(
            Completion(jobID: job.jobID, deliveries: deliveries, alsoCompleted: company.map(\.jobID)),
            logger: logger
        )
        inFlight.withLockedValue { running in for other in company { running.remove(other.jobID) } }
        // Held until the digest's jobs are completed: a later turn must not find them running and send them again.
        if let gate { await digestGate.unlock(gate) }
        guard completed else { return }
        counters.withLockedValue { $0.delivered += 1 + company.count }
        for _ in 0...company.count { Telemetry.sent(channel: job.channel.rawValue) }
        logger.info("notification sent")
    }

    /// The rest of a digest whose message could not be sent: given back without spending their attempt; they go out
    /// together when due again. (Those of the same wave were given back too: their own turn does nothing.)
    func release(_ company: [ClaimedJob], logger: Logger) async {
        for other in company {
            do {
                try await jobs.snooze(jobID: other.jobID, delay: .seconds(1), cause: "its digest was not sent; retried")
            } catch {
                logger.error("digest job not released", metadata: ["job_id": .string(String(other.jobID))])
            }
            inFlight.withLockedValue { _ = $0.remove(other.jobID) }
        }
    }

    /// The notification went out: its completion must land, or the rescuer would send it again once the lease ran out.
    /// While the database cannot be reached the worker keeps the job (its heartbeats renew the lease as soon as they
    /// can) and tries again, up to twice the lease (at least two minutes). A refusal by the server is not retried.
    func recordCompletion(_ completion: Completion, logger: Logger) async -> Bool {
        let giveUp = ContinuousClock.now + max(configuration.lease * 2, .seconds(120))
        var pause = Duration.milliseconds(200)
        while true {
            do {
                try await completions.submit(completion)
                return true
            } catch  where error.sqlState == nil && ContinuousClock.now < giveUp {
                logger.warning("completion not recorded yet; trying again", metadata: ["error_type": .string(String(describing: type(of: error)))])
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .seconds(2))
            } catch {
                logger.error("completion not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
                return false
            }
        }
    }

    func record(_ error: any Error, for job: ClaimedJob, logger: Logger) async {
        do {
            if let withdrawn = error as? Withdrawn {
                try await jobs.withdraw(jobID: job.jobID, cause: withdrawn.reason)
                counters.withLockedValue { $0.withdrawn += 1 }
                logger.info("notification withdrawn", metadata: ["reason": .string(withdrawn.reason)])
                return
            }
            if let open = error as? BreakerOpenError {
                // A dependency is known to be down: give the job back without spending an attempt.
                try await jobs.snooze(jobID: job.jobID, delay: max(open.retryAfter, .seconds(1)), cause: "circuit \(open.name) open")
                counters.withLockedValue { $0.snoozed += 1 }
                logger.info("delivery postponed", metadata: ["circuit": .string(open.name)])
                return
            }
            if let unavailable = error as? DirectoryUnavailable {
                // The platform's own user or template service did not answer: the notification is not at fault, so no
                // attempt is spent; it waits (its breaker soon opens, and then the case above applies).
                try await jobs.snooze(jobID: job.jobID, delay: .seconds(1), cause: "\(unavailable.service) service unavailable")
                counters.withLockedValue { $0.snoozed += 1 }
                logger.info("delivery postponed", metadata: ["service": .string(unavailable.service)])
                return
            }
            let failure = error as? DeliveryFailure ?? DeliveryFailure(message: String(describing: error), permanent: false)
            let delay = failure.retryAfter ?? Backoff.delay(attempt: job.attempt, base: configuration.retryBase, cap: configuration.retryCap)
            let state = try await jobs.fail(jobID: job.jobID, error: failure.message, permanent: failure.permanent, retryAfter: delay)
            counters.withLockedValue { $0.failed += 1 }
            if state == .discarded { Telemetry.failed(channel: job.channel.rawValue) }
            if state == .retryable { Telemetry.retried(channel: job.channel.rawValue) }
            logger.warning(
                "delivery failed",
                metadata: [
                    "error": .string(failure.message), "permanent": .stringConvertible(failure.permanent), "state": .string(state?.rawValue ?? ""),
                ]
            )
        } catch {
            logger.error("failure not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
        }
    }

    /// The jobs a message names: a single message's (whose message_id, when numeric, must be its job's) or a batch's.
    /// A delivered job and what its completion records with it.
    struct Completion: Sendable {
        var jobID: Int
        var deliveries: [ProviderDelivery]
        /// The other jobs of a digest, sent in the same message: completed in the same transaction.
        var alsoCompleted: [Int] = []
    }

    static func jobIDs(of delivery: AMQPDelivery) -> [Int]? {
        guard let ids = QueueBatch.jobIDs(in: delivery.body) else { return nil }
        if ids.count == 1, let id = delivery.messageID.flatMap(Int.init), id != ids[0] { return nil }
        return ids
    }
}

/// Serializes work per key among the tasks of one process; other keys pass freely.
actor KeyedGate {
    var held: Set<String> = []
    var waiting: [String: [CheckedContinuation<Void, Never>]] = [:]

    func lock(_ key: String) async {
        guard held.contains(key) else {
            held.insert(key)
            return
        }
        await withCheckedContinuation { waiting[key, default: []].append($0) }
    }

    /// Hands the key to the next waiter, if any (it stays held), or frees it.
    func unlock(_ key: String) {
        if var queue = waiting[key], !queue.isEmpty {
            let next = queue.removeFirst()
            waiting[key] = queue.isEmpty ? nil : queue
            next.resume()
        } else {
            held.remove(key)
        }
    }
}
