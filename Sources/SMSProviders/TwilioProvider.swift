import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// Twilio Programmable Messaging (`POST /2010-04-01/Accounts/{AccountSid}/Messages.json`, HTTP Basic
/// `AccountSid:AuthToken`, form fields `To`, `From` or `MessagingServiceSid`, `Body`, `StatusCallback`). 201 carries
/// the message resource, whose `sid` its status callbacks name; errors are `{"code", "message", "more_info", "status"}`,
/// classified by Twilio's error code first, the HTTP status next.
public struct TwilioProvider: SMSProvider {
    public let name = "twilio"
    let call: SMSProviderCall
    let baseURL: String
    let accountSID: String
    let authToken: String
    let from: String?
    let messagingServiceSID: String?

    /// `from` is the sender when a message names none; a messaging service, when configured, chooses the sender from
    /// its pool instead.
    public init(
        http: HTTPClient,
        baseURL: String = "https://api.twilio.com",
        accountSID: String,
        authToken: String,
        from: String?,
        messagingServiceSID: String?,
        timeout: TimeAmount = .seconds(10)
    ) {
        self.call = SMSProviderCall(http: http, provider: "twilio", timeout: timeout)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.accountSID = accountSID
        self.authToken = authToken
        self.from = from
        self.messagingServiceSID = messagingServiceSID
    }

    func fields(_ message: SMSMessage) -> [(String, String)] {
        var fields = [("To", message.to)]
        if let messagingServiceSID, !messagingServiceSID.isEmpty {
            fields.append(("MessagingServiceSid", messagingServiceSID))
        } else if let sender = message.from.isEmpty ? from : message.from {
            fields.append(("From", sender))
        }
        fields.append(("Body", message.body))
        if let callback = message.statusCallback { fields.append(("StatusCallback", callback)) }
        return fields
    }

    public func send(_ message: SMSMessage) async throws -> String {
        _ = try message.checkedText(name)
        let credentials = Data("\(accountSID):\(authToken)".utf8).base64EncodedString()
        let answer = try await call.post(
            "\(baseURL)/2010-04-01/Accounts/\(accountSID)/Messages.json",
            headers: [("Authorization", "Basic \(credentials)")],
            form: fields(message)
        )
        let object = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any]
        if (200..<300).contains(answer.status) { return object?["sid"] as? String ?? "" }
        throw Self.classify(
            status: answer.status,
            code: (object?["code"] as? NSNumber)?.intValue,
            message: object?["message"] as? String ?? "",
            retryAfter: answer.headers.first(name: "Retry-After")
        )
    }

    /// Twilio's error codes that say something about the recipient are permanent; the rest follow the HTTP status.
    static func classify(status: Int, code: Int?, message: String, retryAfter: String?) -> SMSProviderError {
        let text = (code.map { "\($0) " } ?? "") + message
        let recipient: SMSErrorCode?
        switch code {
        case 21211, 21614, 21217: recipient = .invalidNumber
        case 21610: recipient = .recipientOptedOut
        case 21612, 21408, 30003, 30004, 30005, 30006: recipient = .unreachableNumber
        default: recipient = nil
        }
        if let recipient {
            return SMSProviderError(recipient, detail: "twilio answered \(status): \(text)", permanent: true, status: status)
        }
        switch code {
        case 20003: return .http("twilio", status: 401, detail: text, retryAfter: retryAfter)
        case 20429: return .http("twilio", status: 429, detail: text, retryAfter: retryAfter)
        default: return .http("twilio", status: status, detail: text, retryAfter: retryAfter)
        }
    }
}
