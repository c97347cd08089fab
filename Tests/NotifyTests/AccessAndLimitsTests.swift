import Credentials
import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import PostgresNIO
import Testing

/// Who may call the gateway and how often: API keys managed over the admin API, users' access tokens, rate limits.
@Suite("Access and rate limits", .serialized)
struct AccessAndLimitsTests {
    static func prepare(_ stack: some ServiceClient) async throws -> String {
        try await stack.createTemplate(["code": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi", "body": "Hi {{name}}"])
        return try await stack.createUser()
    }

    static func body(_ userID: String, _ requestID: String) -> [String: Any] {
        ["notification_type": "email", "user_id": userID, "template_code": "welcome", "variables": ["name": "Ada"], "request_id": requestID]
    }

    @Test("admin API keys: created with scopes and shown once, stored as a hash with a visible prefix, listed, revoked")
    func adminKeys() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .admin], extra: ["NOTIFY_KEY_CACHE_SECONDS": "1"]) { stack in
            let user = try await Self.prepare(stack)
            // The first admin key comes from the command line; it prints the key and nothing else.
            let created = try await stack.runCommand(["admin", "create-key", "--client", "operators", "--scopes", "admin"])
            #expect(created.status == 0)
            let admin = created.output
            #expect(admin.hasPrefix("nk_"))
            #expect(try await stack.runCommand(["admin", "create-key", "--client", "x", "--scopes", "root"]).status != 0)
            let keys = "\(stack.url(.admin))/api/v1/admin/api-keys/"
            let adminAuth = ["Authorization": "Bearer \(admin)"]

            #expect(try await stack.call(.GET, keys).status == 401)
            #expect(try await stack.call(.GET, keys, headers: stack.clientAuth).status == 403)
            let bad = try await stack.call(.POST, keys, json: ["client": "", "scopes": ["notifications:write", "root"]], headers: adminAuth)
            #expect(bad.status == 400)
            #expect(Set(bad.details.compactMap { $0["field"] }) == ["client", "scopes"])

            let made = try await stack.call(
                .POST,
                keys,
                json: ["client": "billing", "name": "billing prod", "scopes": ["notifications:write", "notifications:read"]],
                headers: adminAuth
            )
            #expect(made.status == 201)
            let key = try #require(made.data["key"] as? String)
            let id = try #require(made.data["id"] as? String)
            let prefix = try #require(made.data["prefix"] as? String)
            #expect(key.hasPrefix("nk_\(prefix)_"))
            #expect(made.data["scopes"] as? [String] == ["notifications:write", "notifications:read"])

            // Only the hash is stored: no column holds the key.
            let stored = try await stack.scalar("SELECT key_hash FROM api_keys WHERE id = \(UUID(uuidString: id)!)", as: String.self)
            #expect(stored == APIKeyStore.hash(key))
            let plainCount = try await stack.scalar(
                "SELECT count(*)::int FROM api_keys WHERE position(\(key) IN (api_keys::text)) > 0",
                as: Int.self
            )
            #expect(plainCount == 0)

            // It works at the gateway, for its client.
            let sent = try await stack.send(Self.body(user, "k-1"), headers: ["Authorization": "Bearer \(key)"])
            #expect(sent.status == 202)
            #expect(try await stack.scalar("SELECT client FROM notifications WHERE request_id = 'k-1'", as: String.self) == "billing")

            // Listed without the key; shown by id without the key.
            let list = try await stack.call(.GET, keys, headers: adminAuth)
            #expect(list.status == 200)
            let items = list.json["data"] as? [[String: Any]] ?? []
            let listed = try #require(items.first { $0["id"] as? String == id })
            #expect(listed["key"] == nil)
            #expect(listed["prefix"] as? String == prefix)
            #expect(list.json["meta"].flatMap { ($0 as? [String: Any])?["total"] as? Int } == items.count)
            let shown = try await stack.call(.GET, "\(keys)\(id)/", headers: adminAuth)
            #expect(shown.status == 200)
            #expect(shown.data["key"] == nil)
            #expect(try await stack.call(.GET, "\(keys)\(UUID())/", headers: adminAuth).status == 404)

            // Revoked: gone from the default list, refused by the gateway once its short cache expires.
            let revoked = try await stack.call(.DELETE, "\(keys)\(id)/", headers: adminAuth)
            #expect(revoked.status == 200)
            #expect(revoked.data["revoked_at"] is String)
            let after = try await stack.call(.GET, keys, headers: adminAuth)
            #expect(!((after.json["data"] as? [[String: Any]] ?? []).contains { $0["id"] as? String == id }))
            let withRevoked = try await stack.call(.GET, "\(keys)?include_revoked=true", headers: adminAuth)
            #expect((withRevoked.json["data"] as? [[String: Any]] ?? []).contains { $0["id"] as? String == id })
            _ = try await eventually("revoked key refused", timeout: .seconds(10)) { () -> Bool? in
                let reply = try await stack.send(Self.body(user, "k-2"), headers: ["Authorization": "Bearer \(key)"])
                return reply.status == 401 ? true : nil
            }
        }
    }

    @Test("a user's access token: sends nothing, reads notifications addressed to that user, stops working after logout; forged tokens 401")
    func userTokens() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let ada = try await Self.prepare(stack)
            let bob = try await stack.createUser(name: "Bob")
            let email = try #require(
                try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(ada)/", headers: stack.serviceAuth).data["email"] as? String
            )
            let login = try await stack.call(
                .POST,
                "\(stack.url(.users))/api/v1/users/login/",
                json: ["email": email, "password": "correct horse battery"]
            )
            let token = try #require(login.data["access_token"] as? String)
            let auth = ["Authorization": "Bearer \(token)"]
            let gateway = "\(stack.url(.gateway))/api/v1/notifications/"

            // Default deny: not even to the user themself (any template, any variables, to an address they control).
            let own = try await stack.call(.POST, gateway, json: Self.body(ada, "u-1"), headers: auth)
            #expect(own.status == 403)
            #expect(own.error == "FORBIDDEN")
            let other = try await stack.call(.POST, gateway, json: Self.body(bob, "u-2"), headers: auth)
            #expect(other.status == 403)
            #expect(try await stack.call(.POST, "\(gateway)bulk/", json: ["notifications": [Self.body(ada, "u-3")]], headers: auth).status == 403)

            // A backend's notifications to Ada and to Bob: Ada's token sees hers only.
            let toAda = try #require(try await stack.send(Self.body(ada, "c-1")).data["notification_id"] as? String)
            let toBob = try #require(try await stack.send(Self.body(bob, "c-2")).data["notification_id"] as? String)
            let list = try await stack.call(.GET, gateway, headers: auth)
            #expect(list.status == 200)
            let ids = Set((list.json["data"] as? [[String: Any]] ?? []).compactMap { $0["notification_id"] as? String })
            #expect(ids.contains(toAda))
            #expect(!ids.contains(toBob))
            #expect(ids.count == 1)
            #expect(try await stack.call(.GET, "\(gateway)\(toAda)/", headers: auth).status == 200)
            #expect(try await stack.call(.GET, "\(gateway)\(toBob)/", headers: auth).status == 404)
            // Retrying and delivery reports are not for users.
            #expect(try await stack.call(.POST, "\(gateway)\(toAda)/retry/", headers: auth).status == 403)

            // Logout revokes the token at the user service at once, and at the gateway within its 5 s memory.
            #expect(try await stack.call(.POST, "\(stack.url(.users))/api/v1/users/logout/", headers: auth).status == 200)
            #expect(try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(ada)/", headers: auth).status == 401)
            _ = try await eventually("the gateway refuses the revoked token", timeout: .seconds(30)) { () -> Bool? in
                try await stack.call(.GET, gateway, headers: auth).status == 401 ? true : nil
            }

            var forged = token.split(separator: ".").map(String.init)
            forged[2] = String(forged[2].reversed())
            let refused = try await stack.call(.GET, gateway, headers: ["Authorization": "Bearer \(forged.joined(separator: "."))"])
            #expect(refused.status == 401)
            #expect(refused.error == "UNAUTHORIZED")
        }
    }

    @Test("per-key limit: the burst passes, the next is 429 RATE_LIMITED with Retry-After and RateLimit headers")
    func perKeyLimit() async throws {
        // Exact counts need every check to reach Redis: on a loaded machine its 200 ms default can run out, and the
        // gateway then answers from its in-process bucket (shown by the fault tests).
        let limits = ["NOTIFY_RATE_LIMIT_PER_KEY": "5/m", "NOTIFY_RATE_LIMIT_KEY_BURST": "5", "NOTIFY_REDIS_TIMEOUT_MS": "3000"]
        try await RouterHarness.with(.gateway, extra: limits) { stack in
            let user = try await Self.prepare(stack)
            var remaining: [String] = []
            for index in 0..<5 {
                let reply = try await stack.send(Self.body(user, "p-\(index)"))
                #expect(reply.status == 202)
                #expect(reply.headers.first(name: "RateLimit-Limit") == "5")
                remaining.append(reply.headers.first(name: "RateLimit-Remaining") ?? "")
            }
            #expect(remaining == ["4", "3", "2", "1", "0"])
            let refused = try await stack.send(Self.body(user, "p-5"))
            #expect(refused.status == 429)
            #expect(refused.error == "RATE_LIMITED")
            let retryAfter = try #require(refused.headers.first(name: "Retry-After").flatMap(Int.init))
            #expect((1...12).contains(retryAfter))
            #expect(refused.headers.first(name: "RateLimit-Limit") == "5")
            #expect(refused.headers.first(name: "RateLimit-Remaining") == "0")
            #expect((refused.headers.first(name: "RateLimit-Reset").flatMap(Int.init) ?? 0) > 0)
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == 5)

            // Another key has its own bucket; the limit lives in Redis.
            let other = try await stack.createKey(scopes: ["notifications:write"])
            #expect(try await stack.send(Self.body(user, "p-6"), headers: ["Authorization": "Bearer \(other)"]).status == 202)
            let keys = try await stack.redisKeys(matching: "rl:key:*")
            #expect(keys.count == 2)
        }
    }

    @Test("per-user limit: concurrent requests for one user get exactly the burst through; other users are not affected")
    func perUserLimit() async throws {
        // Exact counts need every check to reach Redis: on a loaded machine its 200 ms default can run out, and the
        // gateway then answers from its in-process bucket (shown by the fault tests).
        let limits = ["NOTIFY_RATE_LIMIT_PER_USER": "3/m", "NOTIFY_RATE_LIMIT_USER_BURST": "3", "NOTIFY_REDIS_TIMEOUT_MS": "3000"]
        try await RouterHarness.with(.gateway, extra: limits) { stack in
            let ada = try await Self.prepare(stack)
            let bob = try await stack.createUser(name: "Bob")
            let statuses = NIOLockedValueBox<[Int]>([])
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<12 {
                    group.addTask {
                        let reply = try await stack.send(Self.body(ada, "a-\(index)"))
                        statuses.withLockedValue { $0.append(reply.status) }
                    }
                }
                try await group.waitForAll()
            }
            let counts = Dictionary(grouping: statuses.withLockedValue { $0 }, by: { $0 }).mapValues(\.count)
            #expect(counts == [202: 3, 429: 9])
            #expect(try await stack.send(Self.body(bob, "b-1")).status == 202)
            // A replay of an accepted request still answers with the original, even over the limit.
            let first = try await stack.scalar(
                "SELECT request_id FROM notifications WHERE user_id = \(UUID(uuidString: ada)!) LIMIT 1",
                as: String.self
            )
            let replay = try await stack.send(Self.body(ada, try #require(first)))
            #expect(replay.status == 200)
        }
    }

    @Test(
        "a create charges its credential and its user in one script: a refused request is charged to the credential; the credential's refusal leaves the user's bucket alone"
    )
    func oneRoundTrip() async throws {
        let limits = [
            "NOTIFY_RATE_LIMIT_PER_KEY": "4/m", "NOTIFY_RATE_LIMIT_KEY_BURST": "4", "NOTIFY_RATE_LIMIT_PER_USER": "2/m",
            "NOTIFY_RATE_LIMIT_USER_BURST": "2", "NOTIFY_REDIS_TIMEOUT_MS": "3000",
        ]
        try await RouterHarness.with(.gateway, extra: limits) { stack in
            let ada = try await Self.prepare(stack)
            let bob = try await stack.createUser(name: "Bob")
            // Invalid (400): charged to the credential all the same.
            var invalid = Self.body(ada, "i-1")
            invalid["priority"] = "high"
            #expect(try await stack.send(invalid).status == 400)
            let first = try await stack.send(Self.body(ada, "a-1"))
            #expect(first.status == 202)
            #expect(first.headers.first(name: "RateLimit-Remaining") == "2", "the credential's bucket: 4 - 400 - this one")
            #expect(try await stack.send(Self.body(ada, "a-2")).headers.first(name: "RateLimit-Remaining") == "1")
            // Ada's bucket refuses; the credential's was charged before it.
            let userRefused = try await stack.send(Self.body(ada, "a-3"))
            #expect(userRefused.status == 429)
            #expect((userRefused.json["message"] as? String)?.contains("this user") == true)
            #expect(try await stack.redisKeys(matching: "rl:user:*").count == 1)
            // The credential's bucket is empty now: Bob's request is refused by it, and Bob's bucket is not touched.
            let keyRefused = try await stack.send(Self.body(bob, "b-1"))
            #expect(keyRefused.status == 429)
            #expect((keyRefused.json["message"] as? String)?.contains("credential") == true)
            #expect(keyRefused.headers.first(name: "RateLimit-Limit") == "4")
            #expect(try await stack.redisKeys(matching: "rl:user:*").count == 1)
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == 2)
        }
    }

    @Test("a bad Redis timeout stops the gateway, the user service and the template service at start, exit code 2, naming it")
    func badRedisTimeout() async throws {
        try await Stack.with(services: []) { stack in
            // Each also gets a port that is no port, so that a missing check fails the test at once instead of
            // leaving a server running.
            for (command, port, timeout, problem) in [
                ("gateway", "NOTIFY_GATEWAY_PORT", "0", "NOTIFY_REDIS_TIMEOUT_MS must be at least 1"),
                ("users", "NOTIFY_USERS_PORT", "0", "NOTIFY_REDIS_TIMEOUT_MS must be at least 1"),
                ("templates", "NOTIFY_TEMPLATES_PORT", "soon", "NOTIFY_REDIS_TIMEOUT_MS must be an integer"),
            ] {
                let (status, output) = try await stack.runCommand(
                    [command],
                    environment: ["NOTIFY_REDIS_TIMEOUT_MS": timeout, port: "none"],
                    withErrors: true
                )
                #expect(status == 2, "\(command): \(output)")
                #expect(output.contains(problem), "\(command): \(output)")
            }
        }
    }
}
