import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOSSL
import PushTransport
import Testing

/// APNs against a local HTTP/2 server over TLS that checks what Apple checks (FakeAPNs).
@Suite("APNs")
struct APNsTests {
    /// A transport for the stand-in, trusting only its CA, with a clock the test moves.
    static func with(
        clock: NIOLockedValueBox<Date> = NIOLockedValueBox(Date()),
        _ body: @Sendable (FakeAPNs, APNsTransport) async throws -> Void
    ) async throws {
        try await FakeAPNs.with { apns in
            let client = APNsTransport.makeClient(caFile: apns.caFile)
            do {
                let key = try APNsKey(p8: FakeAPNs.p8, keyID: FakeAPNs.keyID, teamID: FakeAPNs.teamID)
                let tokens = APNsTokens(key: key, now: { clock.withLockedValue { $0 } })
                try await body(apns, APNsTransport(http: client, baseURL: apns.url, topic: FakeAPNs.topic, tokens: tokens))
            } catch {
                try? await client.shutdown()
                throw error
            }
            try await client.shutdown()
        }
    }

    static let alert = PushMessage(
        title: "Your order shipped",
        body: "Order A-17 is on its way",
        imageURL: "https://img.example.com/A-17.png",
        link: "https://example.com/orders/A-17",
        data: ["screen": "orders", "order_id": "A-17", "aps": "must not replace aps"],
        priority: 9,
        timeToLive: 3600,
        collapseID: "order-A-17"
    )

    @Test("an alert over HTTP/2 with a verified ES256 token: headers and payload as Apple wants them")
    func alertRequest() async throws {
        try await Self.with { apns, transport in
            let messageID = UUID().uuidString.lowercased()
            let device = FakeAPNs.deviceToken()
            let before = Int(Date().timeIntervalSince1970)
            let apnsID = try await transport.send(Self.alert, deviceToken: device, messageID: messageID)
            #expect(apnsID == messageID, "apns-id is the notification's id, echoed by Apple")
            #expect(apns.http1Requests.withLockedValue { $0 } == 0)
            let sent = try #require(apns.delivered.withLockedValue { $0 }.first)
            #expect(sent.deviceToken == device)
            #expect(sent.headers["apns-topic"] == FakeAPNs.topic)
            #expect(sent.headers["apns-push-type"] == "alert")
            #expect(sent.headers["apns-priority"] == "10", "priority 9 is high")
            #expect(sent.headers["apns-collapse-id"] == "order-A-17")
            let expiration = try #require(sent.headers["apns-expiration"].flatMap { Int($0) })
            #expect(expiration >= before + 3600 && expiration <= Int(Date().timeIntervalSince1970) + 3600)
            let alert = try #require(sent.aps["alert"] as? [String: Any])
            #expect(alert["title"] as? String == "Your order shipped")
            #expect(alert["body"] as? String == "Order A-17 is on its way")
            #expect(sent.aps["mutable-content"] as? Int == 1, "an image needs the service extension")
            #expect(sent.json["image_url"] as? String == "https://img.example.com/A-17.png")
            #expect(sent.json["link"] as? String == "https://example.com/orders/A-17")
            #expect(sent.json["screen"] as? String == "orders", "custom data beside aps")
            #expect(sent.json["order_id"] as? String == "A-17")
            #expect(sent.json["aps"] is [String: Any], "a data key named aps does not replace aps")

            // The stand-in really tells the protocols apart: HTTP/1.1 is refused, as Apple refuses it.
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.trustRoots = .file(apns.caFile)
            var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
            configuration.httpVersion = .http1Only
            let http1 = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            let old = APNsTransport(http: http1, baseURL: apns.url, topic: FakeAPNs.topic, tokens: transport.tokens)
            let refused = await #expect(throws: PushError.self) { _ = try await old.send(Self.alert, deviceToken: device, messageID: messageID) }
            try await http1.shutdown()
            #expect(refused?.code == .providerUnavailable)
            #expect(apns.http1Requests.withLockedValue { $0 } == 1)
        }
    }

    @Test("a message without title and body is a background push at priority 5; a long collapse key is hashed to 64")
    func backgroundRequest() async throws {
        try await Self.with { apns, transport in
            let quiet = PushMessage(
                title: "",
                body: "",
                imageURL: nil,
                link: nil,
                data: ["sync": "inbox"],
                priority: 10,
                timeToLive: 0,
                collapseID: String(repeating: "k", count: 100)
            )
            _ = try await transport.send(quiet, deviceToken: FakeAPNs.deviceToken(), messageID: UUID().uuidString)
            let sent = try #require(apns.delivered.withLockedValue { $0 }.first)
            #expect(sent.headers["apns-push-type"] == "background")
            #expect(sent.headers["apns-priority"] == "5", "Apple refuses background pushes at 10")
            #expect(sent.headers["apns-expiration"] == "0", "TTL 0: deliver now or never")
            #expect(sent.headers["apns-collapse-id"]?.count == 64)
            #expect(sent.aps["content-available"] as? Int == 1)
            #expect(sent.aps["alert"] == nil)
            #expect(sent.json["sync"] as? String == "inbox")
        }
    }

