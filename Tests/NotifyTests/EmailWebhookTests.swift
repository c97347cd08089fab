import Crypto
import Foundation
import NIOHTTP1
import PostgresNIO
import Testing

/// The email providers' event webhooks at the gateway (in process, real PostgreSQL): signed events from the local
/// provider stand-ins change the notification's status and history and fill the suppression list, which the gateway
/// then enforces; forged, tampered or stale requests are 401 and change nothing.
@Suite struct EmailWebhookTests {
    static let keys = [
        "NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY": FakeEmailProviders.sendGridWebhookPublicKey,
        "NOTIFY_MAILGUN_WEBHOOK_SIGNING_KEY": FakeEmailProviders.mailgunSigningKey,
    ]

    /// A user with an address of its own, a template and one notification the worker has (as far as the database
    /// says) handed to the provider.
    static func sentNotification(_ stack: RouterHarness, email: String) async throws -> (user: String, id: String) {
        try await stack.createTemplate(["code": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi", "body": "Hi {{name}}"])
        let user = try await stack.createUser(email: email)
        let reply = try await stack.send(GatewayAPITests.valid(user))
        #expect(reply.status == 202)
        let id = try #require(reply.data["notification_id"] as? String)
        let updated: Int? = try await stack.scalar("UPDATE notifications SET status = 'sent' WHERE id = \(UUID(uuidString: id)!) RETURNING 1")
        #expect(updated == 1)
        return (user, id)
    }

    static func postSendGrid(
        _ stack: RouterHarness,
        _ events: [[String: Any]],
        key: P256.Signing.PrivateKey = FakeEmailProviders.sendGridWebhookKey
    )
        async throws -> Stack.Reply
    {
        let signed = FakeEmailProviders.sendGridWebhook(events, key: key)
        return try await stack.raw(
            .POST,
            "/api/v1/webhooks/email/sendgrid",
            body: signed.body,
            headers: signed.headers.merging(["Content-Type": "application/json"]) { $1 }
        )
    }

    static func history(_ stack: RouterHarness, _ id: String) async throws -> [(status: String, cause: String?)] {
        let reply = try await stack.notification(id)
        return (reply.data["history"] as? [[String: Any]] ?? []).map { ($0["status"] as? String ?? "", $0["cause"] as? String) }
    }

    @Test("a signed SendGrid delivery then hard bounce: history, status, suppression; a redelivery changes nothing; the gateway refuses the address")
    func sendGridBounce() async throws {
        try await RouterHarness.with(.gateway, extra: Self.keys) { stack in
            let email = "Bouncy-\(UUID().uuidString.prefix(8))@Example.test"
            let (user, id) = try await Self.sentNotification(stack, email: email)
            let args = ["notification_id": id]
            let events = [
                FakeEmailProviders.sendGridEvent("delivered", email: email, messageID: "sg-1", customArgs: args),
                FakeEmailProviders.sendGridEvent(
                    "bounce",
                    email: email,
                    messageID: "sg-1",
                    customArgs: args,
                    extra: ["type": "bounce", "status": "5.1.1"]
                ),
                FakeEmailProviders.sendGridEvent("open", email: email, messageID: "sg-1", customArgs: args),
            ]
            let reply = try await Self.postSendGrid(stack, events)
            #expect(reply.status == 200, "\(reply.json)")
            #expect(reply.data["applied"] as? Int == 2)
            #expect(reply.data["ignored"] as? Int == 1)
            let shown = try await stack.notification(id)
            #expect(shown.data["status"] as? String == "bounced")
            #expect(shown.data["delivered_at"] is String)
            let history = try await Self.history(stack, id)
            #expect(history.suffix(2).map(\.status) == ["delivered", "bounced"])
            #expect(history.last?.cause == "hard bounce reported by sendgrid (5.1.1)")
            #expect(history.dropLast().last?.cause == "delivered, reported by sendgrid")
            let reason: String? = try await stack.scalar("SELECT reason FROM suppressions WHERE address = \(email.lowercased())")
            #expect(reason == "hard_bounce")

            // Providers deliver webhooks at least once: the same events again are recognised and change nothing.
            let again = try await Self.postSendGrid(stack, events)
            #expect(again.data["duplicates"] as? Int == 2)
            #expect(try await Self.history(stack, id).count == history.count)

            var next = GatewayAPITests.valid(user)
            next["request_id"] = "after-bounce"
            let refused = try await stack.send(next)
            #expect(refused.status == 422)
            #expect(refused.error == "RECIPIENT_SUPPRESSED")
            #expect(!(refused.json["message"] as? String ?? "").lowercased().contains(email.lowercased()))
            let bulk = try await stack.call(
                .POST,
                "/api/v1/notifications/bulk",
                json: ["notifications": [next.merging(["request_id": "bulk-after-bounce"]) { $1 }]],
                headers: stack.clientAuth
            )
            let items = bulk.data["results"] as? [[String: Any]] ?? []
            #expect(items.first?["error"] as? String == "RECIPIENT_SUPPRESSED", "\(bulk.json)")
            #expect(items.first?["status"] as? Int == 422)
        }
    }

    @Test("Mailgun: a complaint suppresses, a temporary failure is a soft bounce that does not")
    func mailgunEvents() async throws {
        try await RouterHarness.with(.gateway, extra: Self.keys) { stack in
            let email = "mg-\(UUID().uuidString.prefix(8))@example.test"
            let (_, id) = try await Self.sentNotification(stack, email: email)
            let soft = FakeEmailProviders.mailgunWebhook(
                event: "failed",
                severity: "temporary",
                recipient: email,
                messageID: "m-1@mg.notify.test",
                variables: ["notification_id": id]
            )
            let first = try await stack.raw(.POST, "/api/v1/webhooks/email/mailgun", body: soft, headers: ["Content-Type": "application/json"])
            #expect(first.status == 200, "\(first.json)")
            #expect(try await stack.notification(id).data["status"] as? String == "bounced")
            #expect(try await Self.history(stack, id).last?.cause?.hasPrefix("soft bounce reported by mailgun") == true)
            let none: Int? = try await stack.scalar("SELECT count(*)::int FROM suppressions")
            #expect(none == 0)

            let complaint = FakeEmailProviders.mailgunWebhook(
                event: "complained",
                recipient: email,
                messageID: "m-1@mg.notify.test",
                variables: ["notification_id": id]
            )
            let second = try await stack.raw(.POST, "/api/v1/webhooks/email/mailgun", body: complaint, headers: ["Content-Type": "application/json"])
            #expect(second.status == 200)
            #expect(try await stack.notification(id).data["status"] as? String == "complained")
            let reason: String? = try await stack.scalar("SELECT reason FROM suppressions WHERE address = \(email.lowercased())")
            #expect(reason == "complaint")
        }
    }

    @Test("forged, tampered, stale or unsigned webhooks are 401 and change nothing")
    func forged() async throws {
        try await RouterHarness.with(.gateway, extra: Self.keys) { stack in
            let email = "forged-\(UUID().uuidString.prefix(8))@example.test"
            let (_, id) = try await Self.sentNotification(stack, email: email)
            let bounce = [
                FakeEmailProviders.sendGridEvent(
                    "bounce",
                    email: email,
                    messageID: "sg-2",
                    customArgs: ["notification_id": id],
                    extra: ["type": "bounce"]
                )
            ]
            // Signed with a key that is not SendGrid's.
            let otherKey = try await Self.postSendGrid(stack, bounce, key: P256.Signing.PrivateKey())
            #expect(otherKey.status == 401)
            #expect(otherKey.error == "UNAUTHORIZED")
            // SendGrid's signature over a different body.
            var signed = FakeEmailProviders.sendGridWebhook(bounce)
            let tampered = try await stack.raw(
                .POST,
                "/api/v1/webhooks/email/sendgrid",
                body: signed.body.replacingOccurrences(of: Data("bounce".utf8), with: Data("spamreport".utf8)),
                headers: signed.headers
            )
            #expect(tampered.status == 401)
            // Validly signed, but an hour and more old (a replay).
            signed = FakeEmailProviders.sendGridWebhook(bounce, timestamp: Int(Date().timeIntervalSince1970) - 7200)
            let stale = try await stack.raw(.POST, "/api/v1/webhooks/email/sendgrid", body: signed.body, headers: signed.headers)
            #expect(stale.status == 401)
            let unsigned = try await stack.raw(.POST, "/api/v1/webhooks/email/sendgrid", body: signed.body, headers: [:])
            #expect(unsigned.status == 401)
            let mailgun = FakeEmailProviders.mailgunWebhook(
                event: "complained",
                recipient: email,
                messageID: "m-2@mg.notify.test",
                variables: ["notification_id": id],
                signingKey: "not-the-signing-key"
            )
            let wrongHMAC = try await stack.raw(.POST, "/api/v1/webhooks/email/mailgun", body: mailgun, headers: ["Content-Type": "application/json"])
            #expect(wrongHMAC.status == 401)

            #expect(try await stack.notification(id).data["status"] as? String == "sent")
            let suppressed: Int? = try await stack.scalar("SELECT count(*)::int FROM suppressions")
            let recorded: Int? = try await stack.scalar("SELECT count(*)::int FROM email_events")
            #expect(suppressed == 0 && recorded == 0)
        }
    }

    @Test("a gateway without a provider's key answers 404 WEBHOOK_NOT_CONFIGURED for it")
    func notConfigured() async throws {
        try await RouterHarness.with(.gateway) { stack in
            let signed = FakeEmailProviders.sendGridWebhook([])
            let reply = try await stack.raw(.POST, "/api/v1/webhooks/email/sendgrid", body: signed.body, headers: signed.headers)
            #expect(reply.status == 404)
            #expect(reply.error == "WEBHOOK_NOT_CONFIGURED")
        }
    }
}

extension Data {
    fileprivate func replacingOccurrences(of target: Data, with replacement: Data) -> Data {
        var result = Data()
        var index = startIndex
        while let range = self[index...].range(of: target) {
            result.append(self[index..<range.lowerBound])
            result.append(replacement)
            index = range.upperBound
        }
        result.append(self[index...])
        return result
    }
}
