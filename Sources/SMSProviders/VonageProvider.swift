import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import NotificationModel

/// Vonage's SMS API (`POST /sms/json`, form fields `api_key`, `api_secret`, `from`, `to` as digits without `+`,
/// `text`, `type=unicode` for a UCS-2 body, `client-ref`, `callback`). Vonage answers 200 whatever happened, with one
/// entry per segment in `messages`, each with its own `status` ("0" is success) and `message-id`.
public struct VonageProvider: SMSProvider {
    public let name = "vonage"
    let call: SMSProviderCall
    let baseURL: String
    let apiKey: String
    let apiSecret: String
    let from: String?

    /// `from` is the sender when a message names none.
    public init(
        http: HTTPClient,
        baseURL: String = "https://rest.nexmo.com",
        apiKey: String,
        apiSecret: String,
        from: String? = nil,
        timeout: TimeAmount = .seconds(10)
    ) {
        self.call = SMSProviderCall(http: http, provider: "vonage", timeout: timeout)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
        self.apiSecret = apiSecret
        self.from = from
    }

    func fields(_ message: SMSMessage, text: SMSText) -> [(String, String)] {
        let sender = message.from.isEmpty ? from ?? "" : message.from
        var fields = [
            ("api_key", apiKey), ("api_secret", apiSecret),
            // Vonage writes numbers as international digits without the plus.
            ("from", sender.hasPrefix("+") ? String(sender.dropFirst()) : sender),
            ("to", message.to.hasPrefix("+") ? String(message.to.dropFirst()) : message.to),
            ("text", message.body),
        ]
        if text.encoding == .ucs2 { fields.append(("type", "unicode")) }
        fields.append(("client-ref", message.messageID))
        if let callback = message.statusCallback { fields.append(("callback", callback)) }
        return fields
    }

    public func send(_ message: SMSMessage) async throws -> String {
        let text = try message.checkedText(name)
        let answer = try await call.post("\(baseURL)/sms/json", form: fields(message, text: text))
        let object = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any]
        guard (200..<300).contains(answer.status) else {
            throw SMSProviderError.http(
                "vonage",
                status: answer.status,
                detail: object?["error-text"] as? String ?? "",
                retryAfter: answer.headers.first(name: "Retry-After")
            )
        }
        let parts = object?["messages"] as? [[String: Any]] ?? []
        // A refused segment refuses the message; the first segment's id is the one delivery receipts are matched by.
        if let refused = parts.first(where: { $0["status"] as? String != "0" }) {
            throw Self.classify(status: refused["status"] as? String ?? "", text: refused["error-text"] as? String ?? "")
        }
        guard let id = parts.first?["message-id"] as? String else {
            throw SMSProviderError(.providerUnavailable, detail: "vonage answered without a message id", permanent: false, status: answer.status)
        }
        return id
    }

    /// Vonage's status table. Invalid parameters (3) and an invalid message (6, "an unrecognised prefix for the phone
    /// number") are, for a request we build, the number's fault; the account's problems (credentials, a barred
    /// account, an exhausted balance) are transient so that the next provider sends.
    static func classify(status: String, text: String) -> SMSProviderError {
        let code: SMSErrorCode
        let permanent: Bool
        switch status {
        case "1": (code, permanent) = (.rateLimited, false)
        case "5": (code, permanent) = (.providerUnavailable, false)
        case "3", "6": (code, permanent) = (.invalidNumber, true)
        case "7", "29": (code, permanent) = (.unreachableNumber, true)
        case "4", "8": (code, permanent) = (.providerAuthFailed, false)
        case "9": (code, permanent) = (.rejectedByProvider, false)
        default: (code, permanent) = (.rejectedByProvider, true)
        }
        return SMSProviderError(code, detail: "vonage status \(status): \(text)", permanent: permanent)
    }
}
