import AsyncHTTPClient
import Foundation
import Hummingbird
import NIOConcurrencyHelpers
import PushTransport
import Testing

/// OneSignal's REST API against its local stand-in (FakeFCM's `/onesignal` routes), which checks the key, the app id and
/// the fields OneSignal requires.
@Suite("OneSignal")
struct OneSignalTests {
    static func with(apiKey: String = FakeFCM.oneSignalKey, _ body: @Sendable (FakeFCM, OneSignalTransport) async throws -> Void) async throws {
        let fake = FakeFCM()
        let app = fake.makeApplication()
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.run() }
                defer { group.cancelAll() }
                _ = try await eventually("fake OneSignal listening") { fake.port.withLockedValue { $0 } > 0 ? true : nil }
                try await body(
                    fake,
                    OneSignalTransport(http: client, baseURL: "\(fake.url)/onesignal", appID: FakeFCM.oneSignalAppID, apiKey: apiKey)
                )
            }
        } catch {
            try? await client.shutdown()
            throw error
        }
        try await client.shutdown()
    }

    static func subscription(_ prefix: String = "") -> String {
        let id = UUID().uuidString.lowercased()
        return prefix + id.dropFirst(prefix.count)
    }

    @Test("a notification as OneSignal wants it; a retried attempt carries the same idempotency key and is delivered once")
    func request() async throws {
        try await Self.with { fake, transport in
            let subscription = Self.subscription()
            let messageID = UUID().uuidString.lowercased()
            let id = try await transport.send(APNsTests.alert, subscriptionID: subscription, messageID: messageID)
            let again = try await transport.send(APNsTests.alert, subscriptionID: subscription, messageID: messageID)
            #expect(!id.isEmpty && again == id, "the retry is recognised by its idempotency key")
            let delivered = fake.oneSignalDelivered()
            #expect(delivered.count == 1)
            let body = try #require(delivered.first)
            #expect(body["include_subscription_ids"] as? [String] == [subscription])
            #expect((body["headings"] as? [String: String])?["en"] == "Your order shipped")
            #expect((body["contents"] as? [String: String])?["en"] == "Order A-17 is on its way")
            #expect(body["big_picture"] as? String == "https://img.example.com/A-17.png")
            #expect(body["url"] as? String == "https://example.com/orders/A-17")
            #expect(body["priority"] as? Int == 10)
            #expect(body["ttl"] as? Int == 3600)
            #expect(body["collapse_id"] as? String == "order-A-17")
            let data = try #require(body["data"] as? [String: String])
            #expect(data["order_id"] == "A-17" && data["message_id"] == messageID)

            // Another notification to the same subscription is a new key, so a new delivery.
            _ = try await transport.send(APNsTests.alert, subscriptionID: subscription, messageID: UUID().uuidString.lowercased())
            #expect(fake.oneSignalDelivered().count == 2)

            // A background push has no headings or contents.
            var silent = APNsTests.alert
            silent.title = ""
            silent.body = ""
            _ = try await transport.send(silent, subscriptionID: Self.subscription(), messageID: UUID().uuidString)
            let background = try #require(fake.oneSignalDelivered().last)
            #expect(background["content_available"] as? Bool == true && background["contents"] == nil)
        }
    }

    @Test("OneSignal's answers: an unsubscribed id means gone (even under 200); 429 and 5xx transient; a wrong key is the platform's")
    func reasons() async throws {
        try await Self.with { fake, transport in
            func failure(_ subscription: String) async -> PushError? {
                await #expect(throws: PushError.self) {
                    _ = try await transport.send(APNsTests.alert, subscriptionID: subscription, messageID: UUID().uuidString)
                }
            }
            let gone = await failure(Self.subscription("dead"))
            #expect(gone?.code == .deviceGone && gone?.deviceGone == true && gone?.permanent == true)
            let busy = await failure(Self.subscription("4290"))
            #expect(busy?.code == .rateLimited && busy?.permanent == false && busy?.retryAfterSeconds == 2)
            let flaky = Self.subscription("5003")
            let unavailable = await failure(flaky)
            #expect(unavailable?.code == .providerUnavailable && unavailable?.permanent == false)
            _ = try await transport.send(APNsTests.alert, subscriptionID: flaky, messageID: UUID().uuidString)
            let malformed = await failure("not-a-uuid")
            #expect(malformed?.code == .malformedSubscription && malformed?.deviceGone == true)
            #expect(fake.oneSignalAnswers.withLockedValue { $0.map(\.0) }.contains("not-a-uuid") == false, "refused before it is sent")
        }
        try await Self.with(apiKey: "os_v2_app_wrong") { fake, transport in
            let error = await #expect(throws: PushError.self) {
                _ = try await transport.send(APNsTests.alert, subscriptionID: Self.subscription(), messageID: UUID().uuidString)
            }
            #expect(error?.code == .providerAuthFailed && error?.deviceGone == false)
            #expect(!(error?.message.contains("os_v2_app_wrong") ?? true), "the key is never in the message")
            #expect(fake.oneSignalDelivered().isEmpty)
        }
    }
}
