import Credentials
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import PostgresNIO
import Testing

/// A client's webhook receiver on loopback: records every request (headers by lowercase name, and the raw body) and answers, per path,
/// with the status the test sets (200 unless told otherwise).
final class WebhookReceiver: Sendable {
    struct Received: Sendable {
        var path: String
        var headers: [String: String]
        var body: Data
    }

    let received = NIOLockedValueBox<[Received]>([])
    let statuses = NIOLockedValueBox<[String: Int]>([:])
    let port = NIOLockedValueBox<Int>(0)
    var url: String { "http://127.0.0.1:\(port.withLockedValue { $0 })" }

    func requests(_ path: String) -> [Received] { received.withLockedValue { $0.filter { $0.path == path } } }

    func makeApplication() -> some ApplicationProtocol {
        let router = Router()
        router.post("/hooks/:name") { request, context -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            var headers: [String: String] = [:]
            for field in request.headers { headers[field.name.canonicalName] = field.value }
            let path = "/hooks/" + (context.parameters.get("name") ?? "")
            self.received.withLockedValue { $0.append(Received(path: path, headers: headers, body: Data(buffer: body))) }
            return Response(status: .init(code: self.statuses.withLockedValue { $0[path] } ?? 200))
        }
        let port = self.port
        return Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port ?? 0 } }
        )
    }
}

/// Status webhooks to clients: registered through the admin API (secret shown once), enqueued with each status
/// change, POSTed by the relay signed with HMAC-SHA256, retried with backoff, dead-lettered, replayed; SSRF rules.
@Suite("Webhooks", .serialized)
struct WebhookTests {
    static let settings = [
        "NOTIFY_WEBHOOK_SECRET_KEY": "webhook-sealing-key-for-tests-0123456789abcdef",
        "NOTIFY_WEBHOOK_ALLOW_LOOPBACK": "true",
        "NOTIFY_WEBHOOK_RETRY_BASE_MS": "100",
        "NOTIFY_WEBHOOK_RETRY_CAP_SECONDS": "1",
        "NOTIFY_WEBHOOK_MAX_ATTEMPTS": "3",
    ]

