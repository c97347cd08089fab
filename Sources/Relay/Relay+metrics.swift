import Broker
import Foundation
import JobQueue
import Logging
import PostgresAccess
import PostgresNIO
import Telemetry

/// The gauges the relay reports at each scrape: jobs per queue and state with the age of the oldest available job
/// (the queue lag), the outbox backlog, and RabbitMQ's queue depths from the management API.
enum RelayMetrics {
    static let queues = ["email", "push"]
    static let states = ["scheduled", "available", "running", "retryable", "completed", "discarded", "cancelled"]

    static func collectors(postgres: Database, management: RabbitManagementClient, logger: Logger) -> [@Sendable () async -> Void] {
        [
            {
                do {
                    var counts: [String: Int] = [:]
                    var lag: [String: Double] = [:]
                    for try await (queue, state, count, oldest) in try await postgres.query(
                        """
                        SELECT queue, state, count(*)::int,
                               COALESCE(EXTRACT(EPOCH FROM now() - min(run_at) FILTER (WHERE state = 'available')), 0)::float8
                        FROM jobs GROUP BY queue, state
                        """,
                        logger: logger,
                        deadline: .seconds(2)
                    ).decode((String, String, Int, Double).self) {
                        counts["\(queue)/\(state)"] = count
                        if state == "available" { lag[queue] = max(0, oldest) }
                    }
                    for queue in queues {
                        for state in states {
                            Telemetry.gauge("notify_jobs", Double(counts["\(queue)/\(state)"] ?? 0), [("queue", queue), ("state", state)])
                        }
                        Telemetry.gauge("notify_queue_lag_seconds", lag[queue] ?? 0, [("queue", queue)])
                    }
                } catch {}
            },
            {
                do {
                    for try await (count, oldest) in try await postgres.query(
                        """
                        SELECT count(*)::int, COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8
                        FROM outbox WHERE published_at IS NULL
                        """,
                        logger: logger,
                        deadline: .seconds(2)
                    ).decode((Int, Double).self) {
                        Telemetry.gauge("notify_outbox_backlog", Double(count))
                        Telemetry.gauge("notify_outbox_oldest_seconds", oldest)
                    }
                } catch {}
            },
            {
                for queue in ["email.queue", "push.queue", "failed.queue"] {
                    guard let info = try? await management.queue(queue) else { continue }
                    Telemetry.gauge("notify_rabbitmq_queue_messages", Double(info["messages"] as? Int ?? 0), [("queue", queue)])
                    Telemetry.gauge("notify_rabbitmq_queue_consumers", Double(info["consumers"] as? Int ?? 0), [("queue", queue)])
                }
            },
        ]
    }
}
