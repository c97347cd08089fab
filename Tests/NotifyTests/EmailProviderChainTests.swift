import AsyncHTTPClient
import EmailProviders
import Foundation
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOHTTP1
import NotificationModel
import NotifyConfig
import PostgresNIO
import SMTPTransport
import Testing
import Workers

/// The HTTP email providers against local stand-ins that check what SendGrid and Mailgun check, and the provider
/// chain in a running stack: a primary that is down hands the message to the next provider within the same attempt,
/// a permanent refusal does not, and a primary that is back is used again.
@Suite struct EmailProviderChainTests {
    static func withProviders<T: Sendable>(_ body: @Sendable (FakeEmailProviders) async throws -> T) async throws -> T {
        let fake = FakeEmailProviders()
        let app = fake.makeApplication()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            defer { group.cancelAll() }
            _ = try await eventually("provider stand-ins listening") { fake.port.withLockedValue { $0 } > 0 ? true : nil }
            return try await body(fake)
        }
    }

    static func message(to address: String) -> EmailMessage {
        EmailMessage(
            from: "notifications@notify.test",
            fromName: "Notify Ops",
            to: address,
            toName: "Ada",
            subject: "Größe: über",
            text: "plain text",
            html: "<p>html</p>",
            messageID: "\(UUID().uuidString.lowercased())@notify.test",
            headers: [("X-Notification-ID", "n-1")],
            replyTo: "support@notify.test",
            tracking: ["notification_id": "n-1"]
        )
    }

    @Test("SendGrid and Mailgun: the request each provider takes, its message id, and its errors classified")
    func providers() async throws {
        try await Self.withProviders { fake in
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            defer { _ = http.shutdown() }
            let sendGrid = SendGridProvider(http: http, baseURL: fake.url, apiKey: FakeEmailProviders.sendGridKey)
            let mailgun = MailgunProvider(
                http: http,
                baseURL: fake.url,
                domain: FakeEmailProviders.mailgunDomain,
                apiKey: FakeEmailProviders.mailgunKey
            )
            for provider in [sendGrid, mailgun] as [any EmailProvider] {
                let address = "\(provider.name)-\(UUID().uuidString.prefix(6).lowercased())@example.test"
                let id = try await provider.send(Self.message(to: address))
                #expect(!id.isEmpty)
                let sent = try #require(fake.sent(to: address).first)
                #expect(sent.provider == provider.name)
                #expect(sent.messageID == id)
                #expect(sent.subject == "Größe: über")
                #expect(sent.fromName == "Notify Ops" && sent.from == "notifications@notify.test")
                #expect(sent.replyTo == "support@notify.test")
                #expect(sent.text == "plain text" && sent.html == "<p>html</p>")
                #expect(sent.headers["X-Notification-ID"] == "n-1")
                #expect(sent.variables["notification_id"] == "n-1")
            }

            fake.setMode("sendgrid", .rateLimited)
            let limited = await #expect(throws: EmailProviderError.self) { try await sendGrid.send(Self.message(to: "a@example.test")) }
            #expect(limited?.code == .rateLimited && limited?.permanent == false && limited?.retryAfterSeconds == 2)
            fake.setMode("sendgrid", .down)
            let down = await #expect(throws: EmailProviderError.self) { try await sendGrid.send(Self.message(to: "a@example.test")) }
            #expect(down?.code == .providerUnavailable && down?.permanent == false && down?.retryAfterSeconds == 1)
            fake.setMode("mailgun", .reject)
            let rejected = await #expect(throws: EmailProviderError.self) { try await mailgun.send(Self.message(to: "a@example.test")) }
            #expect(rejected?.code == .rejectedByProvider && rejected?.permanent == true)
            #expect(rejected?.clientText.contains("not a valid address") == false, "the provider's words stay in the log")

            let wrongKey = MailgunProvider(http: http, baseURL: fake.url, domain: FakeEmailProviders.mailgunDomain, apiKey: "key-wrong")
            fake.setMode("mailgun", .ok)
            let unauthorized = await #expect(throws: EmailProviderError.self) { try await wrongKey.send(Self.message(to: "a@example.test")) }
            #expect(unauthorized?.code == .providerAuthFailed && unauthorized?.permanent == false)
        }
    }

    @Test("primary down: the secondary sends in the same attempt; a permanent refusal is not passed on; the primary back is used again")
    func failover() async throws {
        try await Self.withProviders { fake in
            let settings = [
                "NOTIFY_EMAIL_PROVIDERS": "sendgrid,smtp",
                "NOTIFY_SENDGRID_URL": fake.url,
                "NOTIFY_SENDGRID_API_KEY": FakeEmailProviders.sendGridKey,
                "NOTIFY_MAIL_FROM_ALLOWED": "@alerts.notify.test, billing@notify.test",
            ]
            try await Stack.with(services: [.users, .templates, .gateway, .relay, .emailWorker], extra: settings) { stack in
                try await stack.createTemplate([
                    "code": "chain", "name": "Chain", "channel": "email", "subject": "Hi", "body": "Hi {{name}}",
                    "from_email": "ops@alerts.notify.test", "from_name": "Ops Alerts", "reply_to": "help@notify.test",
                ])
                let user = try await stack.createUser(email: "chain-\(UUID().uuidString.prefix(8).lowercased())@example.test")
                func send(_ requestID: String) async throws -> String {
                    let reply = try await stack.send([
                        "notification_type": "email", "user_id": user, "template_code": "chain", "variables": ["name": "Ada"],
                        "request_id": requestID,
                    ])
                    #expect(reply.status == 202, "\(reply.json)")
                    return try #require(reply.data["notification_id"] as? String)
                }

                fake.setMode("sendgrid", .down)
                let first = try await send("down-1")
                let shown = try await stack.waitForStatus(first, "sent", timeout: .seconds(60))
                #expect(shown["attempts"] as? Int == 1, "the failover spent no extra attempt")
                let attempts = shown["provider_attempts"] as? [[String: Any]] ?? []
                #expect(attempts.map { $0["provider"] as? String } == ["sendgrid", "smtp"])
                #expect(attempts.map { $0["outcome"] as? String } == ["failed", "accepted"])
                #expect(attempts.map { $0["attempt"] as? Int } == [1, 1])
                #expect(attempts.first?["error_code"] as? String == "provider_unavailable")
                #expect(attempts.last?["provider_message_id"] as? String == "<\(first)@notify.local>")
                let mail = try await stack.waitForEmail(first)
                #expect(mail.header("From") == "\"Ops Alerts\" <ops@alerts.notify.test>")
                #expect(mail.header("Reply-To") == "<help@notify.test>")
                let viaSQL: String? = try await stack.scalar(
                    "SELECT provider FROM email_deliveries WHERE notification_id = \(UUID(uuidString: first)!) AND outcome = 'accepted'"
                )
                #expect(viaSQL == "smtp")

                // Back: once its breaker lets a call through again, SendGrid sends.
                fake.setMode("sendgrid", .ok)
                var round = 0
                let viaPrimary = try await eventually("a notification sent by SendGrid again", timeout: .seconds(90), interval: .milliseconds(200)) {
                    () -> String? in
                    round += 1
                    let id = try await send("back-\(round)")
                    let data = try await stack.waitForStatus(id, "sent", timeout: .seconds(60))
                    let accepted = (data["provider_attempts"] as? [[String: Any]] ?? []).first { $0["outcome"] as? String == "accepted" }
                    return accepted?["provider"] as? String == "sendgrid" ? id : nil
                }
                let delivered = try #require(fake.sent.withLockedValue { $0 }.first { $0.variables["notification_id"] == viaPrimary })
                #expect(delivered.headers["X-Notification-ID"] == viaPrimary)
                #expect(delivered.subject == "Hi")
                #expect(delivered.from == "ops@alerts.notify.test" && delivered.fromName == "Ops Alerts")
                #expect(delivered.replyTo == "help@notify.test")

                // A refusal of the recipient is not the provider's fault: no failover, the notification fails.
                fake.setMode("sendgrid", .reject)
                let refused = try await send("rejected")
                let failed = try await stack.waitForStatus(refused, "failed", timeout: .seconds(60))
                let tried = failed["provider_attempts"] as? [[String: Any]] ?? []
                #expect(tried.map { $0["provider"] as? String } == ["sendgrid"])
                #expect(tried.map { $0["outcome"] as? String } == ["rejected"])
                #expect(ReceivedEmail.with(messageID: "\(refused)@notify.local", in: stack.infra.maildir).isEmpty)
            }
        }
    }

    @Test("a template's own sender must be on NOTIFY_MAIL_FROM_ALLOWED; null clears it; push templates take none")
    func templateSender() async throws {
        try await RouterHarness.with(.templates, extra: ["NOTIFY_MAIL_FROM_ALLOWED": "@alerts.notify.test"]) { stack in
            let url = "/api/v1/templates/"
            let base: [String: Any] = ["code": "sender", "name": "Sender", "channel": "email", "subject": "Hi", "body": "Hi"]
            let refused = try await stack.call(
                .POST,
                url,
                json: base.merging(["from_email": "ceo@elsewhere.test"]) { $1 },
                headers: stack.serviceAuth
            )
            #expect(refused.status == 400)
            #expect(refused.details.map { $0["field"] } == ["from_email"])
            let badName = try await stack.call(
                .POST,
                url,
                json: base.merging(["from_email": "ops@alerts.notify.test", "from_name": "Ops\r\nBcc: x@y.test"]) { $1 },
                headers: stack.serviceAuth
            )
            #expect(badName.status == 400)
            let created = try await stack.call(
                .POST,
                url,
                json: base.merging(["from_email": "ops@Alerts.Notify.test", "from_name": "Ops", "reply_to": "help@notify.test"]) { $1 },
                headers: stack.serviceAuth
            )
            #expect(created.status == 201, "\(created.json)")
            #expect(created.data["from_email"] as? String == "ops@Alerts.Notify.test")
            #expect(created.data["reply_to"] as? String == "help@notify.test")
            let cleared = try await stack.call(
                .PUT,
                "\(url)sender/",
                json: ["subject": "Hi", "body": "Hi again", "reply_to": NSNull()],
                headers: stack.serviceAuth
            )
            #expect(cleared.status == 200, "\(cleared.json)")
            #expect(cleared.data["reply_to"] == nil)
            #expect(cleared.data["from_name"] as? String == "Ops", "fields not named stay")
            let push = try await stack.call(
                .POST,
                url,
                json: ["code": "p", "name": "P", "channel": "push", "title": "T", "body": "B", "from_email": "ops@alerts.notify.test"],
                headers: stack.serviceAuth
            )
            #expect(push.status == 400)
        }
    }

    @Test("an email worker refuses to start on an unknown or unconfigured provider, credentials without TLS, or half an unsubscribe setup")
    func configurationProblems() throws {
        let settings = [
            "NOTIFY_EMAIL_PROVIDERS": "sendgrid,postmark,mailgun,smtp",
            "NOTIFY_SMTP_USERNAME": "mailer", "NOTIFY_SMTP_PASSWORD": "pw-7f3a91", "NOTIFY_SMTP_TLS": "none",
            "NOTIFY_MAILGUN_API_KEY": "key-x",
            "NOTIFY_UNSUBSCRIBE_URL": "http://unsubscribe.example.com/u",
            "NOTIFY_PG_PASSWORD": "x", "NOTIFY_RABBIT_PASSWORD": "x", "NOTIFY_SERVICE_KEY": "service-key-for-config-test-0000",
        ]
        let error = #expect(throws: ConfigurationError.self) { try WorkerConfiguration(channel: .email, EnvironmentReader(settings)) }
        let problems = error?.problems ?? []
        for expected in [
            "unknown postmark", "NOTIFY_SENDGRID_API_KEY is required", "NOTIFY_MAILGUN_DOMAIN is required", "only sent over TLS",
            "NOTIFY_UNSUBSCRIBE_URL and NOTIFY_UNSUBSCRIBE_SECRET go together",
        ] {
            #expect(problems.contains { $0.contains(expected) }, "\(expected) in \(problems)")
        }
        #expect(!problems.joined().contains("pw-7f3a91"), "no secret in the problems")
        #expect(UnsubscribeLinks.problem("http://unsubscribe.example.com/u")?.contains("https") == true)
        #expect(UnsubscribeLinks.problem("https://notify.example.com/api/v1/unsubscribe") == nil)
        #expect(UnsubscribeLinks.problem("http://127.0.0.1:8001/api/v1/unsubscribe") == nil)
    }
}
