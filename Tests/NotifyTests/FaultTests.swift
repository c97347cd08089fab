import Broker
import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO
import RedisCache
import Testing

/// Faults on the real infrastructure: processes and servers are really killed (SIGKILL) or stalled (SIGSTOP).
/// These tests stop shared servers, so the test command runs this suite on its own, one test at a time.
@Suite("Faults", .serialized)
struct FaultTests {
    static let fast = [
        "NOTIFY_RETRY_BASE_MS": "200", "NOTIFY_RETRY_CAP_SECONDS": "2", "NOTIFY_JOB_LEASE_SECONDS": "3", "NOTIFY_WORKER_PREFETCH": "32",
        "NOTIFY_RESCUE_GRACE_SECONDS": "5",
    ]

    func setUpTemplate(_ stack: Stack) async throws -> String {
        let userID = try await stack.createUser()
        try await stack.createTemplate(["code": "fault", "name": "Fault", "channel": "email", "subject": "Fault {{n}}", "body": "Body {{n}}"])
        return userID
    }

    func body(_ userID: String, _ tag: String) -> @Sendable (Int) -> [String: Any] {
        { index in
            ["notification_type": "email", "user_id": userID, "template_code": "fault", "variables": ["n": index], "request_id": "\(tag)-\(index)"]
        }
    }

    /// Waits until every id has exactly one email (at-least-once may legitimately give more; see the callers).
    func waitDelivered(_ stack: Stack, _ ids: [String], timeout: Duration = .seconds(180)) async throws -> [String: Int] {
        do {
            return try await eventually("\(ids.count) emails", timeout: timeout, interval: .milliseconds(500)) { () -> [String: Int]? in
                let counts = stack.emailCounts(for: ids)
                return counts.count == ids.count ? counts : nil
            }
        } catch {
            // Say where each missing one stands, so a failure in CI can be understood from its output alone.
            let counts = stack.emailCounts(for: ids)
            let missing = ids.filter { counts["<\($0)@notify.local>"] == nil }.compactMap(UUID.init(uuidString:))
            let rows = try await stack.infra.withDatabase(.notifications) { client in
                var rows: [String] = []
                for try await (id, status, state, published) in try await client.query(
                    """
                    SELECT DISTINCT ON (n.id) n.id::text, n.status, j.state, o.id IS NULL
                    FROM notifications n LEFT JOIN jobs j ON j.notification_id = n.id LEFT JOIN outbox o ON o.message_id = j.id::text
                    WHERE n.id = ANY(\(missing)) ORDER BY n.id, o.id IS NULL
                    """,
                    logger: TestInfrastructure.logger
                ).decode((String, String, String?, Bool?).self) {
                    rows.append("\(id): status \(status), job \(state ?? "none"), outbox row \(published == true ? "gone (published)" : "waiting")")
                }
                return rows
            }
            Issue.record(
                "\(missing.count) of \(ids.count) accepted notifications never arrived; \(missing.count - rows.count) of them are not in the database at all. \(rows.prefix(20).joined(separator: "; "))"
            )
            throw error
        }
    }

    func countSent(_ stack: Stack) async throws -> Int {
        try await stack.scalar("SELECT count(*)::int FROM notifications WHERE status = 'sent'") ?? 0
    }

    @Test("RabbitMQ SIGKILLed with 2,000 notifications in flight: all sent exactly once; after its restart work flows through it again")
    func rabbitMQKilled() async throws {
        try await Stack.with(extra: Self.fast) { stack in
            // Whatever happens here, RabbitMQ is running again afterwards (start is a no-op when it runs).
            do { try await rabbitMQKilledBody(stack) } catch {
                try? stack.infraControl("start", "rabbitmq")
                throw error
            }
        }
    }

