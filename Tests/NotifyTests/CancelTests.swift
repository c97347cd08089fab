import Broker
import Foundation
import NIOHTTP1
import PostgresNIO
import Testing

/// `POST /api/v1/notifications/{id}/cancel/`: a notification not yet sent is withdrawn and never sent.
@Suite struct CancelTests {
    static func prepare(_ stack: some ServiceClient) async throws -> String {
        try await stack.createTemplate(["code": "c", "name": "C", "channel": "email", "subject": "S {{n}}", "body": "B {{n}}"])
        return try await stack.createUser()
    }

    static func item(_ user: String, _ n: String) -> [String: Any] {
        ["notification_type": "email", "user_id": user, "template_code": "c", "variables": ["n": n], "request_id": "cancel-\(n)"]
    }

    static func cancel(_ stack: some ServiceClient, _ id: String, headers: [String: String]? = nil) async throws -> Stack.Reply {
        try await stack.call(.POST, "\(stack.url(.gateway))/api/v1/notifications/\(id)/cancel/", headers: headers ?? stack.clientAuth)
    }

    @Test("scheduled, waiting and retrying notifications are cancelled with the reason in the history; again is 200; sent or sending is 409")
    func states() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            let formatter = ISO8601DateFormatter()
            var scheduled = Self.item(user, "scheduled")
            scheduled["send_at"] = formatter.string(from: Date().addingTimeInterval(3600))
            var ids: [String: String] = [:]
            for (name, body) in [
                ("scheduled", scheduled), ("waiting", Self.item(user, "waiting")), ("retrying", Self.item(user, "retrying")),
                ("sent", Self.item(user, "sent")), ("sending", Self.item(user, "sending")), ("failed", Self.item(user, "failed")),
            ] {
                let reply = try await stack.send(body)
                #expect(reply.status == 202, "\(reply.json)")
                ids[name] = try #require(reply.data["notification_id"] as? String)
            }
            func job(_ name: String, _ state: String) async throws {
                let changed = try await stack.scalar(
                    "UPDATE jobs SET state = \(state) WHERE notification_id = \(UUID(uuidString: ids[name]!)!) RETURNING state",
                    as: String.self
                )
                #expect(changed == state)
            }
            // What workers would have done, set by hand: no worker runs here.
            try await job("retrying", "retryable")
            try await job("sent", "completed")
            try await job("sending", "running")
            try await job("failed", "discarded")
            #expect(
                try await stack.scalar("SELECT state FROM jobs WHERE notification_id = \(UUID(uuidString: ids["scheduled"]!)!)", as: String.self)
                    == "scheduled"
            )

            let waiting = try #require(UUID(uuidString: ids["waiting"]!))
            func waitingMessages() async throws -> Int? {
                try await stack.scalar(
                    "SELECT count(*)::int FROM outbox o JOIN jobs j ON o.message_id = j.id::text WHERE j.notification_id = \(waiting)",
                    as: Int.self
                )
            }
            #expect(try await waitingMessages() == 1)

            for name in ["scheduled", "waiting", "retrying"] {
                let reply = try await Self.cancel(stack, ids[name]!)
                #expect(reply.status == 200, "\(name): \(reply.json)")
                #expect(reply.data["status"] as? String == "cancelled", "\(name)")
                #expect(reply.data["job_state"] as? String == "cancelled", "\(name)")
                #expect(reply.json["message"] as? String == "Notification cancelled: it will not be sent")
                let history = reply.data["history"] as? [[String: Any]] ?? []
                #expect(history.last?["status"] as? String == "cancelled", "\(name): \(history)")
                #expect(history.last?["cause"] as? String == "cancelled by the client", "\(name): \(history)")
            }
            // Its queue message is never published: the outbox row (there since the 202; no relay runs here) is
            // deleted with the cancel.
            #expect(try await waitingMessages() == 0)

            let again = try await Self.cancel(stack, ids["waiting"]!)
            #expect(again.status == 200)
            #expect(again.json["message"] as? String == "Notification already cancelled")

            for (name, why) in [("sent", "already sent"), ("sending", "being sent right now"), ("failed", "already failed")] {
                let reply = try await Self.cancel(stack, ids[name]!)
                #expect(reply.status == 409, "\(name): \(reply.json)")
                #expect(reply.json["error"] as? String == "NOT_CANCELLABLE")
                #expect((reply.json["message"] as? String)?.contains(why) == true, "\(name): \(reply.json)")
            }
            #expect(
                try await stack.scalar("SELECT status FROM notifications WHERE id = \(UUID(uuidString: ids["sending"]!)!)", as: String.self)
                    != "cancelled"
            )

            // Only the notification's own client may cancel it; unknown ids and foreign ones look alike.
            let otherKey = try await stack.createKey(client: "another-client", scopes: ["notifications:write", "notifications:read"])
            let foreign = try await Self.cancel(stack, ids["sending"]!, headers: ["Authorization": "Bearer \(otherKey)"])
            #expect(foreign.status == 404)
            #expect(foreign.json["error"] as? String == "NOTIFICATION_NOT_FOUND")
            #expect(try await Self.cancel(stack, UUID().uuidString).status == 404)
            #expect(try await Self.cancel(stack, "not-an-id").status == 404)
            let readOnly = try await stack.createKey(scopes: ["notifications:read"])
            #expect(try await Self.cancel(stack, ids["sending"]!, headers: ["Authorization": "Bearer \(readOnly)"]).status == 403)
            #expect(try await Self.cancel(stack, ids["sending"]!, headers: [:]).status == 401)
        }
    }

    @Test("a cancelled notification whose message is already on the broker is never sent: the worker drops it")
    func onTheBroker() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay]) { stack in
            let user = try await Self.prepare(stack)
            let accepted = try await stack.send(Self.item(user, "queued"))
            let id = try #require(accepted.data["notification_id"] as? String)
            // The relay published it: the message waits on email.queue, with no worker to take it yet.
            _ = try await eventually("the relay published the message", timeout: .seconds(60)) { () -> Bool? in
                // Its outbox row, there since the 202, is deleted once RabbitMQ took the message.
                let waiting = try await stack.scalar(
                    """
                    SELECT count(*)::int FROM outbox o JOIN jobs j ON o.message_id = j.id::text
                    WHERE j.notification_id = \(UUID(uuidString: id)!)
                    """,
                    as: Int.self
                )
                let queued = try await stack.infra.management(stack.http).queue("email.queue")["messages"] as? Int ?? 0
                return waiting == 0 && queued == 1 ? true : nil
            }
            let cancelled = try await Self.cancel(stack, id)
            #expect(cancelled.status == 200, "\(cancelled.json)")

            try stack.start(.emailWorker)
            try await stack.waitHealthy(.emailWorker)
            _ = try await eventually("the worker dropped the cancelled job's message", timeout: .seconds(60)) { () -> Bool? in
                let metrics = try await OperationsTests.metrics(stack, .emailWorker)
                return (OperationsTests.sample(metrics, "notify_messages_dropped_total", ["queue": "email.queue"]) ?? 0) >= 1 ? true : nil
            }
            // The worker is live: a notification sent now arrives; the cancelled one never did.
            let later = try await stack.send(Self.item(user, "later"))
            let laterID = try #require(later.data["notification_id"] as? String)
            _ = try await stack.waitForEmail(laterID, timeout: .seconds(60))
            _ = try await stack.waitForStatus(laterID, "sent")
            #expect(stack.emailCounts(for: [id]).isEmpty)
            let shown = try await stack.notification(id)
            #expect(shown.data["status"] as? String == "cancelled")
            #expect(shown.data["job_state"] as? String == "cancelled")

            let tooLate = try await Self.cancel(stack, laterID)
            #expect(tooLate.status == 409)
            #expect((tooLate.json["message"] as? String)?.contains("already sent") == true)
        }
    }
}