    @Test("signing: the documented scheme verifies; another secret, body or an old timestamp does not")
    func signature() {
        let body = Data(#"{"event":"sent"}"#.utf8)
        let header = WebhookSignature.sign(secret: "whsec_abc", timestamp: 1_700_000_000, body: body)
        #expect(header.hasPrefix("t=1700000000,v1="))
        #expect(WebhookSignature.verify(header: header, secret: "whsec_abc", body: body, now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: header, secret: "whsec_abd", body: body, now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: header, secret: "whsec_abc", body: Data(#"{"event":"failed"}"#.utf8), now: 1_700_000_100))
        #expect(!WebhookSignature.verify(header: header, secret: "whsec_abc", body: body, now: 1_700_001_000), "replayed later")
        let secrets = WebhookSecrets(key: "k".padding(toLength: 40, withPad: "k", startingAt: 0))
        let sealed = try? secrets.seal("whsec_abc")
        #expect(sealed.map { !String(decoding: $0, as: UTF8.self).contains("whsec_abc") } == true)
        #expect(sealed.flatMap { try? secrets.open($0) } == "whsec_abc")
        #expect(sealed.flatMap { try? WebhookSecrets(key: String(repeating: "x", count: 40)).open($0) } == nil)
    }

    @Test("end to end: status changes reach the endpoint signed; a failing endpoint is retried, dead-lettered and replayed, never delaying mail")
    func endToEnd() async throws {
        let receiver = WebhookReceiver()
        let app = receiver.makeApplication()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await app.run() }
            defer { group.cancelAll() }
            _ = try await eventually("webhook receiver listening") { receiver.port.withLockedValue { $0 } > 0 ? true : nil }
            try await Stack.with(services: [.users, .templates, .gateway, .relay, .emailWorker, .admin], extra: Self.settings) { stack in
                let admin = ["Authorization": "Bearer \(try await stack.createKey(scopes: ["admin"]))"]
                let webhooks = "\(stack.url(.admin))/api/v1/admin/webhooks/"

                // Hostile URLs are refused: internal addresses, plain http to a public host, other ports.
                for url in [
                    "https://10.1.2.3/hook", "https://169.254.169.254/latest", "http://example.com/hook", "https://example.com:8443/x",
                    "https://db.internal/x",
                ] {
                    let refused = try await stack.call(
                        .POST,
                        webhooks,
                        json: ["client": "test-client", "url": url, "events": ["sent"]],
                        headers: admin
                    )
                    #expect(refused.status == 400, "\(url): \(refused.json)")
                    #expect(refused.details.first?["field"] == "url", "\(url)")
                }
                let badEvents = try await stack.call(
                    .POST,
                    webhooks,
                    json: ["client": "test-client", "url": "\(receiver.url)/hooks/ok", "events": ["opened"]],
                    headers: admin
                )
                #expect(badEvents.status == 400)
                let noAdmin = try await stack.call(
                    .POST,
                    webhooks,
                    json: ["client": "test-client", "url": "\(receiver.url)/hooks/ok", "events": ["sent"]],
                    headers: stack.clientAuth
                )
                #expect(noAdmin.status == 403)

                let created = try await stack.call(
                    .POST,
                    webhooks,
                    json: ["client": "test-client", "url": "\(receiver.url)/hooks/ok", "events": ["sent", "delivered", "failed"]],
                    headers: admin
                )
                #expect(created.status == 201, "\(created.json)")
                let secret = try #require(created.data["secret"] as? String)
                #expect(secret.hasPrefix("whsec_"))
                let endpointID = try #require(created.data["id"] as? String)
                let shown = try await stack.call(.GET, "\(webhooks)\(endpointID)/", headers: admin)
                #expect(shown.data["secret"] == nil, "the secret is shown once")
                #expect(shown.data["secret_prefix"] as? String == String(secret.prefix(12)))
                let stored = try await stack.scalar("SELECT encode(secret_sealed, 'escape') FROM webhook_endpoints", as: String.self)
                #expect(stored?.contains(secret) == false, "sealed at rest")

                // Another client's endpoint hears nothing of test-client's notifications.
                let other = try await stack.call(
                    .POST,
                    webhooks,
                    json: ["client": "other-client", "url": "\(receiver.url)/hooks/other", "events": ["sent"]],
                    headers: admin
                )
                #expect(other.status == 201)
                // An endpoint for `pending` hears each accepted notification; for its client the accepted event is a
                // stored history row, whose id the webhook carries (sql/notifications/0025).
                let onAccept = try await stack.call(
                    .POST,
                    webhooks,
                    json: ["client": "test-client", "url": "\(receiver.url)/hooks/accepted", "events": ["pending"]],
                    headers: admin
                )
                #expect(onAccept.status == 201, "\(onAccept.json)")

                try await stack.createTemplate(["code": "w", "name": "W", "channel": "email", "subject": "S", "body": "B"])
                let user = try await stack.createUser()
                let accepted = try await stack.send(["notification_type": "email", "user_id": user, "template_code": "w", "request_id": "w-1"])
                let id = try #require(accepted.data["notification_id"] as? String)
                _ = try await stack.waitForStatus(id, "sent")
                let delivered = try await eventually("the sent event at the endpoint", timeout: .seconds(60)) { () -> WebhookReceiver.Received? in
                    receiver.requests("/hooks/ok").first
                }
                let event = try #require(try JSONSerialization.jsonObject(with: delivered.body) as? [String: Any])
                #expect(event["event"] as? String == "sent")
                #expect(event["notification_id"] as? String == id)
                #expect(event["request_id"] as? String == "w-1")
                #expect(event["previous_status"] as? String == "processing")
                #expect(delivered.headers["x-notify-event"] == "sent")
                let signature = try #require(delivered.headers["x-notify-signature"])
                #expect(
                    WebhookSignature.verify(header: signature, secret: secret, body: delivered.body, now: Int(Date().timeIntervalSince1970)),
                    "verifiable with the secret shown once"
                )
                #expect(receiver.requests("/hooks/other").isEmpty)
                let acceptedCall = try await eventually("the pending event at its endpoint", timeout: .seconds(60)) {
                    () -> WebhookReceiver.Received? in receiver.requests("/hooks/accepted").first
                }
                let pending = try #require(try JSONSerialization.jsonObject(with: acceptedCall.body) as? [String: Any])
                #expect(pending["event"] as? String == "pending")
                #expect(pending["notification_id"] as? String == id)
                #expect(pending["cause"] as? String == "accepted")
                let storedEventID = try await stack.scalar(
                    "SELECT id FROM notification_events WHERE notification_id = \(UUID(uuidString: id)!) AND from_status IS NULL",
                    as: Int.self
                )
                #expect(storedEventID != nil)
                #expect(pending["event_id"] as? Int == storedEventID)
                let statuses = (try await stack.notification(id).data["history"] as? [[String: Any]] ?? []).compactMap { $0["status"] as? String }
                #expect(statuses == ["pending", "processing", "sent"], "the stored first entry shown once")
                // A delivery report makes it delivered: a second event.
                let report = try await stack.call(
                    .POST,
                    "\(stack.url(.gateway))/api/v1/email/status/",
                    json: ["notification_id": id, "status": "delivered"],
                    headers: stack.serviceAuth
                )
                #expect(report.status == 200, "\(report.json)")
                _ = try await eventually("the delivered event", timeout: .seconds(60)) { () -> Bool? in
                    receiver.requests("/hooks/ok").contains { $0.headers["x-notify-event"] == "delivered" } ? true : nil
                }
                // A report of `pending` after that changes no status but is an entry of the history
                // (record_notification_event): the endpoint hears it too, with its cause.
                let late = try await stack.call(
                    .POST,
                    "\(stack.url(.gateway))/api/v1/email/status/",
                    json: ["notification_id": id, "status": "pending", "error": "queued again at the recipient"],
                    headers: stack.serviceAuth
                )
                #expect(late.status == 200, "\(late.json)")
                let lateCall = try await eventually("the reported event at the endpoint", timeout: .seconds(60)) { () -> [String: Any]? in
                    receiver.requests("/hooks/ok").lazy
                        .compactMap { try? JSONSerialization.jsonObject(with: $0.body) as? [String: Any] }
                        .first { ($0["cause"] as? String)?.hasPrefix("delivery report: pending") == true }
                }
                #expect(lateCall["status"] as? String == "delivered")
                #expect(lateCall["previous_status"] as? String == "delivered")
                #expect(lateCall["notification_id"] as? String == id)

                // An endpoint that fails: retried with backoff, then a dead letter; mail is not held up meanwhile.
                receiver.statuses.withLockedValue { $0["/hooks/down"] = 500 }
                let down = try await stack.call(
                    .POST,
                    webhooks,
                    json: ["client": "test-client", "url": "\(receiver.url)/hooks/down", "events": ["sent"]],
                    headers: admin
                )
                let downID = try #require(down.data["id"] as? String)
                let second = try await stack.send(["notification_type": "email", "user_id": user, "template_code": "w", "request_id": "w-2"])
                let secondID = try #require(second.data["notification_id"] as? String)
                _ = try await stack.waitForEmail(secondID, timeout: .seconds(60))
                _ = try await stack.waitForStatus(secondID, "sent")
                let dead = try await eventually("the failing endpoint's delivery dead-lettered", timeout: .seconds(60)) { () -> [String: Any]? in
                    let list = try await stack.call(.GET, "\(webhooks)\(downID)/deliveries/?state=discarded", headers: admin)
                    return (list.json["data"] as? [[String: Any]])?.first
                }
                #expect(dead["attempt"] as? Int == 3)
                #expect(dead["last_status"] as? Int == 500)
                #expect(receiver.requests("/hooks/down").count == 3)
                let viewed = try await stack.scalar("SELECT count(*)::int FROM webhook_dead_letters WHERE url LIKE '%/hooks/down'", as: Int.self)
                #expect(viewed == 1, "operators see it in SQL")

                // Fixed, and replayed: it arrives.
                receiver.statuses.withLockedValue { $0["/hooks/down"] = 204 }
                let deliveryID = try #require(dead["id"] as? Int)
                let replayed = try await stack.call(
                    .POST,
                    "\(stack.url(.admin))/api/v1/admin/webhook-deliveries/\(deliveryID)/replay/",
                    headers: admin
                )
                #expect(replayed.status == 200, "\(replayed.json)")
                _ = try await eventually("the replayed delivery completed", timeout: .seconds(60)) { () -> Bool? in
                    try await stack.scalar("SELECT state FROM webhook_deliveries WHERE id = \(deliveryID)", as: String.self) == "completed"
                        ? true : nil
                }
                #expect(
                    try await stack.call(.POST, "\(stack.url(.admin))/api/v1/admin/webhook-deliveries/\(deliveryID)/replay/", headers: admin).status
                        == 409
                )

                // Disabled: no more deliveries to it.
                #expect(try await stack.call(.DELETE, "\(webhooks)\(endpointID)/", headers: admin).status == 200)
                let before = receiver.requests("/hooks/ok").count
                let third = try await stack.send(["notification_type": "email", "user_id": user, "template_code": "w", "request_id": "w-3"])
                _ = try await stack.waitForStatus(try #require(third.data["notification_id"] as? String), "sent")
                let enqueued = try await stack.scalar(
                    "SELECT count(*)::int FROM webhook_deliveries WHERE endpoint_id = \(UUID(uuidString: endpointID)!) AND notification_id = \(UUID(uuidString: third.data["notification_id"] as! String)!)",
                    as: Int.self
                )
                #expect(enqueued == 0)
                #expect(receiver.requests("/hooks/ok").count == before)
            }
        }
    }
}
