import Broker
import Foundation
import JobQueue
import Logging
import NIOConcurrencyHelpers
import NotificationModel
import ServiceLifecycle

/// Consumes one queue and delivers each message's job. The job row decides: a message is acted on only after the
/// worker wins the atomic claim of its job; otherwise it is acked and dropped (and counted). In-flight work is
/// bounded by the consumer prefetch. On shutdown it stops taking messages, finishes what it holds, and acks only that.
public struct DeliveryWorker: Service {
    public struct Counters: Sendable {
        public var delivered = 0
        public var failed = 0
        public var dropped = 0
        public var deadLettered = 0
    }

    public struct Configuration: Sendable {
        public var workerName: String
        public var lease: Duration
        public var retryBase: Duration
        public var retryCap: Duration

        public init(workerName: String, lease: Duration = .seconds(60), retryBase: Duration = .seconds(5), retryCap: Duration = .seconds(3600)) {
            self.workerName = workerName
            self.lease = lease
            self.retryBase = retryBase
            self.retryCap = retryCap
        }
    }

    let consumer: AMQPConsumer
    let jobs: JobStore
    let platform: PlatformClient
    let deliverer: any Deliverer
    let configuration: Configuration
    let logger: Logger
    public let counters = NIOLockedValueBox(Counters())

    public init(
        consumer: AMQPConsumer, jobs: JobStore, platform: PlatformClient, deliverer: any Deliverer, configuration: Configuration, logger: Logger
    ) {
        self.consumer = consumer
        self.jobs = jobs
        self.platform = platform
        self.deliverer = deliverer
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        consumer.start()
        await withDiscardingTaskGroup { group in
            for await event in consumer.events.cancelOnGracefulShutdown() {
                switch event {
                case .connected:
                    logger.info("consuming", metadata: ["queue": .string(deliverer.channel.queueName)])
                case .disconnected(let reason):
                    logger.warning("broker unavailable", metadata: ["queue": .string(deliverer.channel.queueName), "reason": .string(reason)])
                case .delivery(let delivery):
                    group.addTask { await self.handle(delivery) }
                }
            }
        }
        await consumer.stop()
        logger.info("worker stopped", metadata: ["queue": .string(deliverer.channel.queueName)])
    }

    func handle(_ delivery: AMQPDelivery) async {
        guard let jobID = Self.jobID(of: delivery) else {
            logger.warning("unparseable message dead-lettered", metadata: ["message_id": .string(delivery.messageID ?? "")])
            counters.withLockedValue { $0.deadLettered += 1 }
            consumer.deadLetter(delivery)
            return
        }
        var logger = self.logger
        logger[metadataKey: "job_id"] = .string(String(jobID))
        if let correlationID = delivery.correlationID { logger[metadataKey: "correlation_id"] = .string(correlationID) }
        let job: ClaimedJob?
        do {
            job = try await jobs.claim(jobID: jobID, worker: configuration.workerName, lease: configuration.lease)
        } catch {
            // The database is unreachable: leave the message for another try rather than lose it.
            logger.error("claim failed", metadata: ["error_type": .string(String(describing: type(of: error)))])
            consumer.requeue(delivery)
            return
        }
        guard let job else {
            counters.withLockedValue { $0.dropped += 1 }
            logger.debug("message for a job that is not claimable dropped")
            consumer.ack(delivery)
            return
        }
        logger[metadataKey: "notification_id"] = .string(job.notificationID.uuidString.lowercased())
        logger[metadataKey: "correlation_id"] = .string(job.correlationID)
        if await process(job, logger: logger) {
            consumer.ack(delivery)
        }
    }

    /// Delivers a claimed job and records the outcome. Returns false when the outcome could not be recorded: the job
    /// then stays `running` until its lease expires and is rescued, and the message is not acked.
    func process(_ job: ClaimedJob, logger: Logger) async -> Bool {
        do {
            let recipient = try await platform.recipient(job.userID, correlationID: job.correlationID)
            let template = try await platform.template(job.templateCode, language: job.language, correlationID: job.correlationID)
            try await deliverer.deliver(job, to: recipient, template: template, logger: logger)
        } catch {
            let failure = error as? DeliveryFailure ?? DeliveryFailure(message: String(describing: type(of: error)), permanent: false)
            let delay = failure.retryAfter ?? Backoff.delay(attempt: job.attempt, base: configuration.retryBase, cap: configuration.retryCap)
            do {
                let state = try await jobs.fail(jobID: job.jobID, error: failure.message, permanent: failure.permanent, retryAfter: delay)
                counters.withLockedValue { $0.failed += 1 }
                logger.warning(
                    "delivery failed",
                    metadata: ["error": .string(failure.message), "permanent": .stringConvertible(failure.permanent), "state": .string(state?.rawValue ?? "")])
                return true
            } catch {
                logger.error("failure not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
                return false
            }
        }
        do {
            try await jobs.complete(jobID: job.jobID)
            counters.withLockedValue { $0.delivered += 1 }
            logger.info("notification sent")
            return true
        } catch {
            logger.error("completion not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
            return false
        }
    }

    static func jobID(of delivery: AMQPDelivery) -> Int? {
        guard let message = try? JSONDecoder().decode(QueueMessage.self, from: delivery.body) else { return nil }
        if let id = delivery.messageID.flatMap(Int.init), id != message.jobID { return nil }
        return message.jobID
    }
}

/// Exponential backoff with full jitter, capped: attempt 1 waits up to `base`, attempt n up to `base * 2^(n-1)`.
public enum Backoff {
    public static func delay(attempt: Int, base: Duration, cap: Duration) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let ceiling = min(Double(base.components.seconds) * pow(2, Double(exponent)), Double(cap.components.seconds))
        let jittered = Double.random(in: (ceiling / 2)...max(ceiling, ceiling / 2 + 0.001))
        return .milliseconds(Int64(jittered * 1000))
    }
}
