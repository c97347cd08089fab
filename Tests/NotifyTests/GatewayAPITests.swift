import Foundation
import Logging
import NIOHTTP1
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

/// The gateway's contract against real PostgreSQL: credentials, validation, the one-transaction write, status.
@Suite("Gateway API", .serialized)
struct GatewayAPITests {
    /// A user and the `welcome` email template the requests name.
    static func prepare(_ stack: some ServiceClient) async throws -> String {
        try await stack.createTemplate(["code": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi", "body": "Hi {{name}}"])
        return try await stack.createUser()
    }

    static func valid(_ userID: String) -> [String: Any] {
        [
            "notification_type": "email", "user_id": userID, "template_code": "welcome", "variables": ["name": "Ada"], "request_id": "r-1",
            "priority": 1,
        ]
    }

    @Test("a request without a credential, or with an unknown key, is 401 in the envelope")
    func unauthorized() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            let url = "\(stack.url(.gateway))/api/v1/notifications/"
            let missing = try await stack.call(.POST, url, json: Self.valid(user))
            #expect(missing.status == 401)
            #expect(missing.error == "UNAUTHORIZED")
            #expect(missing.json["success"] as? Bool == false)
            #expect(missing.json["meta"] is [String: Any])
            let wrong = try await stack.call(.POST, url, json: Self.valid(user), headers: ["Authorization": "Bearer nk_nope_nope"])
            #expect(wrong.status == 401)
            let header = try await stack.call(.POST, url, json: Self.valid(user), headers: ["X-API-Key": stack.apiKey])
            #expect(header.status == 202)
        }
    }

