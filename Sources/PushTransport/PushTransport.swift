import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// A push notification as the platform describes it, before it is mapped to a provider's format.
public struct PushMessage: Sendable {
    public var token: String
    public var title: String
    public var body: String
    public var imageURL: String?
    public var link: String?
    public var data: [String: String]

    public init(token: String, title: String, body: String, imageURL: String?, link: String?, data: [String: String]) {
        self.token = token
        self.title = title
        self.body = body
        self.imageURL = imageURL
        self.link = link
        self.data = data
    }
}

public struct PushError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var permanent: Bool
    public var retryAfterSeconds: Int?
    public var description: String { message }
}

/// Sends to an FCM HTTP v1-shaped endpoint: `POST {base}/v1/projects/{project}/messages:send`.
/// (OAuth2 service-account tokens, Web Push and error mapping to device hygiene arrive with the push issue.)
public struct FCMTransport: Sendable {
    let http: HTTPClient
    let baseURL: String
    let projectID: String
    let accessToken: String?

    public init(http: HTTPClient, baseURL: String, projectID: String, accessToken: String?) {
        self.http = http
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.projectID = projectID
        self.accessToken = accessToken
    }

    /// Returns the provider's message name.
    public func send(_ message: PushMessage, messageID: String) async throws -> String {
        var notification: [String: Any] = ["title": message.title, "body": message.body]
        if let image = message.imageURL { notification["image"] = image }
        var data = message.data
        data["message_id"] = messageID
        if let link = message.link { data["link"] = link }
        var payload: [String: Any] = ["token": message.token, "notification": notification, "data": data]
        if let link = message.link { payload["webpush"] = ["fcm_options": ["link": link]] }
        let body = try JSONSerialization.data(withJSONObject: ["message": payload])

        var request = HTTPClientRequest(url: "\(baseURL)/v1/projects/\(projectID)/messages:send")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let accessToken { request.headers.add(name: "Authorization", value: "Bearer \(accessToken)") }
        request.body = .bytes(ByteBuffer(data: body))
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(10))
        } catch {
            throw PushError(message: "push: \(type(of: error))", permanent: false, retryAfterSeconds: nil)
        }
        let bytes = try await response.body.collect(upTo: 1 << 20)
        let code = Int(response.status.code)
        if (200..<300).contains(code) {
            let object = (try? JSONSerialization.jsonObject(with: Data(buffer: bytes))) as? [String: Any]
            return object?["name"] as? String ?? ""
        }
        let retryAfter = response.headers.first(name: "Retry-After").flatMap(Int.init)
        let transient = code == 429 || code >= 500
        throw PushError(message: "push provider answered \(code)", permanent: !transient, retryAfterSeconds: retryAfter)
    }
}
