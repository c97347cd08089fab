import Broker
import Deadlines
import Foundation
import JobQueue
import Logging
import NotificationModel
import PostgresAccess
import PostgresNIO
import Telemetry

/// The gauges the relay reports at each scrape: jobs per queue and state with the age of the oldest available job
/// (the queue lag), the outbox backlog, and RabbitMQ's queue depths from the management API.
enum RelayMetrics {
    static let queues = NotificationChannel.allCases.map(\.rawValue)

    static func collectors(postgres: Database, management: RabbitManagementClient, logger: Logger) -> [@Sendable () async -> Void] {
        [
            {
                guard let stats = try? await JobStats.read(postgres, logger: logger, deadline: .seconds(2)) else { return }
                for queue in queues {
                    for state in JobState.allCases {
                        let count = stats.jobs.first { $0.queue == queue && $0.state == state }?.count ?? 0
                        Telemetry.gauge("notify_jobs", Double(count), [("queue", queue), ("state", state.rawValue)])
                    }
                    let lag = stats.jobs.first { $0.queue == queue && $0.state == .available }?.oldestAgeSeconds ?? 0
                    Telemetry.gauge("notify_queue_lag_seconds", lag, [("queue", queue)])
                }
                Telemetry.gauge("notify_outbox_backlog", Double(stats.outboxUnpublished))
                Telemetry.gauge("notify_outbox_oldest_seconds", stats.outboxOldestAgeSeconds ?? 0)
            },
            {
                // One request for every queue, within the same bound as the database's figures: a scrape answers in
                // about two seconds however slow the management API is (a call per queue, each with the client's
                // five seconds, once outlasted a ten-second scrape under load).
                guard let depths = try? await withDeadline(.seconds(2), { try await management.queueDepths() }) else { return }
                for queue in NotificationChannel.allCases.map(\.queueName) + ["failed.queue"] {
                    guard let depth = depths[queue] else { continue }
                    Telemetry.gauge("notify_rabbitmq_queue_messages", Double(depth.messages), [("queue", queue)])
                    Telemetry.gauge("notify_rabbitmq_queue_consumers", Double(depth.consumers), [("queue", queue)])
                }
            },
        ]
    }
}
