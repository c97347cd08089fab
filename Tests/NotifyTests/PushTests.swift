import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import NotifyConfig
import PostgresNIO
import PushTransport
import Testing

/// Push delivery against local servers that speak FCM HTTP v1 (with its OAuth2 token endpoint) and Web Push.
@Suite("Push delivery", .serialized)
struct PushTests {
    static let services: [Stack.Service] = [.users, .templates, .gateway, .relay, .pushWorker]

    static func template(_ stack: Stack) async throws {
        try await stack.createTemplate([
            "code": "rich", "name": "Rich", "channel": "push", "title": "Hi {{name}}", "body": "Your order {{order}} shipped",
            "image_url": "https://img.example.com/{{order}}.png", "link": "https://example.com/orders/{{order}}",
            "data": ["screen": "orders", "order_id": "{{order}}"],
        ])
    }

    static func addDevice(_ stack: Stack, _ userID: String, _ body: [String: Any]) async throws -> String {
        let reply = try await stack.call(.POST, "\(stack.url(.users))/api/v1/users/\(userID)/devices/", json: body, headers: stack.serviceAuth)
        guard reply.status == 201, let id = reply.data["device_id"] as? String else { throw UnexpectedReply(reply: reply.json, status: reply.status) }
        return id
    }

    static func push(_ stack: Stack, _ userID: String, _ requestID: String, priority: Int = 0) async throws -> String {
        let reply = try await stack.send([
            "notification_type": "push", "user_id": userID, "template_code": "rich", "variables": ["name": "Ada", "order": "A-17"],
            "request_id": requestID, "priority": priority,
        ])
        guard reply.status == 202, let id = reply.data["notification_id"] as? String else {
            throw UnexpectedReply(reply: reply.json, status: reply.status)
        }
        return id
    }

    static func devices(_ stack: Stack, _ userID: String) async throws -> [[String: Any]] {
        try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(userID)/devices/", headers: stack.serviceAuth).json["data"]
            as? [[String: Any]] ?? []
    }

    @Test("FCM v1: one OAuth2 token for many sends; rich message mapped; a dead token deactivates its device; others still get it")
    func fcmDelivery() async throws {
        try await Stack.with(services: Self.services) { stack in
            try await Self.template(stack)
            let userID = try await stack.createUser(pushToken: "good-\(UUID().uuidString)")
            let dead = try await Self.addDevice(stack, userID, ["platform": "fcm", "token": "dead-\(UUID().uuidString)"])
            let first = try await Self.push(stack, userID, "f-1", priority: 9)
            let shown = try await stack.waitForStatus(first, "sent")
            let deliveries = try #require(shown["deliveries"] as? [[String: Any]])
            #expect(deliveries.count == 2)
            let deadOutcome = try #require(deliveries.first { $0["device_id"] as? String == dead })
            #expect(deadOutcome["outcome"] as? String == "rejected")
            #expect(deadOutcome["device_deactivated"] as? Bool == true)
            #expect(deadOutcome["error_code"] as? String == "device_gone", "FCM's UNREGISTERED, as a stable code")
            #expect(
                deliveries.contains {
                    $0["outcome"] as? String == "accepted"
                        && ($0["provider_message_id"] as? String)?.hasPrefix("projects/test-project/messages/") == true
                }
            )

            // The dead device is deactivated in the user service, with the provider's reason.
            let device = try #require(try await Self.devices(stack, userID).first { $0["device_id"] as? String == dead })
            #expect(device["active"] as? Bool == false)

            // The rich message, as FCM v1 wants it.
            let message = try #require(stack.fcm.messages().compactMap { $0["message"] as? [String: Any] }.first)
            let notification = try #require(message["notification"] as? [String: Any])
            #expect(notification["title"] as? String == "Hi Ada")
            #expect(notification["body"] as? String == "Your order A-17 shipped")
            #expect(notification["image"] as? String == "https://img.example.com/A-17.png")
            let data = try #require(message["data"] as? [String: String])
            #expect(data["link"] == "https://example.com/orders/A-17")
            #expect(data["screen"] == "orders")
            #expect(data["order_id"] == "A-17")
            #expect(data["notification_id"] == first)
            #expect((message["android"] as? [String: Any])?["priority"] as? String == "HIGH")
            #expect(
                ((message["webpush"] as? [String: Any])?["fcm_options"] as? [String: Any])?["link"] as? String == "https://example.com/orders/A-17"
            )
            #expect(((message["apns"] as? [String: Any])?["headers"] as? [String: Any])?["apns-priority"] as? String == "10")

