import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import PostgresNIO
import Testing

/// SMS end to end: gateway → relay → RabbitMQ → `notify sms-worker` → the Twilio and Vonage stand-ins → Twilio's
/// signed status callback → the notification's history; STOP replies; the PostgreSQL path with the broker down.
@Suite("SMS", .serialized)
struct SMSTests {
    static let services: [Stack.Service] = [.users, .templates, .gateway, .relay, .smsWorker]

    static func template(_ stack: Stack) async throws {
        try await stack.createTemplate(["code": "otp", "name": "One-time code", "channel": "sms", "body": "Your code is {{code}}"])
    }

    static func user(_ stack: Stack, phone: String?, sms: Bool = true) async throws -> String {
        var body: [String: Any] = [
            "name": "Ada", "email": "ada.\(UUID().uuidString.prefix(8))@example.com", "password": "correct horse battery",
            "preferences": ["email": true, "push": true, "sms": sms],
        ]
        if let phone { body["phone"] = phone }
        let reply = try await stack.call(.POST, "\(stack.url(.users))/api/v1/users/", json: body, headers: stack.serviceAuth)
        guard reply.status == 201, let id = reply.data["user_id"] as? String else { throw UnexpectedReply(reply: reply.json, status: reply.status) }
        return id
    }

    static func send(_ stack: Stack, _ userID: String, _ requestID: String, code: String = "123456") async throws -> Stack.Reply {
        try await stack.send([
            "notification_type": "sms", "user_id": userID, "template_code": "otp", "variables": ["code": code], "request_id": requestID,
        ])
    }

    static func accepted(_ reply: Stack.Reply) throws -> String {
        guard reply.status == 202, let id = reply.data["notification_id"] as? String else {
            throw UnexpectedReply(reply: reply.json, status: reply.status)
        }
        return id
    }

    static func random(_ suffix: String) -> String { "+1415\(Int.random(in: 100...999))\(suffix)" }

    @Test("an SMS through Twilio; a forged status callback changes nothing; the signed one makes it delivered, once")
    func endToEnd() async throws {
        try await Stack.with(services: Self.services) { stack in
            try await Self.template(stack)
            let phone = Self.random("5123")
            let userID = try await Self.user(stack, phone: phone.replacingOccurrences(of: "+1415", with: "+1 (415) "))
            let id = try Self.accepted(try await Self.send(stack, userID, "otp-1"))
            let sent = try await stack.waitForStatus(id, "sent")
            let attempts = try #require(sent["provider_attempts"] as? [[String: Any]])
            #expect(attempts.count == 1)
            #expect(attempts.first?["provider"] as? String == "twilio" && attempts.first?["outcome"] as? String == "accepted")
            let sid = try #require(attempts.first?["provider_message_id"] as? String)
            let message = try #require(stack.sms.sent(id: sid))
            #expect(message.to == phone, "stored in E.164 whatever the spelling it was given in")
            #expect(message.from == "+15005550006")
            #expect(message.body == "Your code is 123456")
            let callback = try #require(message.statusCallback)
            #expect(callback == "\(stack.url(.gateway))/api/v1/webhooks/sms/twilio/status?notification_id=\(id)")

            // Signed with another token: refused, nothing changes.
            let forged = try await stack.sms.sendStatusCallback(to: callback, sid: sid, status: "delivered", signWith: "not-the-token")
            #expect(forged == 401)
            // Signed correctly but for another notification's URL: the signature covers the URL, so refused too.
            let other = callback.replacingOccurrences(of: id, with: UUID().uuidString.lowercased())
            #expect(try await stack.sms.sendStatusCallback(to: other, sid: sid, status: "delivered", signWith: "not-the-token") == 401)
            #expect(try await stack.waitForStatus(id, "sent")["status"] as? String == "sent")

            let queued = try await stack.sms.sendStatusCallback(to: callback, sid: sid, status: "sent", signWith: FakeSMSProviders.authToken)
            #expect(queued == 200)
            let real = try await stack.sms.sendStatusCallback(to: callback, sid: sid, status: "delivered", signWith: FakeSMSProviders.authToken)
            #expect(real == 200)
            let delivered = try await stack.waitForStatus(id, "delivered")
            let history = (delivered["history"] as? [[String: Any]] ?? [])
            #expect(history.contains { $0["status"] as? String == "delivered" && ($0["cause"] as? String)?.contains("twilio") == true })
            // Twilio calls at least once: the same report again is a duplicate.
            #expect(try await stack.sms.sendStatusCallback(to: callback, sid: sid, status: "delivered", signWith: FakeSMSProviders.authToken) == 200)
            #expect(try await stack.scalar("SELECT count(*)::int FROM sms_events WHERE provider_message_id = \(sid)", as: Int.self) == 2)
            let events = try await stack.scalar(
                "SELECT count(*)::int FROM notification_events WHERE notification_id = \(UUID(uuidString: id)!) AND to_status = 'delivered'",
                as: Int.self
            )
            #expect(events == 1)
            // Operators see the same in SQL.
            let reported = try await stack.scalar(
                "SELECT provider || ' ' || provider_status FROM sms_overview WHERE notification_id = \(UUID(uuidString: id)!)",
                as: String.self
            )
            #expect(reported == "twilio delivered")

            // The render preview says how the text travels.
            let preview = try await stack.call(
                .POST,
                "\(stack.url(.templates))/api/v1/templates/otp/render/",
                json: ["variables": ["code": String(repeating: "7", count: 150)]],
                headers: stack.serviceAuth
            )
            let info = try #require(preview.data["sms"] as? [String: Any])
            #expect(info["encoding"] as? String == "GSM-7" && info["characters"] as? Int == 163 && info["segments"] as? Int == 2)
        }
    }

