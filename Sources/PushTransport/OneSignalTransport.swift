import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel

/// OneSignal's REST API, for teams whose apps route push through OneSignal: `POST {base}/notifications` with the app
/// id and the app's REST API key (`Authorization: Key …`), one subscription id per request. Each request carries an
/// idempotency key derived from the notification and the subscription, so a retried attempt is not delivered twice.
public struct OneSignalTransport: Sendable {
    let http: HTTPClient
    let baseURL: String
    let appID: String
    let apiKey: String

    public init(http: HTTPClient, baseURL: String, appID: String, apiKey: String) {
        self.http = http
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.appID = appID
        self.apiKey = apiKey
    }

    /// OneSignal's notification for one subscription: headings/contents, data, image per platform, launch URL,
    /// priority, TTL and collapse id.
    public static func payload(_ message: PushMessage, appID: String, subscriptionID: String, messageID: String) -> [String: Any] {
        var payload: [String: Any] = [
            "app_id": appID,
            "target_channel": "push",
            "include_subscription_ids": [subscriptionID],
            "data": message.data.merging(["message_id": messageID]) { $1 },
            "priority": message.priority >= 7 ? 10 : 5,
            "ttl": message.timeToLive,
            "idempotency_key": idempotencyKey(messageID: messageID, subscriptionID: subscriptionID),
        ]
        if message.title.isEmpty && message.body.isEmpty {
            payload["content_available"] = true
        } else {
            payload["headings"] = ["en": message.title]
            payload["contents"] = ["en": message.body]
        }
        if let image = message.imageURL {
            payload["big_picture"] = image
            payload["chrome_web_image"] = image
            payload["ios_attachments"] = ["image": image]
            payload["mutable_content"] = true
        }
        if let link = message.link { payload["url"] = link }
        if let collapse = message.collapseID { payload["collapse_id"] = APNsTransport.collapseID(collapse) }
        return payload
    }

    /// A UUID made from the notification and the subscription (name-based, SHA-256): the same pair always gives the
    /// same key, which OneSignal keeps for 30 days.
    static func idempotencyKey(messageID: String, subscriptionID: String) -> String {
        var bytes = Array(SHA256.hash(data: Data("\(messageID)/\(subscriptionID)".utf8)).prefix(16))
        bytes[6] = (bytes[6] & 0x0F) | 0x80  // version 8: custom
        bytes[8] = (bytes[8] & 0x3F) | 0x80  // RFC 9562 variant
        let id = UUID(
            uuid: (
                bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7], bytes[8], bytes[9], bytes[10], bytes[11], bytes[12],
                bytes[13], bytes[14], bytes[15]
            )
        )
        return id.lowercased
    }

    /// Returns OneSignal's notification id.
    public func send(_ message: PushMessage, subscriptionID: String, messageID: String) async throws -> String {
        guard UUID(text: subscriptionID) != nil else {
            throw PushError(.malformedSubscription, message: "onesignal subscription id is not a UUID", permanent: true, deviceGone: true)
        }
        let body = try JSONSerialization.data(
            withJSONObject: Self.payload(message, appID: appID, subscriptionID: subscriptionID, messageID: messageID),
            options: [.withoutEscapingSlashes]
        )
        var request = HTTPClientRequest(url: "\(baseURL)/notifications")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        request.headers.add(name: "Authorization", value: "Key \(apiKey)")
        request.body = .bytes(ByteBuffer(data: body))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(10))
        } catch {
            throw PushError(.providerUnavailable, message: "onesignal unreachable: \(error)", permanent: false)
        }
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let status = Int(response.status.code)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any]
        return try Self.outcome(status: status, body: object, retryAfter: response.headers.first(name: "Retry-After"))
    }

    /// OneSignal answers 200 even when nobody was reached: `id` is then empty and `errors` names why (an unsubscribed or
    /// unknown subscription: the device is gone). Other statuses follow HTTP: 429 and 5xx transient, 401/403 the
    /// platform's key, 400 the request.
    static func outcome(status: Int, body: [String: Any]?, retryAfter: String?) throws -> String {
        let errors = body?["errors"]
        let errorText: String
        switch errors {
        case let list as [String]: errorText = list.joined(separator: "; ")
        case let map as [String: Any]: errorText = map.keys.sorted().joined(separator: ", ")
        default: errorText = ""
        }
        if (200..<300).contains(status) {
            if let id = body?["id"] as? String, !id.isEmpty { return id }
            let gone =
                errorText.contains("invalid_player_ids") || errorText.contains("invalid_aliases") || errorText.contains("not subscribed")
                || errorText.contains("invalid_subscription_ids") || errorText.isEmpty
            throw PushError(
                gone ? .deviceGone : .rejectedByProvider,
                message: "onesignal reached nobody: \(errorText.isEmpty ? "no recipients" : errorText)",
                permanent: true,
                deviceGone: gone
            )
        }
        return try { throw PushError.http("onesignal", status: status, detail: errorText, retryAfter: retryAfter) }()
    }
}
