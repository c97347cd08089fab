import Foundation
import NIOConcurrencyHelpers
import NIOHTTP1
import PostgresNIO
import Testing

/// `recipient` instead of `user_id` (seed 004): a notification to an email address, a phone number or a push
/// destination. No preferences apply (the client owns consent); the suppression list, idempotency, per-recipient
/// rate limits, bulk, scheduling and status work as for users.
@Suite("Recipients")
struct RecipientTests {
    static func templates(_ stack: some ServiceClient) async throws {
        try await stack.createTemplate([
            "code": "promo", "name": "Promo", "channel": "email", "category": "marketing", "subject": "Hi {{name}}", "body": "Offer for {{name}}",
        ])
        try await stack.createTemplate(["code": "otp", "name": "Code", "channel": "sms", "body": "Your code is {{code}}"])
        try await stack.createTemplate(["code": "ping", "name": "Ping", "channel": "push", "title": "Hi {{name}}", "body": "Ping"])
    }

    static func email(_ recipient: Any, _ requestID: String, extra: [String: Any] = [:]) -> [String: Any] {
        ["notification_type": "email", "recipient": recipient, "template_code": "promo", "variables": ["name": "Ada"], "request_id": requestID]
            .merging(extra) { $1 }
    }

    @Test(
        "validation: exactly one of user_id and recipient; per channel an address, an E.164 number or a push destination; internal endpoints refused"
    )
    func validation() async throws {
        try await RouterHarness.with(.gateway) { stack in
            try await Self.templates(stack)
            let user = try await stack.createUser()
            var both = Self.email("ada@example.com", "both")
            both["user_id"] = user
            let twice = try await stack.send(both)
            #expect(twice.status == 400)
            #expect(twice.details.map { $0["field"] } == ["recipient"], "\(twice.json)")
            let neither = try await stack.send(["notification_type": "email", "template_code": "promo", "request_id": "neither"])
            #expect(neither.status == 400)
            #expect(neither.details.first?["field"] == "user_id")
            #expect((neither.details.first?["message"])?.contains("recipient") == true)

            let cases: [(body: [String: Any], field: String)] = [
                (Self.email("not an address", "bad-email"), "recipient"),
                (Self.email(["email": "ada@example.com"], "object-email"), "recipient"),
                (["notification_type": "sms", "recipient": "0415 555 0100", "template_code": "otp", "request_id": "bad-phone"], "recipient"),
                (["notification_type": "push", "recipient": "has spaces in it", "template_code": "ping", "request_id": "bad-token"], "recipient"),
                (
                    [
                        "notification_type": "push", "recipient": ["platform": "apns", "token": "xyz"], "template_code": "ping",
                        "request_id": "bad-apns",
                    ], "recipient.token"
                ),
                (
                    [
                        "notification_type": "push", "recipient": ["platform": "pigeon", "token": "abc"], "template_code": "ping",
                        "request_id": "bad-platform",
                    ], "recipient.platform"
                ),
                (
                    [
                        "notification_type": "push", "template_code": "ping", "request_id": "internal",
                        "recipient": [
                            "platform": "webpush", "endpoint": "https://10.0.0.7/push/1",
                            "keys": ["p256dh": "BN" + String(repeating: "A", count: 85), "auth": "AAAAAAAAAAAAAAAAAAAAAA"],
                        ],
                    ], "recipient.endpoint"
                ),
                (Self.email("ada@example.com", "with-deliver-to", extra: ["deliver_to": ["email": "other@example.com"]]), "deliver_to"),
            ]
            for (body, field) in cases {
                let reply = try await stack.send(body)
                #expect(reply.status == 400, "\(body): \(reply.json)")
                #expect(reply.details.contains { $0["field"] == field }, "\(body): \(reply.details)")
            }
            // Nothing refused was written.
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == 0)
        }
    }

    @Test("an address is accepted without a user: status shows it; idempotent; suppressed refused; limited per recipient; bulk and scheduling too")
    func accepted() async throws {
        try await RouterHarness.with(.gateway, extra: ["NOTIFY_RATE_LIMIT_PER_USER": "4/m", "NOTIFY_RATE_LIMIT_USER_BURST": "4"]) { stack in
            try await Self.templates(stack)
            let first = try await stack.send(Self.email("Grace@Example.com", "r-1"))
            #expect(first.status == 202, "\(first.json)")
            let id = try #require(first.data["notification_id"] as? String)
            let shown = try await stack.notification(id)
            #expect(shown.data["user_id"] is NSNull)
            #expect(shown.data["recipient"] as? String == "Grace@Example.com")
            #expect(shown.data["status"] as? String == "pending")
            // The same request again is a replay; another address under the same request_id is a conflict.
            let replay = try await stack.send(Self.email("Grace@Example.com", "r-1"))
            #expect(replay.status == 200)
            #expect(replay.data["notification_id"] as? String == id)
            #expect(try await stack.send(Self.email("someone.else@example.com", "r-1")).status == 422)

            // The suppression list applies (an address is suppressed in lowercase).
            _ = try await stack.scalar(
                "INSERT INTO suppressions (address, reason) VALUES ('bounced@example.com', 'hard_bounce') RETURNING address",
                as: String.self
            )
            let suppressed = try await stack.send(Self.email("Bounced@example.com", "r-2"))
            #expect(suppressed.status == 422)
            #expect(suppressed.json["error"] as? String == "RECIPIENT_SUPPRESSED")

            // Per recipient: the fifth to one address within the minute (the replay counted) is 429; another address is not affected.
            for n in 2...3 { #expect(try await stack.send(Self.email("grace@example.com", "r-\(n)0")).status == 202) }
            let limited = try await stack.send(Self.email("GRACE@example.com", "r-40"))
            #expect(limited.status == 429, "the address is one recipient however it is spelled: \(limited.json)")
            #expect(limited.json["message"] as? String == "Too many notifications for this recipient; try again later")
            #expect(try await stack.send(Self.email("hopper@example.com", "r-50")).status == 202)

            // SMS: the number is normalized; push: a token or a destination; scheduling holds the job.
            let sms = try await stack.send([
                "notification_type": "sms", "recipient": "+1 (415) 555-0100", "template_code": "otp", "variables": ["code": "42"],
                "request_id": "s-1",
                "send_at": ISO8601DateFormatter().string(from: Date().addingTimeInterval(3600)),
            ])
            #expect(sms.status == 202, "\(sms.json)")
            let smsShown = try await stack.notification(try #require(sms.data["notification_id"] as? String))
            #expect(smsShown.data["recipient"] as? String == "+14155550100")
            #expect(smsShown.data["job_state"] as? String == "scheduled")
            let apns = try await stack.send([
                "notification_type": "push", "recipient": ["platform": "apns", "token": String(repeating: "ab", count: 32)], "template_code": "ping",
                "variables": ["name": "Ada"], "request_id": "p-1",
            ])
            #expect(apns.status == 202, "\(apns.json)")
            let apnsShown = try await stack.notification(try #require(apns.data["notification_id"] as? String))
            #expect((apnsShown.data["recipient"] as? [String: Any])?["platform"] as? String == "apns")

            // Bulk: users and addresses mixed, each checked the same way.
            let user = try await stack.createUser()
            let bulk = try await stack.call(
                .POST,
                "/api/v1/notifications/bulk/",
                json: [
                    "notifications": [
                        Self.email("bulk-1@example.com", "b-1"),
                        ["notification_type": "email", "user_id": user, "template_code": "promo", "variables": ["name": "Ada"], "request_id": "b-2"],
                        Self.email("bounced@example.com", "b-3"),
                        Self.email("bad", "b-4"),
                    ]
                ],
                headers: stack.clientAuth
            )
            #expect(bulk.status == 200, "\(bulk.json)")
            let results = try #require(bulk.data["results"] as? [[String: Any]])
            #expect(results.map { $0["status"] as? Int } == [202, 202, 422, 400], "\(results)")
            let stored = try await stack.scalar(
                "SELECT recipient->>'email' FROM notifications WHERE request_id = 'b-1' AND user_id IS NULL",
                as: String.self
            )
            #expect(stored == "bulk-1@example.com")
        }
    }

    @Test("end to end: an email, an SMS and a push reach the address given, with no user and no unsubscribe link; a rejected token fails")
    func endToEnd() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay, .emailWorker, .pushWorker, .smsWorker]) { stack in
            try await Self.templates(stack)
            let email = try await stack.send(Self.email("reader@example.com", "e-1"))
            let emailID = try #require(email.data["notification_id"] as? String, "\(email.json)")
            let received = try await stack.waitForEmail(emailID, timeout: .seconds(60))
            #expect(received.header("To")?.contains("reader@example.com") == true)
            #expect(received.header("List-Unsubscribe") == nil, "the client owns consent for addresses it sends to")
            _ = try await stack.waitForStatus(emailID, "sent")

            let phone = "+1415\(Int.random(in: 100...999))0199"
            let sms = try await stack.send([
                "notification_type": "sms", "recipient": phone, "template_code": "otp", "variables": ["code": "777"], "request_id": "s-1",
            ])
            let smsID = try #require(sms.data["notification_id"] as? String, "\(sms.json)")
            let smsSent = try await stack.waitForStatus(smsID, "sent", timeout: .seconds(60))
            let sid = try #require((smsSent["provider_attempts"] as? [[String: Any]])?.first?["provider_message_id"] as? String)
            #expect(stack.sms.sent(id: sid)?.to == phone)
            #expect(stack.sms.sent(id: sid)?.body == "Your code is 777")

            let token = "direct-\(UUID().uuidString)"
            let push = try await stack.send([
                "notification_type": "push", "recipient": token, "template_code": "ping", "variables": ["name": "Ada"], "request_id": "p-1",
            ])
            let pushID = try #require(push.data["notification_id"] as? String, "\(push.json)")
            _ = try await stack.waitForStatus(pushID, "sent", timeout: .seconds(60))
            #expect(stack.fcm.attempts.withLockedValue { $0 }.contains { $0.token == token && $0.status == 200 })
            let message = stack.fcm.messages().compactMap { $0["message"] as? [String: Any] }.first { $0["token"] as? String == token }
            #expect((message?["notification"] as? [String: Any])?["title"] as? String == "Hi Ada")

            // A token FCM says is gone fails the notification; there is no device to deactivate.
            let dead = try await stack.send([
                "notification_type": "push", "recipient": ["platform": "fcm", "token": "dead-\(UUID().uuidString)"], "template_code": "ping",
                "variables": ["name": "Ada"], "request_id": "p-2",
            ])
            let deadID = try #require(dead.data["notification_id"] as? String, "\(dead.json)")
            let failed = try await stack.waitForStatus(deadID, "failed", timeout: .seconds(60))
            let outcome = try #require((failed["deliveries"] as? [[String: Any]])?.first)
            #expect(outcome["outcome"] as? String == "rejected")
            #expect(outcome["device_deactivated"] as? Bool == false)
        }
    }
}
