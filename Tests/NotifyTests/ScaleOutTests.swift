import AsyncHTTPClient
import Foundation
import NIOHTTP1
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

/// Several copies of the stateless processes against one infrastructure.
@Suite("Scale-out", .serialized)
struct ScaleOutTests {
    @Test(
        "two gateways, three email workers and two relays (one publishing over HTTP, one over AMQP): 5,000 notifications, each email exactly once, every copy took part"
    )
    func twoGatewaysThreeWorkersTwoRelays() async throws {
        // A debug build of nine processes on the CI machine's two cores: when the load starts, a user lookup (5,000
        // users, none cached yet) can take longer than the gateway's 2 s, and the gateway then rightly answers 503.
        // This test is about copies sharing the work, so the gateways wait longer for their lookups.
        try await Stack.with(services: [.users, .templates, .gateway, .relay, .emailWorker], extra: ["NOTIFY_DIRECTORY_TIMEOUT_MS": "10000"]) {
            stack in
            let gateway2 = try await stack.startReplica(.gateway, name: "gateway-2")
            let relay2 = try await stack.startReplica(.relay, name: "relay-2", extra: ["NOTIFY_RELAY_PUBLISHER": "amqp"])
            let worker2 = try await stack.startReplica(.emailWorker, name: "email-worker-2")
            let worker3 = try await stack.startReplica(.emailWorker, name: "email-worker-3")

            let result = try await stack.runCommand(
                Self.bench(gateways: [stack.url(.gateway), gateway2], templates: stack.url(.templates)),
                executable: NotifyProcess.benchBinary
            )
            #expect(result.status == 0, "\(result.output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], "\(result.output)")
            #expect(report["accepted"] as? Int == 5000)
            #expect(report["delivered"] as? Int == 5000)
            #expect(report["failed"] as? Int == 0)
            #expect((report["errors"] as? [String: Any])?.isEmpty == true, "errors: \(report["errors"] ?? "none")")
            print("scale-out (debug build, shared CI machine): two gateways, three workers, two relays \(Self.rates(report))")

            // None lost, none twice: every accepted notification is one email in the sink.
            let statuses = try await Self.benchNotifications(stack)
            #expect(statuses.values.allSatisfy { $0 == "sent" })
            let ids = Array(statuses.keys)
            #expect(ids.count == 5000)
            let counts = try await eventually("5,000 emails in the sink", timeout: .seconds(60)) { () -> [String: Int]? in
                let counts = stack.emailCounts(for: ids)
                return counts.count == 5000 ? counts : nil
            }
            #expect(counts.values.allSatisfy { $0 == 1 }, "duplicates: \(counts.filter { $0.value > 1 }.count)")
            #expect(try await stack.scalar("SELECT count(*)::int FROM jobs WHERE attempt > 1", as: Int.self) == 0)

            // Every copy did part of the work.
            let workers = try await stack.infra.withDatabase(.notifications) { client in
                var workers: [String: Int] = [:]
                for try await (worker, count) in try await client.query(
                    "SELECT attempted_by, count(*)::int FROM jobs GROUP BY attempted_by",
                    logger: TestInfrastructure.logger
                ).decode((String, Int).self) { workers[worker] = count }
                return workers
            }
            #expect(workers.count == 3, "\(workers)")
            #expect(workers.keys.contains("email-worker-2") && workers.keys.contains("email-worker-3"), "\(workers)")
            for url in [stack.url(.gateway), gateway2] {
                let metrics = try await OperationsTests.metrics(stack, url: url)
                #expect((OperationsTests.sample(metrics, "notify_notifications_accepted_total", ["channel": "email"]) ?? 0) > 0, "\(url)")
            }
            for url in [stack.url(.relay), relay2] {
                let metrics = try await OperationsTests.metrics(stack, url: url)
                #expect((OperationsTests.sample(metrics, "notify_outbox_published_total") ?? 0) > 0, "\(url)")
            }
            for url in [worker2, worker3] {
                let metrics = try await OperationsTests.metrics(stack, url: url)
                #expect((OperationsTests.sample(metrics, "notify_notifications_sent_total", ["channel": "email"]) ?? 0) > 0, "\(url)")
            }
        }
    }

    static func bench(gateways: [String], templates: String) -> [String] {
        [
            "--json", "--mode", "closed", "--concurrency", "32", "--count", "5000", "--users", "50", "--keys", "4", "--duration", "300",
            "--delivery-timeout", "300", "--gateway", gateways.joined(separator: ","), "--templates", templates,
        ]
    }

    static func rates(_ report: [String: Any]) -> String {
        let accepted = (report["accepted_per_second"] as? Double) ?? 0
        let delivered = (report["delivered_per_second"] as? Double) ?? 0
        return "\(Int(accepted)) accepted/s, \(Int(delivered)) delivered/s"
    }

    /// Every notification the bench runs created: id → status.
    static func benchNotifications(_ stack: Stack) async throws -> [String: String] {
        try await stack.infra.withDatabase(.notifications) { client in
            var statuses: [String: String] = [:]
            for try await (id, status) in try await client.query(
                "SELECT id, status FROM notifications WHERE client LIKE 'bench-%' AND client NOT LIKE '%-probe'",
                logger: TestInfrastructure.logger
            ).decode((UUID, String).self) { statuses[id.uuidString.lowercased()] = status }
            return statuses
        }
    }
}
