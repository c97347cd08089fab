import Broker
import Foundation
import NIOHTTP1
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

/// Bulk creation, priority and scheduling, against the real stack.
@Suite("Bulk, priority and scheduling", .serialized)
struct BulkAndOrderTests {
    static func prepare(_ stack: some ServiceClient) async throws -> String {
        try await stack.createTemplate(["code": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi {{name}}", "body": "Hi {{name}}"])
        return try await stack.createUser()
    }

    static func item(_ userID: String, _ requestID: String, name: String = "Ada", priority: Int = 0) -> [String: Any] {
        [
            "notification_type": "email", "user_id": userID, "template_code": "welcome", "variables": ["name": name],
            "request_id": requestID, "priority": priority,
        ]
    }

    func bulk(_ stack: some ServiceClient, _ items: Any) async throws -> Stack.Reply {
        try await stack.call(.POST, "\(stack.url(.gateway))/api/v1/notifications/bulk/", json: ["notifications": items], headers: stack.clientAuth)
    }

    @Test("bulk: per-item results in order; valid items in one transaction; bad ones refused alone; idempotent per item")
    func bulkResults() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            var bad = Self.item(user, "b-4")
            bad["user_id"] = "not-a-uuid"
            let items: [Any] = [
                Self.item(user, "b-1"), Self.item(user, "b-2"), Self.item(user, "b-3"),
                bad,
                Self.item(UUID().uuidString, "b-5"),
                Self.item(user, "b-1"),
                Self.item(user, "b-2", name: "Someone else"),
                "not an object",
            ]
            let reply = try await bulk(stack, items)
            #expect(reply.status == 200)
            let results = try #require(reply.data["results"] as? [[String: Any]])
            #expect(results.map { $0["status"] as? Int } == [202, 202, 202, 400, 404, 200, 422, 400])
            #expect(results.map { $0["index"] as? Int } == Array(0..<8))
            #expect(results[3]["error"] as? String == "VALIDATION_ERROR")
            #expect((results[3]["details"] as? [[String: Any]])?.first?["field"] as? String == "user_id")
            #expect(results[4]["error"] as? String == "USER_NOT_FOUND")
            #expect(results[6]["error"] as? String == "IDEMPOTENCY_CONFLICT")
            let first = try #require((results[0]["data"] as? [String: Any])?["notification_id"] as? String)
            #expect((results[5]["data"] as? [String: Any])?["notification_id"] as? String == first)
            #expect(reply.data["accepted"] as? Int == 3)
            #expect(reply.data["replayed"] as? Int == 1)
            #expect(reply.data["rejected"] as? Int == 4)
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == 3)
            #expect(try await stack.scalar("SELECT count(*)::int FROM jobs", as: Int.self) == 3)
            #expect(try await stack.scalar("SELECT count(*)::int FROM outbox", as: Int.self) == 3)

            // The same bulk again: nothing new, the originals.
            let again = try await bulk(stack, items)
            let second = try #require(again.data["results"] as? [[String: Any]])
            #expect(second.map { $0["status"] as? Int } == [200, 200, 200, 400, 404, 200, 422, 400])
            #expect((second[0]["data"] as? [String: Any])?["notification_id"] as? String == first)
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == 3)

