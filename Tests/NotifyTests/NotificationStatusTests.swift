import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

/// Status queries, history, delivery reports and concurrent idempotency, against the real stack.
@Suite("Notification status", .serialized)
struct NotificationStatusTests {
    func prepare(_ stack: some ServiceClient) async throws -> (String, String) {
        try await stack.createTemplate(["code": "note", "name": "Note", "channel": "email", "subject": "Note {{n}}", "body": "Body {{n}}"])
        return (try await stack.createUser(), try await stack.createUser())
    }

    func body(_ user: String, _ requestID: String) -> [String: Any] {
        ["notification_type": "email", "user_id": user, "template_code": "note", "variables": ["n": 1], "request_id": requestID]
    }

    @Test("a notification's history lists every status with time and cause; the list filters and paginates")
    func historyAndList() async throws {
        try await Stack.with { stack in
            let (ada, bob) = try await prepare(stack)
            var ids: [String] = []
            for (user, request) in [(ada, "a-1"), (ada, "a-2"), (bob, "b-1")] {
                ids.append(try #require(try await stack.send(body(user, request)).data["notification_id"] as? String))
            }
            for id in ids { _ = try await stack.waitForStatus(id, "sent") }
            let shown = try await stack.notification(ids[0])
            let history = try #require(shown.data["history"] as? [[String: Any]])
            #expect(history.compactMap { $0["status"] as? String } == ["pending", "processing", "sent"])
            #expect(history.first?["cause"] as? String == "accepted")
            #expect(history.allSatisfy { $0["at"] is String })
            // The first entries come from the rows themselves (sql/notifications/0025): nothing stored for them.
            let notification = try #require(UUID(uuidString: ids[0]))
            let storedFirst = try await stack.scalar(
                "SELECT count(*)::int FROM notification_events WHERE notification_id = \(notification) AND from_status IS NULL",
                as: Int.self
            )
            #expect(storedFirst == 0)
            let story = try await stack.scalar(
                """
                SELECT string_agg(coalesce(h.from_state, '-') || '>' || h.to_state || coalesce(':' || NULLIF(h.cause, ''), ''), ',' ORDER BY h.id)
                FROM job_history h JOIN jobs j ON j.id = h.job_id WHERE j.notification_id = \(notification)
                """,
                as: String.self
            )
            #expect(story?.hasPrefix("->available:accepted,available>running") == true, "\(story ?? "none")")
            #expect(story?.contains("running>completed") == true, "\(story ?? "none")")
            let storedJobFirst = try await stack.scalar(
                "SELECT count(*)::int FROM job_transitions t JOIN jobs j ON j.id = t.job_id WHERE j.notification_id = \(notification) AND t.from_state IS NULL",
                as: Int.self
            )
            #expect(storedJobFirst == 0)

            let base = "\(stack.url(.gateway))/api/v1/notifications/"
            let byUser = try await stack.call(.GET, "\(base)?user_id=\(ada)", headers: stack.clientAuth)
            #expect((byUser.json["meta"] as? [String: Any])?["total"] as? Int == 2)
            let byRequest = try await stack.call(.GET, "\(base)?request_id=b-1", headers: stack.clientAuth)
            #expect((byRequest.json["data"] as? [[String: Any]])?.first?["notification_id"] as? String == ids[2])
            let paged = try await stack.call(.GET, "\(base)?status=sent&limit=1&page=2", headers: stack.clientAuth)
            let meta = try #require(paged.json["meta"] as? [String: Any])
            #expect(meta["total"] as? Int == 3)
            #expect(meta["has_next"] as? Bool == true)
            #expect(meta["has_previous"] as? Bool == true)
            #expect((paged.json["data"] as? [[String: Any]])?.count == 1)
            let bad = try await stack.call(.GET, "\(base)?status=lost&user_id=x&limit=0", headers: stack.clientAuth)
            #expect(bad.status == 400)
            #expect(Set(bad.details.compactMap { $0["field"] }) == ["status", "user_id", "limit"])
        }
    }

    @Test("delivery reports: delivered only after sent, idempotent, recorded in the history, service credential only")
    func deliveryReports() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay]) { stack in
            let (ada, _) = try await prepare(stack)
            let id = try #require(try await stack.send(body(ada, "r-1")).data["notification_id"] as? String)
            let url = "\(stack.url(.gateway))/api/v1/email/status/"
            let early = try await stack.call(.POST, url, json: ["notification_id": id, "status": "delivered"], headers: stack.serviceAuth)
            #expect(early.status == 409)
            #expect(early.error == "INVALID_TRANSITION")

            try stack.start(.emailWorker)
            _ = try await stack.waitForStatus(id, "sent")
            let byClient = try await stack.call(.POST, url, json: ["notification_id": id, "status": "delivered"], headers: stack.clientAuth)
            #expect(byClient.status == 403)
            let wrongChannel = try await stack.call(
                .POST,
                "\(stack.url(.gateway))/api/v1/push/status/",
                json: ["notification_id": id, "status": "delivered"],
                headers: stack.serviceAuth
            )
            #expect(wrongChannel.status == 404)
            let bad = try await stack.call(.POST, url, json: ["notification_id": "x", "status": "read"], headers: stack.serviceAuth)
            #expect(Set(bad.details.compactMap { $0["field"] }) == ["notification_id", "status"])

            let delivered = try await stack.call(
                .POST,
                url,
                json: ["notification_id": id, "status": "delivered", "timestamp": "2026-11-21T10:00:00Z"],
                headers: stack.serviceAuth
            )
            #expect(delivered.status == 200)
            #expect(delivered.data["status"] as? String == "delivered")
            #expect(delivered.data["delivered_at"] as? String == "2026-11-21T10:00:00Z")
            let again = try await stack.call(.POST, url, json: ["notification_id": id, "status": "delivered"], headers: stack.serviceAuth)
            #expect(again.status == 200)
            #expect(again.headers.first(name: "Idempotent-Replayed") == "true")
            let history = try #require((try await stack.notification(id)).data["history"] as? [[String: Any]])
            #expect(history.last?["status"] as? String == "delivered")
            #expect(history.last?["cause"] as? String == "delivery report: delivered")
            #expect(history.filter { $0["status"] as? String == "delivered" }.count == 1)
        }
    }

    @Test("a job whose row cannot be read as it must be fails with the reason, never sent with defaults")
    func corruptRowFails() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay]) { stack in
            let (ada, _) = try await prepare(stack)
            let id = try #require(try await stack.send(body(ada, "corrupt-1")).data["notification_id"] as? String)
            // Variables that are not an object (jsonb allows it; the gateway never writes it).
            try await stack.infra.withDatabase(.notifications) { client in
                _ = try await client.query(
                    "UPDATE notifications SET variables = '[1, 2]'::jsonb WHERE id = \(UUID(uuidString: id)!)",
                    logger: TestInfrastructure.logger
                )
            }
            try stack.start(.emailWorker)
            let failed = try await stack.waitForStatus(id, "failed")
            #expect((failed["last_error"] as? String)?.contains("corrupt job row: its variables are not a JSON object") == true, "\(failed)")
            #expect(ReceivedEmail.with(messageID: "\(id)@notify.local", in: stack.infra.maildir).isEmpty, "nothing was sent")
        }
    }

    @Test("50 concurrent identical requests make exactly one notification")
    func concurrentIdenticalRequests() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let (ada, _) = try await prepare(stack)
            let replies = NIOLockedValueBox<[(Int, String?)]>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for _ in 0..<50 {
                    group.addTask {
                        let reply = try await stack.send(body(ada, "same-request"))
                        replies.withLockedValue { $0.append((reply.status, reply.data["notification_id"] as? String)) }
                    }
                }
                try await group.waitForAll()
            }
            let all = replies.withLockedValue { $0 }
            #expect(all.count == 50)
            #expect(all.filter { $0.0 == 202 }.count == 1)
            #expect(all.filter { $0.0 == 200 }.count == 49)
            #expect(Set(all.compactMap(\.1)).count == 1)
            let rows: Int? = try await stack.scalar("SELECT count(*)::int FROM notifications WHERE request_id = 'same-request'")
            #expect(rows == 1)
            let jobs: Int? = try await stack.scalar("SELECT count(*)::int FROM jobs")
            #expect(jobs == 1)
        }
    }
}