    func rabbitMQKilledBody(_ stack: Stack) async throws {
        do {
            let userID = try await setUpTemplate(stack)
            let killedAt = NIOLockedValueBox<Date?>(nil)
            let ids = try await withThrowingTaskGroup(of: [String].self) { group in
                group.addTask {
                    try await stack.sendMany(2000, concurrency: 8, body: body(userID, "rmq")) { accepted in
                        if accepted == 400 {
                            killedAt.withLockedValue { $0 = Date() }
                            try? stack.infraControl("kill", "rabbitmq")
                        }
                    }
                }
                return try await group.next() ?? []
            }
            #expect(ids.count == 2000)
            let killed = try #require(killedAt.withLockedValue { $0 })
            // Fail-over: from the kill to the first job a worker claimed from PostgreSQL (same machine, same clock).
            let firstFallback = try await eventually("a fallback claim", timeout: .seconds(60)) { () -> Date? in
                try await stack.scalar("SELECT min(attempted_at) FROM jobs WHERE attempted_via = 'fallback' AND attempted_at >= \(killed)")
            }
            let failover = String(format: "%.2f s", firstFallback.timeIntervalSince(killed))
            let counts = try await waitDelivered(stack, ids)
            #expect(counts.values.allSatisfy { $0 == 1 }, "duplicates: \(counts.filter { $0.value > 1 }.count)")
            // The last completions are committed in batches after the emails went out.
            _ = try await eventually("all 2000 sent", timeout: .seconds(120)) { try await countSent(stack) == 2000 ? true : nil }

            try stack.infraControl("start", "rabbitmq")
            let restarted = ContinuousClock.now
            let restartedAt = Date()
            // Accepted once the consumers are back (the workers stop claiming everything from PostgreSQL) while the
            // relay's HTTP publish may still stall after the restart: delivered within 30 s of the broker's return all
            // the same (the workers claim what stays unpublished for 10 s).
            try await stack.waitConsuming(timeout: .seconds(60))
            let afterReturn = try await stack.sendMany(50, body: body(userID, "return"))
            let returned = try await waitDelivered(stack, afterReturn, timeout: .seconds(60))
            #expect(returned.values.allSatisfy { $0 == 1 })
            let lastSent = try await eventually("the 50 sent") { () -> Date? in
                let sent: Int? = try await stack.scalar(
                    "SELECT count(*)::int FROM notifications WHERE id = ANY(\(afterReturn.compactMap(UUID.init(uuidString:)))) AND status = 'sent'"
                )
                guard sent == 50 else { return nil }
                return try await stack.scalar(
                    "SELECT max(sent_at) FROM notifications WHERE id = ANY(\(afterReturn.compactMap(UUID.init(uuidString:))))"
                )
            }
            let lastAfter = lastSent.timeIntervalSince(restartedAt)
            #expect(lastAfter < 30, "the last of 50 notifications accepted after the broker's return was sent \(lastAfter) s after it")
            // New work goes through the broker again once the consumers have reconnected and the relay publishes
            // again. One probe at a time: a probe the fallback claimed is replaced by a new one; an unclaimed one is
            // waited for. (RabbitMQ 3.10's HTTP publish can stall for about a minute after a restart while AMQP
            // already works: the relay's probes time out and the probe waits in the outbox, delayed, not lost.)
            var current: String?
            let probe = try await eventually("a notification claimed from a broker message", timeout: .seconds(180), interval: .milliseconds(250)) {
                () -> String? in
                if current == nil {
                    let reply = try await stack.send(body(userID, "after")(Int.random(in: 0..<1_000_000_000)))
                    current = reply.data["notification_id"] as? String
                }
                guard let id = current else { return nil }
                let via: String? = try await stack.scalar(
                    "SELECT attempted_via FROM jobs WHERE notification_id = \(UUID(uuidString: id)!) AND attempted_via IS NOT NULL"
                )
                if via == "broker" { return id }
                if via != nil { current = nil }
                return nil
            }
            let recovery = String(format: "%.2f s", (ContinuousClock.now - restarted).inSeconds)
            _ = try await stack.waitForStatus(probe, "sent")
            let fallback: Int? = try await stack.scalar("SELECT count(*)::int FROM jobs WHERE attempted_via = 'fallback'")
            print(
                "rabbitmq fault: fail-over to PostgreSQL after \(failover), back on the broker \(recovery) after restart; \(fallback ?? 0) of 2000 delivered by the fallback; the last of 50 accepted after the restart sent \(String(format: "%.1f", lastAfter)) s after it"
            )
        }
    }