            // More sends reuse the cached access token and reach only the live device.
            let more = [try await Self.push(stack, userID, "f-2"), try await Self.push(stack, userID, "f-3")]
            for id in more { _ = try await stack.waitForStatus(id, "sent") }
            #expect(stack.fcm.tokenRequests.withLockedValue { $0 } == 1)
            let deadSends = stack.fcm.attempts.withLockedValue { $0 }.filter { $0.token.hasPrefix("dead-") }.count
            #expect(deadSends == 1)
            let rows = try await stack.scalar("SELECT count(*)::int FROM push_deliveries", as: Int.self)
            #expect(rows == 4)
        }
    }

    @Test("FCM v1: 503 is retried after its Retry-After; an invalid token fails the notification and deactivates the device")
    func fcmErrors() async throws {
        try await Stack.with(services: Self.services, extra: ["NOTIFY_RETRY_BASE_MS": "100"]) { stack in
            try await Self.template(stack)
            let flakyUser = try await stack.createUser(pushToken: "flaky-\(UUID().uuidString)")
            let id = try await Self.push(stack, flakyUser, "flaky")
            let sent = try await stack.waitForStatus(id, "sent")
            #expect(sent["attempts"] as? Int == 2)
            let deliveries = try #require(sent["deliveries"] as? [[String: Any]])
            #expect(deliveries.map { $0["outcome"] as? String } == ["failed", "accepted"])
            #expect(deliveries.first?["error_code"] as? String == "provider_unavailable", "FCM's 503")
            let history = (sent["history"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? String }
            #expect(history.contains("retrying"))
            // The retry waited for the provider's Retry-After (1 s).
            let gap = try await stack.scalar(
                """
                SELECT extract(epoch FROM max(at) - min(at))::float8 FROM push_deliveries WHERE notification_id = \(UUID(uuidString: id)!)
                """,
                as: Double.self
            )
            #expect((gap ?? 0) >= 0.9)

            let invalidUser = try await stack.createUser(pushToken: "invalid-\(UUID().uuidString)")
            let refused = try await Self.push(stack, invalidUser, "invalid")
            let failed = try await stack.waitForStatus(refused, "failed")
            #expect(failed["attempts"] as? Int == 1)
            #expect((failed["last_error"] as? String)?.contains("device_gone") == true, "an INVALID_ARGUMENT about the token")
            #expect(try await Self.devices(stack, invalidUser).allSatisfy { $0["active"] as? Bool == false })
        }
    }

    @Test("Web Push: VAPID-signed, aes128gcm-encrypted; an independent implementation decrypts it and verifies the JWT; 410 deactivates")
    func webPush() async throws {
        try await Stack.with(services: Self.services) { stack in
            try await Self.template(stack)
            let userID = try await stack.createUser()
            let browser = P256.KeyAgreement.PrivateKey()
            let auth = Data((0..<16).map { _ in UInt8.random(in: 0...255) })
            let keys = ["p256dh": Base64URL.encode(browser.publicKey.x963Representation), "auth": Base64URL.encode(auth)]
            let live = try await Self.addDevice(stack, userID, ["platform": "webpush", "endpoint": "\(stack.fcm.url)/webpush/sub-1", "keys": keys])
            let gone = try await Self.addDevice(stack, userID, ["platform": "webpush", "endpoint": "\(stack.fcm.url)/webpush/gone-1", "keys": keys])
            let id = try await Self.push(stack, userID, "wp-1", priority: 8)
            let shown = try await stack.waitForStatus(id, "sent")
            let deliveries = try #require(shown["deliveries"] as? [[String: Any]])
            #expect(deliveries.first { $0["device_id"] as? String == live }?["outcome"] as? String == "accepted")
            #expect(deliveries.first { $0["device_id"] as? String == gone }?["device_deactivated"] as? Bool == true)
            #expect(try await Self.devices(stack, userID).first { $0["device_id"] as? String == gone }?["active"] as? Bool == false)

            let request = try #require(stack.fcm.webPushes.withLockedValue { $0 }.first { $0.id == "sub-1" })
            #expect(request.contentEncoding == "aes128gcm")
            #expect(request.ttl == "86400")
            #expect(request.urgency == "high")
            let verified = try WebPushVerifier.verify(
                body: request.body,
                authorization: request.authorization,
                endpoint: "\(stack.fcm.url)/webpush/sub-1",
                browserKey: browser,
                auth: auth
            )
            let payload = try #require(verified["payload"] as? [String: Any])
            #expect(payload["title"] as? String == "Hi Ada")
            #expect(payload["body"] as? String == "Your order A-17 shipped")
            #expect(payload["url"] as? String == "https://example.com/orders/A-17")
            #expect(payload["image"] as? String == "https://img.example.com/A-17.png")
            #expect(payload["notification_id"] as? String == id)
            #expect((payload["data"] as? [String: Any])?["order_id"] as? String == "A-17")
            let claims = try #require(verified["claims"] as? [String: Any])
            #expect(claims["aud"] as? String == stack.fcm.url)
            #expect(claims["sub"] as? String == Stack.vapidSubject)
            let vapid = try VAPIDKey(privateKeyBase64URL: Stack.vapidPrivateKey, subject: Stack.vapidSubject)
            #expect(verified["vapid_public_key"] as? String == vapid.publicKeyBase64URL)
            #expect(verified["record_size"] as? Int == 4096)
        }
    }

    @Test(
        "Web Push against hostile endpoints: no redirect followed, no foreign Location or provider text handed out; the worker refuses an internal address it is given"
    )
    func hostileWebPush() async throws {
        try await Stack.with(services: Self.services) { stack in
            try await Self.template(stack)
            let browser = P256.KeyAgreement.PrivateKey()
            let keys = ["p256dh": Base64URL.encode(browser.publicKey.x963Representation), "auth": Base64URL.encode(Data(repeating: 7, count: 16))]
            let userID = try await stack.createUser()
            var devices: [String: String] = [:]
            for name in ["redirect-1", "leaky-1", "bad-1"] {
                devices[name] = try await Self.addDevice(
                    stack,
                    userID,
                    ["platform": "webpush", "endpoint": "\(stack.fcm.url)/webpush/\(name)", "keys": keys]
                )
            }
            let id = try await Self.push(stack, userID, "hostile-1")
            let shown = try await stack.waitForStatus(id, "sent")
            let deliveries = try #require(shown["deliveries"] as? [[String: Any]])
            func delivery(_ name: String) -> [String: Any]? { deliveries.first { $0["device_id"] as? String == devices[name] } }
            #expect(delivery("redirect-1")?["outcome"] as? String == "rejected")
            #expect(delivery("redirect-1")?["error_code"] as? String == "redirected")
            #expect(delivery("leaky-1")?["outcome"] as? String == "accepted")
            let leakyID = delivery("leaky-1")?["provider_message_id"] as? String
            #expect(leakyID == nil || leakyID == "", "a Location on another host is not handed out")
            #expect(delivery("bad-1")?["error_code"] as? String == "rejected_by_provider")
            #expect(delivery("bad-1")?["error"] as? String == "the provider refused the message")
            let text = String(decoding: try JSONSerialization.data(withJSONObject: shown), as: UTF8.self)
            for leaked in ["169.254.169.254", "secret-provider-detail", "webpush answered", "internal-redirect"] {
                #expect(!text.contains(leaked), "\(leaked) must not reach the client")
            }
            let requests = stack.fcm.webPushes.withLockedValue { $0.map(\.id) }
            #expect(requests.contains("redirect-1"))
            #expect(!requests.contains { $0.hasPrefix("internal-") }, "the redirect was followed: \(requests)")

            // Registered while loopback was allowed, sent by a worker where it is not (as if the name had been rebound
            // to an internal address): never contacted, the device deactivated.
            await stack.stop(.pushWorker)
            try stack.start(.pushWorker, extra: ["NOTIFY_WEBPUSH_ALLOW_LOOPBACK": "false"])
            try await stack.waitHealthy(.pushWorker)
            let victim = try await stack.createUser()
            let device = try await Self.addDevice(
                stack,
                victim,
                ["platform": "webpush", "endpoint": "\(stack.fcm.url)/webpush/internal-target", "keys": keys]
            )
            let refused = try await Self.push(stack, victim, "hostile-2")
            let failed = try await stack.waitForStatus(refused, "failed")
            let outcome = try #require((failed["deliveries"] as? [[String: Any]])?.first { $0["device_id"] as? String == device })
            #expect(outcome["error_code"] as? String == "endpoint_refused")
            #expect(outcome["device_deactivated"] as? Bool == true)
            #expect(!stack.fcm.webPushes.withLockedValue { $0.contains { $0.id == "internal-target" } })
        }
    }

    @Test("RFC 8291 Appendix A: our aes128gcm encryption gives exactly the RFC's message for its keys and salt")
    func rfc8291Vector() throws {
        let url = NotifyProcess.repositoryRoot.appendingPathComponent("Tests/NotifyTests/Support/rfc8291_vector.json")
        let vector = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        func bytes(_ key: String) throws -> Data { try #require((vector[key] as? String).flatMap(Base64URL.decode)) }
        let sender = try P256.KeyAgreement.PrivateKey(rawRepresentation: try bytes("as_private"))
        #expect(sender.publicKey.x963Representation == (try bytes("as_public")))
        let body = try WebPushEncryption.encrypt(
            Data((vector["plaintext"] as? String ?? "").utf8),
            p256dh: try bytes("ua_public"),
            auth: try bytes("auth_secret"),
            senderKey: sender,
            salt: try bytes("salt"),
            recordSize: UInt32(vector["record_size"] as? Int ?? 4096)
        )
        #expect(Base64URL.encode(body) == vector["body"] as? String)
    }

    @Test("APNs and OneSignal through the whole stack: each device gets its provider's message; a dead one is deactivated")
    func apnsAndOneSignal() async throws {
        try await FakeAPNs.with { apns in
            try await Stack.with(
                services: Self.services,
                extra: apns.workerSettings.merging(["NOTIFY_PUSH_PROVIDERS": "fcm,webpush,apns,onesignal"]) { $1 }
            ) { stack in
                try await Self.template(stack)
                let userID = try await stack.createUser()
                let phone = try await Self.addDevice(stack, userID, ["platform": "apns", "token": FakeAPNs.deviceToken()])
                let dead = try await Self.addDevice(stack, userID, ["platform": "apns", "token": FakeAPNs.deviceToken("dead")])
                let subscription = OneSignalTests.subscription().uppercased()
                let viaOneSignal = try await Self.addDevice(stack, userID, ["platform": "onesignal", "token": subscription])
                let refused = try await stack.call(
                    .POST,
                    "\(stack.url(.users))/api/v1/users/\(userID)/devices/",
                    json: ["platform": "onesignal", "token": "player-1"],
                    headers: stack.serviceAuth
                )
                #expect(refused.status == 400, "a OneSignal subscription id is a UUID")
                #expect(refused.details.contains { $0["field"] == "token" && $0["message"]?.contains("subscription id") == true })

                let id = try await Self.push(stack, userID, "apns-1", priority: 9)
                let shown = try await stack.waitForStatus(id, "sent")
                let deliveries = try #require(shown["deliveries"] as? [[String: Any]])
                func outcome(_ device: String) -> [String: Any]? { deliveries.first { $0["device_id"] as? String == device } }
                #expect(outcome(phone)?["outcome"] as? String == "accepted")
                #expect(outcome(phone)?["provider_message_id"] as? String == id, "apns-id is the notification id")
                #expect(outcome(viaOneSignal)?["outcome"] as? String == "accepted")
                #expect(outcome(dead)?["outcome"] as? String == "rejected")
                #expect(outcome(dead)?["error_code"] as? String == "device_gone")
                #expect(outcome(dead)?["device_deactivated"] as? Bool == true)
                let devices = try await Self.devices(stack, userID)
                #expect(devices.first { $0["device_id"] as? String == dead }?["active"] as? Bool == false)
                #expect(devices.first { $0["device_id"] as? String == phone }?["active"] as? Bool == true)

                let sent = try #require(apns.delivered.withLockedValue { $0 }.first)
                #expect(sent.headers["apns-priority"] == "10" && sent.headers["apns-push-type"] == "alert")
                #expect((sent.aps["alert"] as? [String: Any])?["title"] as? String == "Hi Ada")
                #expect(sent.json["order_id"] as? String == "A-17")
                let oneSignal = try #require(stack.fcm.oneSignalDelivered().first)
                #expect(oneSignal["include_subscription_ids"] as? [String] == [subscription.lowercased()])
                #expect((oneSignal["contents"] as? [String: String])?["en"] == "Your order A-17 shipped")
            }
        }
    }

    @Test("a push worker without its providers' credentials does not start, and says what is missing")
    func startupRefusesMissingCredentials() async throws {
        try await Stack.with(services: []) { stack in
            let noVAPID = try await stack.runCommand(
                ["push-worker"],
                environment: ["NOTIFY_FCM_SERVICE_ACCOUNT": stack.fcm.serviceAccountJSON],
                withErrors: true
            )
            #expect(noVAPID.status == 2)
            #expect(noVAPID.output.contains("NOTIFY_VAPID_PRIVATE_KEY"))
            #expect(noVAPID.output.contains("NOTIFY_VAPID_SUBJECT"))
            let noFCM = try await stack.runCommand(["push-worker"], environment: ["NOTIFY_PUSH_PROVIDERS": "fcm"], withErrors: true)
            #expect(noFCM.status == 2)
            #expect(noFCM.output.contains("NOTIFY_FCM_SERVICE_ACCOUNT"))
            let badAccount = try await stack.runCommand(
                ["push-worker"],
                environment: ["NOTIFY_PUSH_PROVIDERS": "fcm", "NOTIFY_FCM_SERVICE_ACCOUNT": #"{"project_id": "p"}"#],
                withErrors: true
            )
            #expect(badAccount.status == 2)
            #expect(badAccount.output.contains("service account"))
            #expect(!badAccount.output.contains("PRIVATE KEY"))
            let noAPNs = try await stack.runCommand(
                ["push-worker"],
                environment: ["NOTIFY_PUSH_PROVIDERS": "apns,onesignal", "NOTIFY_APNS_KEY": FakeAPNs.p8],
                withErrors: true
            )
            #expect(noAPNs.status == 2)
            for name in ["NOTIFY_APNS_KEY_ID", "NOTIFY_APNS_TEAM_ID", "NOTIFY_APNS_TOPIC", "NOTIFY_ONESIGNAL_APP_ID", "NOTIFY_ONESIGNAL_API_KEY"] {
                #expect(noAPNs.output.contains(name), "\(noAPNs.output)")
            }
            #expect(!noAPNs.output.contains("PRIVATE KEY") && !noAPNs.output.contains(FakeAPNs.signingKey.pemRepresentation.dropFirst(30).prefix(20)))
            // No built-in database or broker credentials: a process without them names what is missing.
            let noCredentials = try await stack.runCommand(
                ["relay"],
                environment: ["NOTIFY_PG_USER": "", "NOTIFY_PG_PASSWORD": "", "NOTIFY_RABBIT_USER": "", "NOTIFY_RABBIT_PASSWORD": ""],
                withErrors: true
            )
            #expect(noCredentials.status == 2)
            for name in ["NOTIFY_PG_USER", "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_USER", "NOTIFY_RABBIT_PASSWORD"] {
                #expect(noCredentials.output.contains("\(name) is required"), "\(noCredentials.output)")
            }
        }
    }
}

/// Runs Tests/NotifyTests/Support/webpush_verify.py (http_ece and py_vapid from PyPI) on what the Web Push stand-in
/// received: an implementation independent of ours decrypts the payload and verifies the VAPID JWT.
enum WebPushVerifier {
    struct Failed: Error, CustomStringConvertible {
        var description: String
    }

    static func verify(
        body: Data,
        authorization: String,
        endpoint: String,
        browserKey: P256.KeyAgreement.PrivateKey,
        auth: Data
    ) throws
        -> [String: Any]
    {
        let python = NotifyProcess.repositoryRoot.appendingPathComponent(".local/venv/bin/python").path
        guard FileManager.default.isExecutableFile(atPath: python) else { throw Failed(description: "no \(python): run deploy/local/test") }
        let input: [String: Any] = [
            "body_b64": body.base64EncodedString(), "authorization": authorization, "endpoint": endpoint,
            "ua_private_b64url": Base64URL.encode(browserKey.rawRepresentation), "auth_b64url": Base64URL.encode(auth),
        ]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: python)
        process.arguments = [NotifyProcess.repositoryRoot.appendingPathComponent("Tests/NotifyTests/Support/webpush_verify.py").path]
        let stdin = Pipe()
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardInput = stdin
        process.standardOutput = stdout
        process.standardError = stderr
        try process.run()
        stdin.fileHandleForWriting.write(try JSONSerialization.data(withJSONObject: input))
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        guard process.terminationStatus == 0, let object = try? JSONSerialization.jsonObject(with: output) as? [String: Any] else {
            throw Failed(description: "webpush_verify.py failed (\(process.terminationStatus)): \(errors)")
        }
        return object
    }
}