    @Test("one provider token for 50 minutes of sends, a new one after; ExpiredProviderToken signs a new one, once")
    func providerTokenLifetime() async throws {
        // Starts 55 minutes ago, so Apple's one-hour limit is near and real.
        let clock = NIOLockedValueBox(Date().addingTimeInterval(-55 * 60))
        try await Self.with(clock: clock) { apns, transport in
            let device = FakeAPNs.deviceToken()
            for _ in 0..<3 { _ = try await transport.send(Self.alert, deviceToken: device, messageID: UUID().uuidString) }
            #expect(await transport.tokens.issued == 1)
            clock.withLockedValue { $0 += 49 * 60 }
            _ = try await transport.send(Self.alert, deviceToken: device, messageID: UUID().uuidString)
            #expect(await transport.tokens.issued == 1, "49 minutes old: still used")
            clock.withLockedValue { $0 += 2 * 60 }
            _ = try await transport.send(Self.alert, deviceToken: device, messageID: UUID().uuidString)
            #expect(await transport.tokens.issued == 2, "51 minutes old: replaced before Apple's hour")
            #expect(apns.seenTokens.withLockedValue { $0.count } == 2)

            // Apple says the token expired: a new one, and the send goes through.
            apns.expireTokensSeen()
            let requestsBefore = apns.answers.withLockedValue { $0.count }
            _ = try await transport.send(Self.alert, deviceToken: device, messageID: UUID().uuidString)
            #expect(await transport.tokens.issued == 3)
            #expect(apns.answers.withLockedValue { $0.dropFirst(requestsBefore).map(\.1) } == [403, 200])

            // A clock an hour behind: every token it signs is expired; one new token is tried, then it stops.
            clock.withLockedValue { $0 = Date().addingTimeInterval(-2 * 3600) }
            await transport.tokens.expired(try await transport.tokens.token())
            let before = apns.answers.withLockedValue { $0.count }
            let error = await #expect(throws: PushError.self) {
                _ = try await transport.send(Self.alert, deviceToken: device, messageID: UUID().uuidString)
            }
            #expect(error?.code == .providerAuthFailed)
            #expect(error?.deviceGone == false, "the platform's key, not the device")
            #expect(apns.answers.withLockedValue { $0.count } - before == 2, "the first token and one replacement")
        }
    }

    @Test("Apple's reasons: BadDeviceToken and 410 Unregistered mean gone; 429 and 5xx transient; too large never sent")
    func reasons() async throws {
        try await Self.with { apns, transport in
            func failure(_ token: String, _ message: PushMessage = Self.alert) async -> PushError? {
                await #expect(throws: PushError.self) { _ = try await transport.send(message, deviceToken: token, messageID: UUID().uuidString) }
            }
            let bad = await failure(FakeAPNs.deviceToken("0bad"))
            #expect(bad?.code == .deviceGone && bad?.deviceGone == true && bad?.permanent == true)
            let unregistered = await failure(FakeAPNs.deviceToken("dead"))
            #expect(unregistered?.code == .deviceGone && unregistered?.deviceGone == true && unregistered?.permanent == true)
            let busy = await failure(FakeAPNs.deviceToken("4290"))
            #expect(busy?.code == .rateLimited && busy?.permanent == false && busy?.deviceGone == false)
            let flaky = FakeAPNs.deviceToken("5003")
            let unavailable = await failure(flaky)
            #expect(unavailable?.code == .providerUnavailable && unavailable?.permanent == false)
            _ = try await transport.send(Self.alert, deviceToken: flaky, messageID: UUID().uuidString)

            var large = Self.alert
            large.body = String(repeating: "x", count: 5000)
            let count = apns.answers.withLockedValue { $0.count }
            let tooLarge = await failure(FakeAPNs.deviceToken(), large)
            #expect(tooLarge?.code == .payloadTooLarge && tooLarge?.permanent == true && tooLarge?.deviceGone == false)
            #expect(apns.answers.withLockedValue { $0.count } == count, "refused before it reaches Apple")
            let malformed = await failure("not-hex")
            #expect(malformed?.code == .malformedSubscription)
            // The provider's answer stays in the operator's message, never in the client's code or reason.
            #expect(bad?.message.contains("BadDeviceToken") == true)
            #expect(!(bad?.code.reason.contains("BadDeviceToken") ?? true))
        }
    }

    @Test("a certificate from another authority is refused: no token leaves the worker")
    func untrustedServer() async throws {
        try await FakeAPNs.with { apns in
            let client = APNsTransport.makeClient(caFile: apns.directory.appendingPathComponent("other-ca.pem").path)
            let key = try APNsKey(p8: FakeAPNs.p8, keyID: FakeAPNs.keyID, teamID: FakeAPNs.teamID)
            let transport = APNsTransport(http: client, baseURL: apns.url, topic: FakeAPNs.topic, tokens: APNsTokens(key: key))
            let error = await #expect(throws: PushError.self) {
                _ = try await transport.send(Self.alert, deviceToken: FakeAPNs.deviceToken(), messageID: UUID().uuidString)
            }
            try await client.shutdown()
            #expect(error?.code == .providerUnavailable && error?.permanent == false)
            #expect(apns.answers.withLockedValue { $0.isEmpty } && apns.seenTokens.withLockedValue { $0.isEmpty })
        }
    }

    @Test("keys: a wrong key id, team id or a key that is not P-256 PEM are refused, without echoing the key")
    func keyValidation() throws {
        #expect(throws: APNsKeyError.self) { try APNsKey(p8: FakeAPNs.p8, keyID: "short", teamID: FakeAPNs.teamID) }
        #expect(throws: APNsKeyError.self) { try APNsKey(p8: FakeAPNs.p8, keyID: FakeAPNs.keyID, teamID: "team id!!!") }
        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----"
        do {
            _ = try APNsKey(p8: secret, keyID: FakeAPNs.keyID, teamID: FakeAPNs.teamID)
            Issue.record("a key that is not P-256 was taken")
        } catch {
            #expect(!"\(error)".contains("c2VjcmV0"))
        }
    }
}