    @Test(
        "no relay publishing while the broker works: jobs left unpublished for NOTIFY_WORKER_UNPUBLISHED_AFTER_SECONDS are delivered from PostgreSQL, each once; a late publish of one is acked and dropped"
    )
    func unpublishedJobsAreClaimed() async throws {
        try await Stack.with(extra: Self.fast.merging(["NOTIFY_WORKER_UNPUBLISHED_AFTER_SECONDS": "3"]) { $1 }) { stack in
            let userID = try await setUpTemplate(stack)
            try await stack.waitConsuming()
            try #require(stack.process(.relay)).kill9()
            let acceptedBy = Date()
            let ids = try await stack.sendMany(20, body: body(userID, "norelay"))
            let counts = try await waitDelivered(stack, ids, timeout: .seconds(60))
            #expect(counts.values.allSatisfy { $0 == 1 })
            let uuids = ids.compactMap(UUID.init(uuidString:))
            _ = try await eventually("all 20 sent") { () -> Bool? in
                try await stack.scalar("SELECT count(*)::int FROM notifications WHERE id = ANY(\(uuids)) AND status = 'sent'", as: Int.self) == 20
                    ? true : nil
            }
            let lastSent = try #require(try await stack.scalar("SELECT max(sent_at) FROM notifications WHERE id = ANY(\(uuids))", as: Date.self))
            // The age (3 s) plus the safety poll and a loaded machine's slack.
            #expect(lastSent.timeIntervalSince(acceptedBy) < 15, "sent \(lastSent.timeIntervalSince(acceptedBy)) s after acceptance")
            let viaFallback: Int? = try await stack.scalar(
                "SELECT count(*)::int FROM jobs WHERE notification_id = ANY(\(uuids)) AND attempted_via = 'fallback'"
            )
            #expect(viaFallback == 20)
            let left: Int? = try await stack.scalar(
                "SELECT count(*)::int FROM outbox o JOIN jobs j ON o.message_id = j.id::text WHERE j.notification_id = ANY(\(uuids))"
            )
            #expect(left == 0, "the outbox rows are deleted with the claim, so no relay publishes them later")

            // A relay that published one of them anyway (it was publishing as the worker claimed it): the message
            // reaches the worker, whose claim finds the job done; it is acked and dropped, and counted.
            let (jobID, payload) = try #require(try await stack.queueMessage(of: uuids[0]))
            let management = stack.infra.management(stack.http)
            #expect(
                try await management.publish(
                    routingKey: "email",
                    payload: payload,
                    properties: .init(messageID: String(jobID), correlationID: "late", priority: 0)
                )
            )
            _ = try await eventually("the late message dropped") { () -> Bool? in
                let metrics = try await OperationsTests.metrics(stack, .emailWorker)
                return OperationsTests.sample(metrics, "notify_messages_dropped_total", ["queue": "email.queue"]) == 1 ? true : nil
            }
            _ = try await eventually("email.queue empty") { () -> Bool? in
                (try await management.queue("email.queue"))["messages"] as? Int == 0 ? true : nil
            }
            #expect(stack.emailCounts(for: [ids[0]]).values.first == 1)
        }
    }

    @Test("an email worker SIGKILLed mid-batch: its running jobs are rescued after their lease and delivered")
    func workerKilled() async throws {
        try await Stack.with(extra: Self.fast) { stack in
            let userID = try await setUpTemplate(stack)
            // Stall the SMTP sink so the worker is certainly holding jobs when it dies.
            let sink = try stack.infraPID("smtp")
            kill(sink, SIGSTOP)
            let resumed = NIOLockedValueBox(false)
            defer { if !resumed.withLockedValue({ $0 }) { kill(sink, SIGCONT) } }
            let ids = try await stack.sendMany(100, body: body(userID, "kill"))
            _ = try await eventually("jobs running in the worker") { () -> Int? in
                let n: Int? = try await stack.scalar("SELECT count(*)::int FROM jobs WHERE state = 'running'")
                return (n ?? 0) >= 4 ? n : nil
            }
            stack.process(.emailWorker)?.kill9()
            // The worker kept claiming until it died: count what it held once it is gone (a rescue may already have begun).
            let held =
                try await stack.scalar(
                    "SELECT count(*)::int FROM jobs WHERE state = 'running' OR id IN (SELECT job_id FROM job_transitions WHERE cause LIKE 'lease expired%')",
                    as: Int.self
                ) ?? 0
            kill(sink, SIGCONT)
            resumed.withLockedValue { $0 = true }
            try stack.start(.emailWorker)
            try await stack.waitHealthy(.emailWorker)
            let counts = try await waitDelivered(stack, ids)
            #expect(counts.count == 100)
            _ = try await eventually("all sent") { try await countSent(stack) == 100 ? true : nil }
            let rescued: Int? = try await stack.scalar("SELECT count(DISTINCT job_id)::int FROM job_transitions WHERE cause LIKE 'lease expired%'")
            #expect((rescued ?? 0) >= 1)
            #expect((rescued ?? 0) <= held)
            print("worker fault: \(held) jobs held by the killed worker, \(rescued ?? 0) rescued after their lease, all 100 delivered")
        }
    }

    @Test("SIGTERM to a worker holding jobs: it finishes them, acks them and exits; nothing is left for the rescuer")
    func workerDrainsOnSIGTERM() async throws {
        try await Stack.with(extra: Self.fast.merging(["NOTIFY_JOB_LEASE_SECONDS": "60"]) { $1 }) { stack in
            let userID = try await setUpTemplate(stack)
            let sink = try stack.infraPID("smtp")
            kill(sink, SIGSTOP)
            let resumed = NIOLockedValueBox(false)
            defer { if !resumed.withLockedValue({ $0 }) { kill(sink, SIGCONT) } }
            let ids = try await stack.sendMany(20, body: body(userID, "drain"))
            let held = try await eventually("jobs running in the worker") { () -> Int? in
                let n: Int? = try await stack.scalar("SELECT count(*)::int FROM jobs WHERE state = 'running'")
                return (n ?? 0) >= 4 ? n : nil
            }
            let worker = try #require(stack.process(.emailWorker))
            worker.process.terminate()
            _ = try await eventually("the worker draining") { worker.log.contains("worker draining") ? true : nil }
            kill(sink, SIGCONT)
            resumed.withLockedValue { $0 = true }
            _ = try await eventually("the worker exited", timeout: .seconds(40)) { worker.isRunning ? nil : true }
            #expect(worker.process.terminationStatus == 0)
            let completed: Int? = try await stack.scalar("SELECT count(*)::int FROM jobs WHERE state = 'completed'")
            #expect((completed ?? 0) >= held, "the jobs it held were finished, not abandoned")
            let running: Int? = try await stack.scalar("SELECT count(*)::int FROM jobs WHERE state = 'running'")
            #expect(running == 0)
            try stack.start(.emailWorker)
            _ = try await waitDelivered(stack, ids)
            let rescued: Int? = try await stack.scalar("SELECT count(*)::int FROM job_transitions WHERE cause LIKE 'lease expired%'")
            #expect(rescued == 0)
        }
    }

    @Test("the relay SIGKILLed and restarted mid-stream: nothing lost, nothing sent twice")
    func relayKilled() async throws {
        try await Stack.with(extra: Self.fast) { stack in
            let userID = try await setUpTemplate(stack)
            let ids = try await stack.sendMany(400, body: body(userID, "relay")) { accepted in
                if accepted == 150 { stack.process(.relay)?.kill9() }
            }
            try stack.start(.relay)
            try await stack.waitHealthy(.relay)
            let counts = try await waitDelivered(stack, ids)
            #expect(counts.values.allSatisfy { $0 == 1 })
            _ = try await eventually("all sent") { try await countSent(stack) == 400 ? true : nil }
            // The relay deletes a batch's rows after RabbitMQ took it; a worker can deliver before the delete lands.
            _ = try await eventually("every outbox row deleted as published") { () -> Bool? in
                let unpublished: Int? = try await stack.scalar("SELECT count(*)::int FROM outbox WHERE routing_key = 'email'")
                return unpublished == 0 ? true : nil
            }
        }
    }

    @Test("an SMTP server answering 451 for a while: the job backs off and retries, then succeeds")
    func smtpTemporaryFailure() async throws {
        try await Stack.with(extra: Self.fast) { stack in
            let userID = try await setUpTemplate(stack)
            // The server's own words name an internal host: clients must not see them.
            try await stack.smtpMode("451 4.7.1 greylisted by mx7.internal.example.corp")
            do {
                let id = try #require(try await stack.send(body(userID, "451")(1)).data["notification_id"] as? String)
                _ = try await eventually("two failed attempts") { () -> Int? in
                    let failures: Int? = try await stack.scalar(
                        "SELECT jsonb_array_length(errors)::int FROM jobs WHERE notification_id = \(UUID(uuidString: id)!)"
                    )
                    return (failures ?? 0) >= 2 ? failures : nil
                }
                let status = try await stack.notification(id)
                #expect(["retrying", "processing"].contains(status.data["status"] as? String))
                let lastError = status.data["last_error"] as? String ?? ""
                #expect(lastError.contains("451"))
                #expect(lastError.hasPrefix("deferred_by_server"), "\(lastError)")
                #expect(!lastError.contains("internal.example.corp") && !lastError.contains("SMTP:"), "\(lastError)")
                try await stack.smtpMode("ok")
                let sent = try await stack.waitForStatus(id, "sent")
                #expect((sent["attempts"] as? Int ?? 0) >= 3)
                let permanent: Bool? = try await stack.scalar(
                    "SELECT bool_or((e->>'permanent')::bool) FROM jobs, jsonb_array_elements(errors) e WHERE notification_id = \(UUID(uuidString: id)!)"
                )
                #expect(permanent == false)
                _ = try await stack.waitForEmail(id)
            } catch {
                try? await stack.smtpMode("ok")
                throw error
            }
        }
    }

    @Test("an SMTP server answering 550: discarded, on failed.queue with its errors, status failed; replay delivers it later")
    func smtpPermanentFailureAndReplay() async throws {
        try await Stack.with(extra: Self.fast) { stack in
            let userID = try await setUpTemplate(stack)
            try await stack.smtpMode("550")
            do {
                let id = try #require(try await stack.send(body(userID, "550")(1)).data["notification_id"] as? String)
                let failed = try await stack.waitForStatus(id, "failed")
                #expect(failed["job_state"] as? String == "discarded")
                #expect(failed["attempts"] as? Int == 1)
                let management = stack.infra.management(stack.http)
                let deadLetter = try await eventually("the dead letter on failed.queue") { () -> [String: Any]? in
                    try await management.peek(queue: "failed.queue", count: 10).compactMap { message -> [String: Any]? in
                        guard let payload = message["payload"] as? String else { return nil }
                        return try? JSONSerialization.jsonObject(with: Data(payload.utf8)) as? [String: Any]
                    }.first { $0["notification_id"] as? String == id }
                }
                let errors = try #require(deadLetter["errors"] as? [[String: Any]])
                #expect(errors.count == 1)
                #expect((errors.first?["error"] as? String)?.contains("550") == true)
                #expect(errors.first?["permanent"] as? Bool == true)

                try await stack.smtpMode("ok")
                let replay = try await stack.call(.POST, "\(stack.url(.gateway))/api/v1/notifications/\(id)/retry/", headers: stack.clientAuth)
                #expect(replay.status == 202)
                _ = try await stack.waitForEmail(id)
                _ = try await stack.waitForStatus(id, "sent")
                let again = try await stack.call(.POST, "\(stack.url(.gateway))/api/v1/notifications/\(id)/retry/", headers: stack.clientAuth)
                #expect(again.status == 409)
                #expect(again.error == "NOT_RETRYABLE")
            } catch {
                try? await stack.smtpMode("ok")
                throw error
            }
        }
    }

    @Test("an unparseable message is dead-lettered by RabbitMQ itself to failed.queue")
    func unparseableMessageIsDeadLettered() async throws {
        try await Stack.with(services: [.users, .templates, .relay, .emailWorker], extra: Self.fast) { stack in
            let management = stack.infra.management(stack.http)
            // The queues come before their bindings: wait until the relay reports the whole topology declared.
            _ = try await eventually("the relay declared the topology") { () -> Bool? in
                let health = try await stack.call(.GET, "\(stack.url(.relay))/health")
                return ((health.data["checks"] as? [String: Any])?["topology"] as? [String: Any])?["status"] as? String == "up" ? true : nil
            }
            let routed = try await management.publish(
                routingKey: "email",
                payload: "this is not json",
                properties: .init(messageID: "garbage-1", correlationID: "c-garbage", priority: 0)
            )
            #expect(routed)
            let dead = try await eventually("the garbage on failed.queue") { () -> [String: Any]? in
                try await management.peek(queue: "failed.queue", count: 10).first { $0["payload"] as? String == "this is not json" }
            }
            let properties = dead["properties"] as? [String: Any]
            #expect(properties?["message_id"] as? String == "garbage-1")
        }
    }

    @Test("Redis stopped: the user and template services still answer, from PostgreSQL; the cache comes back with Redis")
    func redisStopped() async throws {
        try await Stack.with(services: [.users, .templates]) { stack in
            let id = try await stack.createUser()
            try await stack.createTemplate(["code": "cached", "name": "C", "channel": "email", "subject": "S", "body": "B"])
            try stack.infraControl("stop", "redis")
            do {
                let template = try await stack.call(.GET, "\(stack.url(.templates))/api/v1/templates/cached/", headers: stack.serviceAuth)
                #expect(template.status == 200)
                let edited = try await stack.call(
                    .PUT,
                    "\(stack.url(.templates))/api/v1/templates/cached/",
                    json: ["subject": "S2", "body": "B2"],
                    headers: stack.serviceAuth
                )
                #expect(edited.data["version"] as? Int == 2)
                for _ in 0..<3 {
                    let reply = try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(id)/contact/", headers: stack.serviceAuth)
                    #expect(reply.status == 200)
                }
                let patched = try await stack.call(
                    .PATCH,
                    "\(stack.url(.users))/api/v1/users/\(id)/",
                    json: ["name": "Without Redis"],
                    headers: stack.serviceAuth
                )
                #expect(patched.status == 200)
                let health = try await stack.call(.GET, "\(stack.url(.users))/health")
                #expect(health.status == 200)
                #expect(health.data["status"] as? String == "degraded")
            } catch {
                try? stack.infraControl("start", "redis")
                throw error
            }
            try stack.infraControl("start", "redis")
            let after = try await eventually("answers with Redis back", timeout: .seconds(60)) { () -> Stack.Reply? in
                let reply = try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(id)/", headers: stack.serviceAuth)
                return reply.status == 200 ? reply : nil
            }
            #expect(after.data["name"] as? String == "Without Redis")
        }
    }

    @Test(
        "Redis refusing writes (CLIENT PAUSE WRITE): a user edit and a template edit whose invalidations time out are never followed by a stale read; the invalidations land when Redis takes writes again"
    )
    func redisWritesStalled() async throws {
        try await Stack.with(services: [.users, .templates]) { stack in
            let id = try await stack.createUser(name: "Before")
            try await stack.createTemplate(["code": "stall", "name": "S", "channel": "email", "subject": "Old subject", "body": "B"])
            let userURL = "\(stack.url(.users))/api/v1/users/\(id)/"
            let templateURL = "\(stack.url(.templates))/api/v1/templates/stall/"
            // Both lookups are cached before the stall.
            let (user, template) = try await eventually("user and template cached") { () -> (Stack.Reply, Stack.Reply)? in
                let user = try await stack.call(.GET, userURL, headers: stack.serviceAuth)
                let template = try await stack.call(.GET, templateURL, headers: stack.serviceAuth)
                let cachedUser = try await stack.redisKeys(matching: "user:\(id.lowercased())")
                let cachedTemplate = try await stack.redisKeys(matching: "template:stall:*:email:*")
                return !cachedUser.isEmpty && !cachedTemplate.isEmpty ? (user, template) : nil
            }
            #expect(user.data["name"] as? String == "Before")
            #expect(template.data["subject"] as? String == "Old subject")

            let redis = RedisClient(host: stack.infra.redis.host, port: stack.infra.redis.port, timeoutMilliseconds: 5000)
            _ = try await redis.command(["CLIENT", "PAUSE", "120000", "WRITE"])
            do {
                let patched = try await stack.call(.PATCH, userURL, json: ["name": "After"], headers: stack.serviceAuth)
                #expect(patched.status == 200)
                let edited = try await stack.call(.PUT, templateURL, json: ["subject": "New subject", "body": "B2"], headers: stack.serviceAuth)
                #expect(edited.data["version"] as? Int == 2)
                // Redis still answers reads (the old entries are there), so a cache that lost its invalidation would serve them.
                for _ in 0..<3 {
                    #expect(try await stack.call(.GET, userURL, headers: stack.serviceAuth).data["name"] as? String == "After")
                    #expect(try await stack.call(.GET, templateURL, headers: stack.serviceAuth).data["subject"] as? String == "New subject")
                }
                #expect(
                    try await redis.get("\(stack.infra.redis.keyPrefix)user:\(id.lowercased())")?.contains("Before") == true,
                    "the stale entry is still in Redis"
                )
                // The reads above ran while Redis was still refusing writes.
                let probe = RedisClient(host: stack.infra.redis.host, port: stack.infra.redis.port, timeoutMilliseconds: 300)
                await #expect(throws: (any Error).self) { try await probe.set("\(stack.infra.redis.keyPrefix)probe", "x", ttlSeconds: 5) }
            } catch {
                _ = try? await redis.command(["CLIENT", "UNPAUSE"])
                throw error
            }
            _ = try await redis.command(["CLIENT", "UNPAUSE"])

            // The retried invalidations land: the stale entry goes and the cache fills again with the new values.
            let (userAfter, templateAfter) = try await eventually(
                "the invalidations reached Redis",
                timeout: .seconds(60),
                interval: .milliseconds(500)
            ) { () -> (Stack.Reply, Stack.Reply)? in
                let user = try await stack.call(.GET, userURL, headers: stack.serviceAuth)
                let template = try await stack.call(.GET, templateURL, headers: stack.serviceAuth)
                let cachedUser = try await redis.get("\(stack.infra.redis.keyPrefix)user:\(id.lowercased())")
                // Each service retries on its own schedule: wait for both (the creation's bump and the edit's retried one).
                let generation = try await redis.get("\(stack.infra.redis.keyPrefix)template:stall:gen")
                return cachedUser?.contains("After") == true && generation.flatMap(Int.init) ?? 0 >= 2 ? (user, template) : nil
            }
            #expect(userAfter.data["name"] as? String == "After")
            #expect(templateAfter.data["subject"] as? String == "New subject")
        }
    }

    @Test("Redis stopped: the gateway's rate limits keep holding in the process; with Redis back they live in Redis again")
    func rateLimitsWithoutRedis() async throws {
        let limits = ["NOTIFY_RATE_LIMIT_PER_KEY": "4/m", "NOTIFY_RATE_LIMIT_KEY_BURST": "4"]
        try await Stack.with(services: [.users, .templates, .gateway], extra: limits) { stack in
            try await stack.createTemplate(["code": "welcome", "name": "W", "channel": "email", "subject": "S", "body": "B"])
            let user = try await stack.createUser()
            func body(_ requestID: String) -> [String: Any] {
                ["notification_type": "email", "user_id": user, "template_code": "welcome", "request_id": requestID]
            }
            try stack.infraControl("stop", "redis")
            do {
                var statuses: [Int] = []
                for index in 0..<6 {
                    let start = ContinuousClock.now
                    let reply = try await stack.send(body("nr-\(index)"))
                    statuses.append(reply.status)
                    #expect(ContinuousClock.now - start < .seconds(5), "a dead Redis must not hold requests up")
                    if reply.status == 429 { #expect(reply.headers.first(name: "Retry-After") != nil) }
                }
                #expect(statuses == [202, 202, 202, 202, 429, 429])
                let health = try await stack.call(.GET, "\(stack.url(.gateway))/health")
                #expect(health.status == 200)
                #expect(
                    ((health.data["checks"] as? [String: Any])?["circuit:redis-rate-limit"] as? [String: Any])?["status"] as? String == "degraded"
                )
            } catch {
                try? stack.infraControl("start", "redis")
                throw error
            }
            try stack.infraControl("start", "redis")
            _ = try await eventually("limits back in Redis", timeout: .seconds(60), interval: .milliseconds(500)) { () -> Bool? in
                let key = try await stack.createKey(scopes: ["notifications:write"])
                _ = try await stack.send(body("back-\(UUID())"), headers: ["Authorization": "Bearer \(key)"])
                return try await stack.redisKeys(matching: "rl:key:*").isEmpty ? nil : true
            }
        }
    }

    /// A session of the test's own on the notifications database (not pooled: it holds an advisory lock).
    func openSession(_ stack: Stack) async throws -> PostgresConnection {
        let settings = stack.infra.postgres
        return try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(database: settings.databaseName(.notifications)),
            id: 1,
            logger: TestInfrastructure.logger
        )
    }

    /// Every service answers /health with 200 and its main reads work (the user and template services read PostgreSQL).
    func expectServing(_ stack: Stack, userID: String) async throws {
        for service in Stack.Service.core {
            let health = try await stack.call(.GET, "\(stack.url(service))/health")
            #expect(health.status == 200, "\(service.rawValue) unhealthy: \(health.json)")
        }
        let user = try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(userID)/", headers: stack.serviceAuth)
        #expect(user.status == 200)
        let template = try await stack.call(.GET, "\(stack.url(.templates))/api/v1/templates/fault/", headers: stack.serviceAuth)
        #expect(template.status == 200)
    }

    @Test(
        "PostgreSQL SIGKILLed while every group commit waits at the server: creates succeed again within 10 s of its restart, every accepted notification is sent exactly once, every process serves"
    )
    func postgresKilledWithCommitsInFlight() async throws {
        // Two commit slots (the default is one): both caught at the server is the harder case.
        try await Stack.with(extra: Self.fast.merging(["NOTIFY_GATEWAY_COMMITS_IN_FLIGHT": "2"]) { $1 }) { stack in
            do { try await postgresKilledBody(stack) } catch {
                try? stack.infraControl("start", "postgres")
                throw error
            }
        }
    }

    func postgresKilledBody(_ stack: Stack) async throws {
        let userID = try await setUpTemplate(stack)
        // Hold every group commit at the server: a trigger makes each insert of notifications wait for an advisory lock
        // this session holds. With all of the gateway's commit slots (NOTIFY_GATEWAY_COMMITS_IN_FLIGHT, 2 here) caught
        // there, the server is killed; a slot that is never given back (PostgresNIO's ROLLBACK on the dead connection
        // is never answered) would leave the gateway refusing every create from then on.
        let holder = try await openSession(stack)
        _ = try await holder.query("SELECT pg_advisory_lock(4242)", logger: TestInfrastructure.logger)
        _ = try await holder.query(
            """
            CREATE FUNCTION test_hold_commits() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN PERFORM pg_advisory_xact_lock_shared(4242); RETURN NULL; END $$
            """,
            logger: TestInfrastructure.logger
        )
        _ = try await holder.query(
            "CREATE TRIGGER test_hold BEFORE INSERT ON notifications FOR EACH STATEMENT EXECUTE FUNCTION test_hold_commits()",
            logger: TestInfrastructure.logger
        )
        let acceptedAt = NIOLockedValueBox<[ContinuousClock.Instant]>([])
        let restartedAt = NIOLockedValueBox<ContinuousClock.Instant?>(nil)
        let database = stack.infra.postgres.databaseName(.notifications)
        let ids = try await withThrowingTaskGroup(of: [String].self) { group in
            group.addTask {
                // Six clients: two hold the gateway's commit slots, the others wait for them, and the test's HTTP
                // client (eight connections) keeps two for its own calls.
                try await stack.sendMany(300, concurrency: 6, body: body(userID, "kill")) { _ in
                    acceptedAt.withLockedValue { $0.append(.now) }
                }
            }
            let held = try await eventually("every commit slot waiting at the server", timeout: .seconds(60)) { () -> Int? in
                let rows = try await holder.query(
                    """
                    SELECT count(*)::int FROM pg_stat_activity
                    WHERE datname = \(database) AND wait_event_type = 'Lock' AND wait_event = 'advisory'
                    """,
                    logger: TestInfrastructure.logger
                )
                for try await count in rows.decode(Int.self) where count >= 2 { return count }
                return nil
            }
            #expect(acceptedAt.withLockedValue { $0.count } == 0, "nothing is accepted while its commit is held")
            try stack.infraControl("kill", "postgres")
            // While the database is away the gateway says so.
            let down = try await stack.call(.GET, "\(stack.url(.gateway))/health")
            #expect(down.status == 503)
            try stack.infraControl("start", "postgres")
            restartedAt.withLockedValue { $0 = .now }
            print("postgres fault: \(held) commits were held at the server when it was killed")
            return try await group.next() ?? []
        }
        #expect(ids.count == 300)
        let restarted = try #require(restartedAt.withLockedValue { $0 })
        let firstAccepted = try #require(acceptedAt.withLockedValue { $0.min() })
        let recovery = firstAccepted - restarted
        #expect(recovery < .seconds(10), "the first create after the restart was accepted \(recovery) after PostgreSQL accepted connections")
        let counts = try await waitDelivered(stack, ids)
        #expect(counts.values.allSatisfy { $0 == 1 }, "duplicates: \(counts.filter { $0.value > 1 }.count)")
        _ = try await eventually("all 300 sent", timeout: .seconds(120)) { try await countSent(stack) == 300 ? true : nil }
        try await expectServing(stack, userID: userID)
        print("postgres fault: first create accepted \(recovery) after the restart; 300 accepted, each sent once")
    }

    @Test("PostgreSQL away for 40 s: every process serves again within 5 s of its return, without a restart")
    func postgresLongOutage() async throws {
        try await Stack.with(extra: Self.fast) { stack in
            let userID = try await setUpTemplate(stack)
            try stack.infraControl("stop", "postgres")
            do {
                // Clients keep calling meanwhile: the pools fail and back off as they would in production.
                let outageEnds = ContinuousClock.now + .seconds(40)
                while ContinuousClock.now < outageEnds {
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask {
                            let reply = try await stack.send(body(userID, "outage")(Int.random(in: 0..<1_000_000_000)))
                            #expect(reply.status == 503)
                        }
                        for service in Stack.Service.core {
                            group.addTask {
                                let health = try await stack.call(.GET, "\(stack.url(service))/health")
                                #expect(health.status == 503, "\(service.rawValue) healthy without its database")
                            }
                        }
                        // Reads that need the database say it is unavailable (503 with Retry-After), never 500.
                        for url in [
                            "\(stack.url(.users))/api/v1/users/\(UUID().uuidString.lowercased())/",
                            "\(stack.url(.templates))/api/v1/templates/missing-\(Int.random(in: 0..<1_000_000))/",
                        ] {
                            group.addTask {
                                let reply = try await stack.call(.GET, url, headers: stack.serviceAuth)
                                #expect(reply.status == 503, "\(url): \(reply.json)")
                                #expect(reply.error == "DEPENDENCY_UNAVAILABLE")
                                #expect(reply.headers.first(name: "Retry-After") != nil)
                            }
                        }
                        try await group.waitForAll()
                    }
                    try await Task.sleep(for: .seconds(1))
                }
                try stack.infraControl("start", "postgres")
            } catch {
                try? stack.infraControl("start", "postgres")
                throw error
            }
            let back = ContinuousClock.now
            var serving: [Stack.Service: Duration] = [:]
            _ = try await eventually("every service serving", timeout: .seconds(60), interval: .milliseconds(100)) { () -> Bool? in
                for service in Stack.Service.core where serving[service] == nil {
                    let health = try await stack.call(.GET, "\(stack.url(service))/health")
                    if health.status == 200 { serving[service] = ContinuousClock.now - back }
                }
                return serving.count == Stack.Service.core.count ? true : nil
            }
            let accepted = try await eventually("a create accepted", timeout: .seconds(60), interval: .milliseconds(100)) { () -> String? in
                let reply = try await stack.send(body(userID, "back")(1))
                return reply.status == 202 ? reply.data["notification_id"] as? String : nil
            }
            let createdAfter = ContinuousClock.now - back
            for (service, after) in serving { #expect(after < .seconds(5), "\(service.rawValue) served again only \(after) after the return") }
            #expect(createdAfter < .seconds(5), "the first create was accepted \(createdAfter) after the return")
            _ = try await stack.waitForEmail(accepted)
            try await expectServing(stack, userID: userID)
            print("postgres outage of 40 s: healthy again after \(serving.values.max() ?? .zero), first create \(createdAfter) after the return")
        }
    }

    @Test("PostgreSQL restarted under load: every process reconnects on its own and every accepted notification is sent")
    func postgresRestarted() async throws {
        try await Stack.with(extra: Self.fast) { stack in
            let userID = try await setUpTemplate(stack)
            let ids: [String]
            do {
                ids = try await stack.sendMany(300, concurrency: 4, body: body(userID, "pg")) { accepted in
                    if accepted == 100 { try? stack.infraControl("restart", "postgres") }
                }
            } catch {
                try? stack.infraControl("start", "postgres")
                throw error
            }
            #expect(ids.count == 300)
            let counts = try await waitDelivered(stack, ids)
            #expect(counts.count == 300)
            _ = try await eventually("all 300 sent", timeout: .seconds(120)) { try await countSent(stack) == 300 ? true : nil }
            for service in Stack.Service.core {
                let health = try await stack.call(.GET, "\(stack.url(service))/health")
                #expect(health.status == 200, "\(service.rawValue) unhealthy after the restart")
            }
        }
    }
}
