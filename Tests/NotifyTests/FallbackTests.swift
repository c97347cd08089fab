import Foundation
import NIOHTTP1
import NotifyConfig
import PostgresNIO
import Testing

/// The PostgreSQL path of a worker whose broker is out of reach, with the real gateway, services and SMTP sink.
@Suite("PostgreSQL fallback")
struct FallbackTests {
    @Test(
        "a worker that cannot reach RabbitMQ drains a backlog ten times its slots from PostgreSQL as its jobs finish, not at the pace of its safety poll"
    )
    func drainsBacklog() async throws {
        try await Stack.with(services: [.users, .templates, .gateway]) { stack in
            try await stack.createTemplate(["code": "drain", "name": "Drain", "channel": "email", "subject": "Drain", "body": "Item {{n}}"])
            let userID = try await stack.createUser()
            // Port 1 refuses connections: the consumer never connects and its circuit opens. Four slots; the safety
            // poll is ten minutes away, so only NOTIFY and finished jobs can wake the fallback during the test.
            let worker = try await stack.startReplica(
                .emailWorker,
                name: "fallback-only",
                extra: ["NOTIFY_AMQP_PORT": "1", "NOTIFY_WORKER_PREFETCH": "4", "NOTIFY_WORKER_FALLBACK_POLL_MS": "600000"]
            )
            _ = try await eventually("the worker's broker circuit open") { () -> Bool? in
                let health = try await stack.call(.GET, "\(worker)/health")
                let circuit = (health.data["checks"] as? [String: Any])?["circuit:rabbitmq"] as? [String: Any]
                return circuit?["status"] as? String != nil && circuit?["status"] as? String != "up" ? true : nil
            }
            func item(_ index: Int) -> [String: Any] {
                [
                    "notification_type": "email", "user_id": userID, "template_code": "drain", "variables": ["n": index],
                    "request_id": "drain-\(index)",
                ]
            }
            // One notification first: it arrives by NOTIFY, which shows the worker is listening.
            let single = try await stack.send(item(0))
            let singleID = try #require(single.data["notification_id"] as? String)
            _ = try await stack.waitForStatus(singleID, "sent", timeout: .seconds(60))

            // Forty in one bulk request: one commit, one NOTIFY. The first claim takes four; the other 36 must be
            // claimed as those finish.
            let reply = try await stack.call(
                .POST,
                "\(stack.url(.gateway))/api/v1/notifications/bulk/",
                json: ["notifications": (1...40).map(item)],
                headers: stack.clientAuth
            )
            #expect(reply.status == 200)
            #expect(reply.data["accepted"] as? Int == 40)
            let results = try #require(reply.data["results"] as? [[String: Any]])
            let ids = results.compactMap { ($0["data"] as? [String: Any])?["notification_id"] as? String }
            #expect(ids.count == 40)
            for id in ids { _ = try await stack.waitForStatus(id, "sent", timeout: .seconds(60)) }
            #expect(
                try await stack.scalar("SELECT count(*)::int FROM jobs WHERE attempted_via = 'fallback' AND state = 'completed'", as: Int.self) == 41
            )
            #expect(try await stack.scalar("SELECT max(attempt) FROM jobs", as: Int.self) == 1)
            // One pass over the Maildir (it holds every test's mail): each of the forty exactly once.
            let copies = stack.emailCounts(for: ids)
            #expect(ids.allSatisfy { copies["<\($0)@notify.local>"] == 1 })
        }
    }

    @Test("bad fallback settings stop a worker at start, exit code 2, with a message naming each setting")
    func badSettings() async throws {
        try await Stack.with(services: []) { stack in
            let (status, output) = try await stack.runCommand(
                ["email-worker"],
                environment: ["NOTIFY_WORKER_FALLBACK_POLL_MS": "0", "NOTIFY_WORKER_PREFETCH": "lots"],
                withErrors: true
            )
            #expect(status == 2)
            #expect(output.contains("NOTIFY_WORKER_FALLBACK_POLL_MS must be positive"), "\(output)")
            #expect(output.contains("NOTIFY_WORKER_PREFETCH must be an integer"), "\(output)")
            #expect(!output.contains("lots"), "a setting's value is not echoed")
        }
    }
}