    @Test("failover to Vonage on a Twilio outage; a bad number fails at once; undelivered carries the carrier's code; STOP suppresses, START lifts")
    func failuresAndOptOut() async throws {
        try await Stack.with(services: Self.services, extra: ["NOTIFY_SMS_PROVIDERS": "twilio,vonage", "NOTIFY_RETRY_BASE_MS": "100"]) { stack in
            try await Self.template(stack)
            // Twilio answers 503 for this number: Vonage takes it in the same attempt.
            let outage = try await Self.user(stack, phone: Self.random("0503"))
            let failedOver = try await stack.waitForStatus(try Self.accepted(try await Self.send(stack, outage, "outage")), "sent")
            let attempts = try #require(failedOver["provider_attempts"] as? [[String: Any]])
            #expect(attempts.map { $0["provider"] as? String } == ["twilio", "vonage"])
            #expect(attempts.map { $0["outcome"] as? String } == ["failed", "accepted"])
            #expect(attempts.first?["error_code"] as? String == "provider_unavailable")

            // Twilio says the number is invalid: permanent, Vonage is not asked.
            let vonageBefore = stack.sms.requestCount("vonage")
            let invalid = try await Self.user(stack, phone: Self.random("0000"))
            let failed = try await stack.waitForStatus(try Self.accepted(try await Self.send(stack, invalid, "invalid")), "failed")
            #expect(failed["attempts"] as? Int == 1)
            #expect((failed["provider_attempts"] as? [[String: Any]])?.first?["error_code"] as? String == "invalid_number")
            #expect(stack.sms.requestCount("vonage") == vonageBefore)

            // Accepted by Twilio, then the carrier could not deliver it.
            let phone = Self.random("7788")
            let userID = try await Self.user(stack, phone: phone)
            let id = try Self.accepted(try await Self.send(stack, userID, "carrier"))
            let sent = try await stack.waitForStatus(id, "sent")
            let sid = try #require((sent["provider_attempts"] as? [[String: Any]])?.first?["provider_message_id"] as? String)
            let callback = "\(stack.url(.gateway))/api/v1/webhooks/sms/twilio/status?notification_id=\(id)"
            let status = try await stack.sms.sendStatusCallback(
                to: callback,
                sid: sid,
                status: "undelivered",
                errorCode: "30003",
                signWith: FakeSMSProviders.authToken
            )
            #expect(status == 200)
            let undelivered = try await stack.waitForStatus(id, "undelivered")
            #expect((undelivered["last_error"] as? String)?.contains("30003") == true)
            #expect(
                (undelivered["history"] as? [[String: Any]] ?? []).contains { ($0["cause"] as? String)?.contains("carrier error 30003") == true }
            )

            // The user replies STOP: the number is suppressed, and the gateway refuses the next SMS.
            let inbound = "\(stack.url(.gateway))/api/v1/webhooks/sms/twilio/inbound"
            #expect(try await stack.sms.sendInbound(to: inbound, from: phone, to: FakeSMSProviders.from, body: "stop", signWith: "wrong") == 401)
            #expect(try Self.accepted(try await Self.send(stack, userID, "before-stop")) != "")
            #expect(
                try await stack.sms.sendInbound(
                    to: inbound,
                    from: phone,
                    to: FakeSMSProviders.from,
                    body: " STOP ",
                    signWith: FakeSMSProviders.authToken
                )
                    == 200
            )
            let refused = try await Self.send(stack, userID, "after-stop")
            #expect(refused.status == 422)
            #expect(refused.json["error"] as? String == "RECIPIENT_SUPPRESSED")
            #expect((refused.json["message"] as? String)?.contains("STOP") == true)
            #expect((refused.json["message"] as? String)?.contains(phone) == false, "the number is not echoed")
            #expect(try await stack.scalar("SELECT reason FROM suppressions WHERE address = \(phone)", as: String.self) == "opt_out")
            // START lifts it.
            #expect(
                try await stack.sms.sendInbound(
                    to: inbound,
                    from: phone,
                    to: FakeSMSProviders.from,
                    body: "START",
                    signWith: FakeSMSProviders.authToken
                )
                    == 200
            )
            _ = try await stack.waitForStatus(try Self.accepted(try await Self.send(stack, userID, "after-start")), "sent")

            // No number, or SMS turned off: refused at the gateway with a reason.
            let noPhone = try await Self.send(stack, try await Self.user(stack, phone: nil), "no-phone")
            #expect(noPhone.status == 422 && noPhone.json["error"] as? String == "NO_PHONE_NUMBER")
            let off = try await Self.send(stack, try await Self.user(stack, phone: Self.random("4455"), sms: false), "off")
            #expect(off.status == 422 && off.json["error"] as? String == "CHANNEL_DISABLED")
        }
    }

    @Test("with RabbitMQ out of reach the SMS worker sends from PostgreSQL, and the callback still lands")
    func brokerDown() async throws {
        try await Stack.with(services: [.users, .templates, .gateway]) { stack in
            try await Self.template(stack)
            let worker = try await stack.startReplica(.smsWorker, name: "sms-fallback", extra: ["NOTIFY_AMQP_PORT": "1"])
            _ = try await eventually("the SMS worker's broker circuit open") { () -> Bool? in
                let health = try await stack.call(.GET, "\(worker)/health")
                let circuit = (health.data["checks"] as? [String: Any])?["circuit:rabbitmq"] as? [String: Any]
                return circuit?["status"] as? String != nil && circuit?["status"] as? String != "up" ? true : nil
            }
            let userID = try await Self.user(stack, phone: Self.random("6611"))
            let id = try Self.accepted(try await Self.send(stack, userID, "fallback"))
            let sent = try await stack.waitForStatus(id, "sent", timeout: .seconds(60))
            let sid = try #require((sent["provider_attempts"] as? [[String: Any]])?.first?["provider_message_id"] as? String)
            #expect(
                try await stack.scalar("SELECT attempted_via FROM jobs WHERE notification_id = \(UUID(uuidString: id)!)", as: String.self)
                    == "fallback"
            )
            let callback = try #require(stack.sms.sent(id: sid)?.statusCallback)
            #expect(try await stack.sms.sendStatusCallback(to: callback, sid: sid, status: "delivered", signWith: FakeSMSProviders.authToken) == 200)
            _ = try await stack.waitForStatus(id, "delivered")
        }
    }

    @Test("scale-out: two SMS workers share 400 messages; each is sent exactly once and both took part")
    func scaleOut() async throws {
        try await Stack.with(services: Self.services, extra: ["NOTIFY_RATE_LIMIT_USER_BURST": "1000"]) { stack in
            try await Self.template(stack)
            _ = try await stack.startReplica(.smsWorker, name: "sms-worker-2")
            let userID = try await Self.user(stack, phone: Self.random("2468"))
            var ids: [String] = []
            for batch in 0..<4 {
                let items: [[String: Any]] = (0..<100).map { index in
                    let n = batch * 100 + index
                    return [
                        "notification_type": "sms", "user_id": userID, "template_code": "otp", "variables": ["code": "c\(n)"],
                        "request_id": "scale-\(n)",
                    ]
                }
                let reply = try await stack.call(
                    .POST,
                    "\(stack.url(.gateway))/api/v1/notifications/bulk/",
                    json: ["notifications": items],
                    headers: stack.clientAuth
                )
                #expect(reply.data["accepted"] as? Int == 100, "\(reply.json)")
                ids += (reply.data["results"] as? [[String: Any]] ?? []).compactMap { ($0["data"] as? [String: Any])?["notification_id"] as? String }
            }
            #expect(ids.count == 400)
            _ = try await eventually("400 SMS sent", timeout: .seconds(120)) { () -> Bool? in
                try await stack.scalar("SELECT count(*)::int FROM notifications WHERE channel = 'sms' AND status = 'sent'", as: Int.self) == 400
                    ? true : nil
            }
            let bodies = stack.sms.sent.withLockedValue { $0 }.map(\.body)
            #expect(bodies.count == 400, "none sent twice")
            #expect(Set(bodies) == Set((0..<400).map { "Your code is c\($0)" }))
            let workers = try await stack.scalar(
                "SELECT count(DISTINCT attempted_by)::int FROM jobs WHERE queue = 'sms' AND state = 'completed'",
                as: Int.self
            )
            #expect(workers == 2, "both workers took part")
        }
    }
}