            for invalid: Any in [[Any](), Array(repeating: Self.item(user, "x"), count: 1001), "nope"] {
                let refused = try await bulk(stack, invalid)
                #expect(refused.status == 400)
                #expect(refused.error == "VALIDATION_ERROR")
            }
        }
    }

    @Test("bulk: each recipient's limit is charged with its items in one step; one over its limit is refused, the others go through")
    func bulkPerUserLimits() async throws {
        // Exact counts need every check to reach Redis (see the per-user limit test).
        let limits = ["NOTIFY_RATE_LIMIT_PER_USER": "3/m", "NOTIFY_RATE_LIMIT_USER_BURST": "3", "NOTIFY_REDIS_TIMEOUT_MS": "3000"]
        try await RouterHarness.with(.gateway, extra: limits) { stack in
            let ada = try await Self.prepare(stack)
            let bob = try await stack.createUser(name: "Bob")
            let cy = try await stack.createUser(name: "Cy")
            // Ada's four items cost four, over her burst of three: all four refused, and her bucket not charged.
            let first = try await bulk(
                stack,
                [
                    Self.item(ada, "a-1"), Self.item(bob, "b-1"), Self.item(ada, "a-2"), Self.item(cy, "c-1"),
                    Self.item(ada, "a-3"), Self.item(bob, "b-2"), Self.item(ada, "a-4"),
                ]
            )
            #expect(first.status == 200)
            let results = try #require(first.data["results"] as? [[String: Any]])
            #expect(results.map { $0["status"] as? Int } == [429, 202, 429, 202, 429, 202, 429])
            #expect(results.filter { $0["status"] as? Int == 429 }.allSatisfy { $0["error"] as? String == "RATE_LIMITED" })
            // Bob has one left, so two more are refused; Ada's three fit.
            let second = try await bulk(
                stack,
                [Self.item(bob, "b-3"), Self.item(ada, "a-5"), Self.item(ada, "a-6"), Self.item(bob, "b-4"), Self.item(ada, "a-7")]
            )
            let again = try #require(second.data["results"] as? [[String: Any]])
            #expect(again.map { $0["status"] as? Int } == [429, 202, 202, 429, 202])
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == 6)
            #expect(try await stack.redisKeys(matching: "rl:user:*").count == 3)
        }
    }

    @Test("bulk: 1,000 notifications are accepted in one request and one transaction")
    func bulkThousand() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            let items = (0..<1000).map { Self.item(user, "t-\($0)") }
            let reply = try await bulk(stack, items)
            #expect(reply.status == 200)
            #expect(reply.data["accepted"] as? Int == 1000, "\(reply.status) \(reply.json)")
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == 1000)
            #expect(try await stack.scalar("SELECT count(*)::int FROM jobs WHERE state = 'available'", as: Int.self) == 1000)
            // now() is the transaction's start time: one value for all 1,000 rows means one transaction.
            #expect(try await stack.scalar("SELECT count(DISTINCT created_at)::int FROM notifications", as: Int.self) == 1)
        }
    }

    /// 30 notifications of priority 0, then 10 of priority 9, each group in one bulk request.
    func acceptLowThenHigh(_ stack: some ServiceClient, _ user: String) async throws {
        let low = (0..<30).map { Self.item(user, "low-\($0)", priority: 0) }
        let high = (0..<10).map { Self.item(user, "high-\($0)", priority: 9) }
        #expect(try await bulk(stack, low).data["accepted"] as? Int == 30)
        #expect(try await bulk(stack, high).data["accepted"] as? Int == 10)
    }

    /// The priorities a query of this test's notifications database lists, in its order.
    static func priorities(_ stack: some ServiceClient, _ query: PostgresQuery) async throws -> [Int] {
        try await stack.infra.withDatabase(.notifications) { client in
            var priorities: [Int] = []
            for try await priority in try await client.query(query, logger: TestInfrastructure.logger).decode(Int.self) {
                priorities.append(priority)
            }
            return priorities
        }
    }

    @Test("priority: with a backlog on the broker, higher-priority notifications are delivered first")
    func priorityOrder() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay], extra: ["NOTIFY_WORKER_PREFETCH": "1"]) { stack in
            let user = try await Self.prepare(stack)
            try await acceptLowThenHigh(stack, user)
            // The backlog sits in email.queue (batch messages of one priority each) before any worker runs.
            _ = try await eventually("40 jobs queued", timeout: .seconds(30)) { () -> Bool? in
                // The 40 rows were written before the gateway answered; the relay deletes each once it is published.
                let waiting = try await stack.scalar("SELECT count(*)::int FROM outbox", as: Int.self)
                let queue = try await stack.infra.management(stack.http).queue("email.queue")
                return waiting == 0 && (queue["messages"] as? Int ?? 0) >= 2 ? true : nil
            }
            try stack.start(.emailWorker)
            _ = try await eventually("all 40 sent", timeout: .seconds(60)) { () -> Bool? in
                try await stack.scalar("SELECT count(*)::int FROM notifications WHERE status = 'sent'", as: Int.self) == 40 ? true : nil
            }
            let order = try await Self.priorities(stack, "SELECT priority FROM notifications ORDER BY sent_at, id")
            #expect(Array(order.prefix(10)) == Array(repeating: 9, count: 10), "sent order: \(order)")
        }
    }

    @Test(
        "batches: the relay publishes a queue's jobs of one priority together, up to NOTIFY_RELAY_HTTP_BATCH in a message; a worker with fewer free slots takes them in turns, sends each once and acks each message when all its jobs are settled"
    )
    func batchMessages() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay], extra: ["NOTIFY_RELAY_HTTP_BATCH": "10"]) { stack in
            let user = try await Self.prepare(stack)
            try await acceptLowThenHigh(stack, user)
            let management = stack.infra.management(stack.http)
            let messages = try await eventually("40 jobs queued", timeout: .seconds(30)) { () -> [[String: Any]]? in
                let waiting = try await stack.scalar("SELECT count(*)::int FROM outbox", as: Int.self)
                guard waiting == 0 else { return nil }
                let messages = try await management.peek(queue: "email.queue", count: 100)
                let jobs = messages.compactMap { Self.batchJobs($0)?.count }.reduce(0, +)
                return jobs == 40 ? messages : nil
            }
            var seen: [Int] = []
            for message in messages {
                let jobs = try #require(Self.batchJobs(message), "a batch message: \(message)")
                #expect((2...10).contains(jobs.count))
                let priority = (message["properties"] as? [String: Any])?["priority"] as? Int
                #expect(jobs.allSatisfy { $0["priority"] as? Int == priority }, "one priority per message")
                seen += jobs.compactMap { $0["job_id"] as? Int }
            }
            #expect(seen.count == 40 && Set(seen).count == 40, "every job in exactly one message")

            // Four slots for batches of ten: each message is taken in turns.
            try stack.start(.emailWorker, extra: ["NOTIFY_WORKER_CONCURRENCY": "4"])
            _ = try await eventually("all 40 sent", timeout: .seconds(60)) { () -> Bool? in
                try await stack.scalar("SELECT count(*)::int FROM notifications WHERE status = 'sent'", as: Int.self) == 40 ? true : nil
            }
            let ids: [String] = try await stack.infra.withDatabase(.notifications) { client in
                var ids: [String] = []
                for try await id in try await client.query("SELECT id FROM notifications", logger: TestInfrastructure.logger).decode(UUID.self) {
                    ids.append(id.lowercased)
                }
                return ids
            }
            let counts = try await eventually("40 emails") { () -> [String: Int]? in
                let counts = stack.emailCounts(for: ids)
                return counts.count == 40 ? counts : nil
            }
            #expect(counts.values.allSatisfy { $0 == 1 })
            _ = try await eventually("every message acked") { () -> Bool? in
                let queue = try await management.queue("email.queue")
                return queue["messages"] as? Int == 0 ? true : nil
            }

            // A batch delivered again (a redelivery after a lost ack): its jobs are done, so nothing is sent again.
            let again = try #require(messages.first { Self.batchJobs($0) != nil })
            let payload = try #require(again["payload"] as? String)
            let jobCount = try #require(Self.batchJobs(again)?.count)
            #expect(
                try await management.publish(
                    routingKey: "email",
                    payload: payload,
                    properties: .init(messageID: "again", correlationID: "again", priority: 0)
                )
            )
            _ = try await eventually("the repeated batch's jobs skipped") { () -> Bool? in
                let metrics = try await OperationsTests.metrics(stack, .emailWorker)
                return OperationsTests.sample(metrics, "notify_messages_dropped_total", ["queue": "email.queue"]) == Double(jobCount) ? true : nil
            }
            _ = try await eventually("the repeated batch acked") { () -> Bool? in
                (try await management.queue("email.queue"))["messages"] as? Int == 0 ? true : nil
            }
            #expect(stack.emailCounts(for: ids).values.allSatisfy { $0 == 1 })
        }
    }

    @Test("batches: a single-job message, as a relay of the previous release publishes it, is still delivered")
    func singleMessagesStillConsumed() async throws {
        // No relay: the test publishes as an old one would. Workers do not claim unpublished jobs in this test.
        try await Stack.with(services: [.users, .templates, .gateway, .emailWorker], extra: ["NOTIFY_WORKER_UNPUBLISHED_AFTER_SECONDS": "0"]) {
            stack in
            let user = try await Self.prepare(stack)
            let management = stack.infra.management(stack.http)
            try await management.declareTopology()
            try await stack.waitConsuming()
            let id = try #require(try await stack.send(Self.item(user, "single")).data["notification_id"] as? String)
            let notificationID = try #require(UUID(uuidString: id))
            let (jobID, payload) = try #require(try await stack.queueMessage(of: notificationID))
            #expect(
                try await management.publish(
                    routingKey: "email",
                    payload: payload,
                    properties: .init(messageID: String(jobID), correlationID: "c", priority: 0)
                )
            )
            _ = try await stack.waitForEmail(id)
            #expect(try await stack.scalar("SELECT attempted_via FROM jobs WHERE id = \(jobID)", as: String.self) == "broker")
        }
    }

    /// The jobs of a batch message as the management API returns it (nil for a single-job message).
    static func batchJobs(_ message: [String: Any]) -> [[String: Any]]? {
        guard let payload = message["payload"] as? String,
            let body = try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]
        else { return nil }
        return body["jobs"] as? [[String: Any]]
    }

    @Test("priority: with a backlog in the outbox, the relay publishes higher-priority notifications first")
    func outboxPriorityOrder() async throws {
        try await Stack.with(services: [.users, .templates, .gateway], extra: ["NOTIFY_RELAY_BATCH": "5"]) { stack in
            let user = try await Self.prepare(stack)
            try await acceptLowThenHigh(stack, user)
            // The backlog sits in the outbox before the relay runs.
            try stack.start(.relay)
            // The 40 rows were written before the gateway answered; the relay deletes each once it is published.
            _ = try await eventually("40 published", timeout: .seconds(60)) { () -> Bool? in
                try await stack.scalar("SELECT count(*)::int FROM outbox", as: Int.self) == 0 ? true : nil
            }
            // Batches of 5, one transaction each, one after another; the relay logs each message it published, in
            // its batch's order, before that batch's next.
            let relay = try #require(stack.process(.relay))
            let published: [String] = relay.log.split(separator: "\n").compactMap { line in
                guard let entry = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                    entry["message"] as? String == "published"
                else { return nil }
                return entry["notification_id"] as? String
            }
            #expect(published.count == 40, "\(published.count) messages logged as published")
            let priorityOf = try await stack.infra.withDatabase(.notifications) { client in
                var priorities: [String: Int] = [:]
                for try await (id, priority) in try await client.query(
                    "SELECT id::text, priority FROM notifications",
                    logger: TestInfrastructure.logger
                ).decode((String, Int).self) {
                    priorities[id] = priority
                }
                return priorities
            }
            let order = published.compactMap { priorityOf[$0] }
            #expect(order.count == 40)
            #expect(Array(order.prefix(10)) == Array(repeating: 9, count: 10), "published order: \(order)")
        }
    }

    @Test("scheduling: send_at holds the job until then; the notification is sent after it, not before")
    func scheduled() async throws {
        try await Stack.with { stack in
            let user = try await Self.prepare(stack)
            // Far enough ahead that an unscheduled notification sent after it is out before it, even on a loaded machine.
            let sendAt = Date().addingTimeInterval(25)
            let formatter = ISO8601DateFormatter()
            formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            var later = Self.item(user, "later")
            later["send_at"] = formatter.string(from: sendAt)
            let held = try await stack.send(later)
            #expect(held.status == 202)
            let heldID = try #require(held.data["notification_id"] as? String)
            #expect(
                try await stack.scalar("SELECT state FROM jobs WHERE notification_id = \(UUID(uuidString: heldID)!)", as: String.self) == "scheduled"
            )

            // A notification without send_at, sent after it, is sent first; the scheduled one is still held then.
            let now = try await stack.send(Self.item(user, "now"))
            let nowID = try #require(now.data["notification_id"] as? String)
            _ = try await stack.waitForStatus(nowID, "sent")
            let heldNow = try await stack.notification(heldID).data
            try #require(Date() < sendAt, "the unscheduled notification took longer than the schedule; the test proves nothing")
            #expect(heldNow["status"] as? String == "pending")
            #expect(heldNow["job_state"] as? String == "scheduled")
            #expect(heldNow["sent_at"] == nil)

            _ = try await stack.waitForEmail(heldID, timeout: .seconds(60))
            // sent_at is set when the worker commits the completion, a moment after the sink stored the email.
            _ = try await stack.waitForStatus(heldID, "sent")
            let sentAt = try #require(
                try await stack.scalar("SELECT sent_at FROM notifications WHERE id = \(UUID(uuidString: heldID)!)", as: Date.self)
            )
            #expect(sentAt >= sendAt.addingTimeInterval(-0.001))
            let shown = try await stack.notification(heldID)
            #expect(shown.data["send_at"] is String)

            var bad = Self.item(user, "bad-time")
            bad["send_at"] = "tomorrow"
            let refused = try await stack.send(bad)
            #expect(refused.status == 400)
            #expect(refused.details.first?["field"] == "send_at")
        }
    }
}