    @Test("a key without the write scope is 403")
    func forbidden() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            let readOnly = try await stack.createKey(scopes: ["notifications:read"])
            let reply = try await stack.call(
                .POST,
                "\(stack.url(.gateway))/api/v1/notifications/",
                json: Self.valid(user),
                headers: ["Authorization": "Bearer \(readOnly)"]
            )
            #expect(reply.status == 403)
            #expect(reply.error == "FORBIDDEN")
        }
    }

    @Test("an invalid body is 400 VALIDATION_ERROR listing every bad field")
    func validation() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let reply = try await stack.send([
                "notification_type": "fax", "user_id": "not-a-uuid", "variables": "nope", "priority": "high",
                "request_id": String(repeating: "x", count: 256),
            ])
            #expect(reply.status == 400)
            #expect(reply.error == "VALIDATION_ERROR")
            let fields = Set(reply.details.compactMap { $0["field"] })
            #expect(fields == ["notification_type", "user_id", "template_code", "variables", "priority", "request_id"])

            let notJSON = try await stack.call(
                .POST,
                "\(stack.url(.gateway))/api/v1/notifications/",
                json: ["a"],
                headers: stack.clientAuth
            )
            #expect(notJSON.status == 400)
            #expect(notJSON.error == "VALIDATION_ERROR")

            // Bodies that are not strict JSON (RFC 8259): a clear 400 naming the body, nothing written.
            let headers = stack.clientAuth.merging(["Content-Type": "application/json"]) { $1 }
            let written = try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self)
            for body: [UInt8] in [
                Array(#"{"notification_type": "email", "request_id": "trailing-comma",}"#.utf8),
                Array(#"{"notification_type": "email", "request_id": "lone-\ud800"}"#.utf8),
                [0x7B, 0x22, 0x61, 0x22, 0x3A, 0x22, 0xFF, 0x22, 0x7D],  // {"a":"<0xFF>"}: not UTF-8
                Array(#"{"request_id": "a"} {"request_id": "b"}"#.utf8),
            ] {
                let reply = try await stack.raw(.POST, "/api/v1/notifications/", body: Data(body), headers: headers)
                #expect(reply.status == 400, "\(String(decoding: body, as: UTF8.self))")
                #expect(reply.error == "VALIDATION_ERROR")
                #expect(reply.json["message"] as? String == "The body is not a JSON object")
                #expect(reply.details.compactMap { $0["field"] } == ["body"])
            }
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == written)

            // An id is the 8-4-4-4-12 form and nothing near it (the uppercase form is a user like any other: see
            // recipientChecks); in a path, another form is no notification at all.
            let id = "0191f3a2-7c4e-7b1d-9a3e-5f6a7b8c9d0e"
            for near in [" \(id)", "{\(id)}", id.replacingOccurrences(of: "-", with: ""), "+" + id.dropFirst(), id + "\n"] {
                let reply = try await stack.send(Self.valid(near))
                #expect(reply.status == 400, "\(near)")
                #expect(reply.error == "VALIDATION_ERROR")
                #expect(reply.details.compactMap { $0["field"] } == ["user_id"])
                #expect(reply.details.compactMap { $0["message"] } == ["must be a UUID"])
            }
            #expect(try await stack.notification("%7B\(id)%7D").status == 404)
        }
    }

    @Test("an accepted notification is one transaction: notification, available job and outbox row with the correlation id")
    func acceptedWritesOneTransaction() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            let reply = try await stack.send(Self.valid(user), headers: ["X-Correlation-ID": "corr-tx-1"])
            #expect(reply.status == 202)
            #expect(reply.data["notification_type"] as? String == "email")
            #expect(reply.data["request_id"] as? String == "r-1")
            #expect(reply.data["created_at"] is String)
            let id = try #require((reply.data["notification_id"] as? String).flatMap(UUID.init(uuidString:)))
            let row = try await stack.infra.withDatabase(.notifications) { client in
                var found: (String, String, String, String, Int)?
                for try await row in try await client.query(
                    """
                    SELECT n.status, j.state, o.correlation_id, o.routing_key, o.priority
                    FROM notifications n JOIN jobs j ON j.notification_id = n.id JOIN outbox o ON o.message_id = j.id::text
                    WHERE n.id = \(id)
                    """,
                    logger: TestInfrastructure.logger
                ).decode((String, String, String, String, Int).self) { found = row }
                return found
            }
            let (status, state, correlationID, routingKey, priority) = try #require(row)
            #expect(status == "pending")
            #expect(state == "available")
            #expect(correlationID == "corr-tx-1")
            #expect(routingKey == "email")
            #expect(priority == 1)

            let shown = try await stack.notification(id.uuidString)
            #expect(shown.status == 200)
            #expect(shown.data["status"] as? String == "pending")
            #expect(shown.data["correlation_id"] as? String == "corr-tx-1")
        }
    }

    @Test("a write that fails at COMMIT is never answered 202: alone or grouped with others, only its own request fails and nothing of it stays")
    func failedCommitIsNotAccepted() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            // A deferred constraint trigger fails at COMMIT, after the statement returned its rows, like a server
            // terminated between the two (which a fast shutdown does): the rows alone must not count as accepted.
            try await stack.infra.withDatabase(.notifications) { client in
                _ = try await client.query(
                    """
                    CREATE FUNCTION refuse_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        IF NEW.request_id LIKE 'refused-%' THEN RAISE EXCEPTION 'refused at commit'; END IF;
                        RETURN NULL;
                    END $$
                    """,
                    logger: TestInfrastructure.logger
                )
                _ = try await client.query(
                    """
                    CREATE CONSTRAINT TRIGGER refuse_at_commit AFTER INSERT ON notifications
                    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_at_commit()
                    """,
                    logger: TestInfrastructure.logger
                )
            }
            func body(_ requestID: String) -> [String: Any] {
                var body = Self.valid(user)
                body["request_id"] = requestID
                return body
            }
            let alone = try await stack.send(body("refused-alone"))
            #expect(alone.status == 503)
            #expect(alone.error == "DEPENDENCY_UNAVAILABLE")

            // Sent together they may share one group commit: the refused one must not sink the others.
            let statuses = try await withThrowingTaskGroup(of: (String, Int).self) { group in
                for index in 0..<12 {
                    let requestID = index % 4 == 0 ? "refused-\(index)" : "fine-\(index)"
                    group.addTask { (requestID, try await stack.send(body(requestID)).status) }
                }
                return try await group.reduce(into: [String: Int]()) { $0[$1.0] = $1.1 }
            }
            #expect(statuses.filter { $0.key.hasPrefix("refused-") }.allSatisfy { $0.value == 503 })
            #expect(statuses.filter { $0.key.hasPrefix("fine-") }.allSatisfy { $0.value == 202 })
            #expect(statuses.count == 12)
            let stored = try await stack.scalar("SELECT count(*)::int FROM notifications WHERE request_id LIKE 'refused-%'", as: Int.self)
            #expect(stored == 0)
            let jobs = try await stack.scalar("SELECT count(*)::int FROM jobs", as: Int.self)
            let outbox = try await stack.scalar("SELECT count(*)::int FROM outbox", as: Int.self)
            #expect(jobs == 9)
            #expect(outbox == 9)

            // The request_id is free again: once the cause is gone, the same request is accepted.
            try await stack.infra.withDatabase(.notifications) { client in
                _ = try await client.query("DROP TRIGGER refuse_at_commit ON notifications", logger: TestInfrastructure.logger)
            }
            #expect(try await stack.send(body("refused-alone")).status == 202)
        }
    }

    @Test("the Idempotency-Key header stands in for request_id")
    func idempotencyKeyHeader() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let user = try await Self.prepare(stack)
            var body = Self.valid(user)
            body.removeValue(forKey: "request_id")
            let first = try await stack.send(body, headers: ["Idempotency-Key": "idem-7"])
            let second = try await stack.send(body, headers: ["Idempotency-Key": "idem-7"])
            #expect(first.status == 202)
            #expect(first.data["request_id"] as? String == "idem-7")
            #expect(second.status == 200)
            #expect(second.data["notification_id"] as? String == first.data["notification_id"] as? String)
        }
    }

    @Test("with the directory cache on, repeated sends reuse the user and template lookups, and a preference change is honoured within its lifetime")
    func directoryCache() async throws {
        // Counted in the gateway's metrics, which are per process: this one runs as a subprocess.
        try await Stack.with(services: [.users, .templates, .gateway], extra: ["NOTIFY_DIRECTORY_CACHE_SECONDS": "10"]) { stack in
            _ = try await Self.prepare(stack)
            let user = try await stack.createUser()
            for index in 0..<5 {
                var body = Self.valid(user)
                body["request_id"] = "cached-\(index)"
                #expect(try await stack.send(body).status == 202)
            }
            let metrics = try await OperationsTests.metrics(stack, .gateway)
            #expect(OperationsTests.sample(metrics, "notify_cache_requests_total", ["cache": "directory_user", "result": "hit"]) == 4)
            #expect(OperationsTests.sample(metrics, "notify_cache_requests_total", ["cache": "directory_template", "result": "hit"]) == 4)

            let off = try await stack.setPreferences(user, ["email": false])
            #expect(off.status == 200)
            let missesBefore = OperationsTests.sample(metrics, "notify_cache_requests_total", ["cache": "directory_user", "result": "miss"]) ?? 0
            var attempt = 0
            // Bounded by a deadline, not timed: how fast the refusal comes depends on the machine; that it comes
            // from a fresh lookup once the 10 s entry expired is what the miss count shows. (A lifetime shorter than
            // five sends on a loaded machine would make the hit count above depend on speed.)
            let refused = try await eventually("the gateway sees the change", timeout: .seconds(60)) { () -> Stack.Reply? in
                attempt += 1
                var body = Self.valid(user)
                body["request_id"] = "after-\(attempt)"
                let reply = try await stack.send(body)
                return reply.status == 422 ? reply : nil
            }
            #expect(refused.error == "CHANNEL_DISABLED")
            let after = try await OperationsTests.metrics(stack, .gateway)
            let missesAfter = OperationsTests.sample(after, "notify_cache_requests_total", ["cache": "directory_user", "result": "miss"]) ?? 0
            #expect(missesAfter > missesBefore, "the refusal came from a new lookup after the cached answer expired")
        }
    }

    @Test("unknown user or template is 404; a user who turns a channel or category off gets 422 CHANNEL_DISABLED")
    func recipientChecks() async throws {
        try await RouterHarness.with(.gateway) { stack in
            _ = try await Self.prepare(stack)
            try await stack.createTemplate([
                "code": "promo", "name": "Promo", "channel": "email", "category": "marketing", "subject": "Sale", "body": "Sale",
            ])
            try await stack.createTemplate(["code": "ping", "name": "Ping", "channel": "push", "title": "Ping", "body": "Ping"])
            let unknown = try await stack.send(Self.valid(UUID().uuidString))
            #expect(unknown.status == 404)
            #expect(unknown.error == "USER_NOT_FOUND")
            var noTemplate = Self.valid(try await stack.createUser())
            noTemplate["template_code"] = "nope"
            let missingTemplate = try await stack.send(noTemplate)
            #expect(missingTemplate.status == 404)
            #expect(missingTemplate.error == "TEMPLATE_NOT_FOUND")

            // The user turns email off: the next email is refused, a push is still accepted.
            let user = try await stack.createUser()
            #expect(try await stack.send(Self.valid(user)).status == 202)
            let off = try await stack.setPreferences(user, ["email": false])
            #expect(off.status == 200)
            var second = Self.valid(user)
            second["request_id"] = "r-2"
            let refused = try await stack.send(second)
            #expect(refused.status == 422)
            #expect(refused.error == "CHANNEL_DISABLED")
            #expect(try await stack.send(Self.valid(user)).status == 200, "a replay of the earlier request still returns it")
            var push = Self.valid(user)
            push["notification_type"] = "push"
            push["template_code"] = "ping"
            push["request_id"] = "r-push"
            #expect(try await stack.send(push).status == 202, "push stays on")
            var wrongChannel = push
            wrongChannel["template_code"] = "welcome"
            wrongChannel["request_id"] = "r-wrong"
            let mismatch = try await stack.send(wrongChannel)
            #expect(mismatch.status == 404, "welcome is an email template: there is no push template of that code")
            #expect(mismatch.error == "TEMPLATE_NOT_FOUND")

            // A category opt-out: marketing email off, transactional email still on.
            let shopper = try await stack.createUser()
            _ = try await stack.setPreferences(shopper, ["categories": ["marketing": ["email": false]]])
            var promo = Self.valid(shopper)
            promo["template_code"] = "promo"
            promo["request_id"] = "r-promo"
            let promoReply = try await stack.send(promo)
            #expect(promoReply.status == 422)
            #expect(promoReply.error == "CHANNEL_DISABLED")
            var welcome = Self.valid(shopper)
            welcome["request_id"] = "r-welcome"
            #expect(try await stack.send(welcome).status == 202)
        }
    }

    @Test("with the user service down the gateway answers 503 DEPENDENCY_UNAVAILABLE at once, and accepts nothing")
    func usersDown() async throws {
        try await Stack.with(services: [.users, .templates, .gateway]) { stack in
            let user = try await Self.prepare(stack)
            await stack.stop(.users)
            let started = ContinuousClock.now
            let reply = try await stack.send(Self.valid(user))
            #expect(reply.status == 503)
            #expect(reply.error == "DEPENDENCY_UNAVAILABLE")
            // A refused connection fails at once; the 2 s lookup deadline bounds anything slower.
            #expect(ContinuousClock.now - started < .seconds(8))
            let stored: Int? = try await stack.scalar("SELECT count(*)::int FROM notifications")
            #expect(stored == 0)
        }
    }

    @Test("unknown notifications and unknown paths are 404 in the envelope; health answers without a credential")
    func notFoundAndHealth() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let unknown = try await stack.notification(UUID().uuidString)
            #expect(unknown.status == 404)
            #expect(unknown.error == "NOTIFICATION_NOT_FOUND")
            let path = try await stack.call(.GET, "\(stack.url(.gateway))/api/v1/nothing-here", headers: stack.clientAuth)
            #expect(path.status == 404)
            #expect(path.json["success"] as? Bool == false)
            let health = try await stack.call(.GET, "\(stack.url(.gateway))/health")
            #expect(health.status == 200)
            #expect(health.data["status"] as? String == "up")
            #expect((health.data["checks"] as? [String: Any])?["postgres"] != nil)
            let versioned = try await stack.call(.GET, "\(stack.url(.gateway))/api/v1/health/")
            #expect(versioned.status == 200)
        }
    }
}
