import Foundation
import NIOHTTP1
import PostgresNIO
import Testing

/// The user service really killed (SIGKILL) while the gateway takes creates. Part of the fault run (its name holds
/// `FaultTests`): the timings it checks need a machine not loaded by other stacks.
@Suite("Faults of the user service", .serialized)
struct DirectoryFaultTests {
    func body(_ userID: String, _ requestID: String) -> [String: Any] {
        ["notification_type": "email", "user_id": userID, "template_code": "outage", "variables": ["n": 1], "request_id": requestID]
    }

    func createTemplate(_ stack: Stack) async throws {
        try await stack.createTemplate(["code": "outage", "name": "Outage", "channel": "email", "subject": "S {{n}}", "body": "B {{n}}"])
    }

    func circuit(_ stack: Stack, _ name: String) async throws -> String? {
        let health = try await stack.call(.GET, "\(stack.url(.gateway))/health")
        return ((health.data["checks"] as? [String: Any])?["circuit:\(name)"] as? [String: Any])?["detail"] as? String
    }

    @Test(
        "user service down: the template service's breaker stays closed, users never seen or seen too long ago get 503; user service back: creates accepted within 2 s"
    )
    func breakersCountOnlyTheirService() async throws {
        try await Stack.with(services: [.users, .templates, .gateway], extra: ["NOTIFY_DIRECTORY_STALE_SECONDS": "2"]) { stack in
            try await createTemplate(stack)
            let known = try await stack.createUser()
            let unseen = try await stack.createUser()
            #expect(try await stack.send(body(known, "known-0")).status == 202)
            let learnt = ContinuousClock.now

            try #require(stack.process(.users)).kill9()
            // Each lookup of the unseen user fails; the template lookup beside it is cancelled, which is not the
            // template service's failure.
            for index in 0..<20 {
                let reply = try await stack.send(body(unseen, "unseen-\(index)"))
                #expect(reply.status == 503)
                #expect(reply.error == "DEPENDENCY_UNAVAILABLE")
            }
            #expect(try await circuit(stack, "templates-service") == "closed")
            #expect(try await circuit(stack, "users-service") != "closed")
            // The staleness bound (2 s) is what is under test here: the known user's data must be older than it.
            try await Task.sleep(until: learnt + .seconds(3))
            let late = try await stack.send(body(known, "known-late"))
            #expect(late.status == 503, "data older than the bound is not used: \(late.json)")

            try stack.start(.users)
            try await stack.waitHealthy(.users)
            let back = ContinuousClock.now
            _ = try await eventually("a create for the unseen user accepted", timeout: .seconds(30), interval: .milliseconds(50)) { () -> Bool? in
                try await stack.send(body(unseen, "unseen-back")).status == 202 ? true : nil
            }
            let after = ContinuousClock.now - back
            #expect(after < .seconds(2), "creates were accepted again only \(after) after the user service was back")
            #expect(try await circuit(stack, "templates-service") == "closed")
        }
    }

    @Test(
        "user service down: creates for known users are accepted against their last known data and delivered once it is back; a user who opted out just before gets nothing"
    )
    func acceptedAgainstLastKnownData() async throws {
        try await Stack.with(extra: FaultTests.fast) { stack in
            try await createTemplate(stack)
            let keeps = try await stack.createUser()
            let leaves = try await stack.createUser()
            for (user, tag) in [(keeps, "keeps"), (leaves, "leaves")] {
                let first = try #require(try await stack.send(body(user, "\(tag)-0")).data["notification_id"] as? String)
                _ = try await stack.waitForEmail(first)
            }
            // The opt-out reaches the user service, and the user service dies before the gateway asks again: the
            // gateway's last answer for this user still allows email.
            #expect(try await stack.setPreferences(leaves, ["email": false, "push": true]).status == 200)
            try #require(stack.process(.users)).kill9()

            var ids: [String: String] = [:]
            for (user, tag) in [(keeps, "keeps"), (leaves, "leaves")] {
                let reply = try await stack.send(body(user, "\(tag)-1"))
                #expect(reply.status == 202, "\(tag): \(reply.json)")
                ids[tag] = try #require(reply.data["notification_id"] as? String)
            }
            let accepted = try await stack.notification(try #require(ids["keeps"]))
            #expect((accepted.data["stale_data_age_s"] as? Int ?? 0) >= 1)
            let history = try #require(accepted.data["history"] as? [[String: Any]])
            #expect((history.first?["cause"] as? String)?.hasPrefix("accepted against user and template data") == true)
            // The worker cannot check them while the user service is away: nothing goes out.
            _ = try await eventually("the worker tried and waits") { () -> Bool? in
                let job: String? = try await stack.scalar("SELECT state FROM jobs WHERE notification_id = \(UUID(uuidString: ids["keeps"]!)!)")
                return job == "retryable" ? true : nil
            }
            #expect(stack.emailCounts(for: Array(ids.values)).isEmpty)

            try stack.start(.users)
            try await stack.waitHealthy(.users)
            _ = try await stack.waitForEmail(try #require(ids["keeps"]), timeout: .seconds(60))
            let withdrawn = try await stack.waitForStatus(try #require(ids["leaves"]), "cancelled", timeout: .seconds(60))
            #expect(withdrawn["job_state"] as? String == "cancelled")
            let causes = (withdrawn["history"] as? [[String: Any]] ?? []).compactMap { $0["cause"] as? String }
            #expect(causes.last == "not sent: the user turned email notifications off")
            #expect(stack.emailCounts(for: [try #require(ids["leaves"])]).isEmpty)
            #expect(stack.emailCounts(for: [try #require(ids["keeps"])]).values.first == 1)
        }
    }
}
