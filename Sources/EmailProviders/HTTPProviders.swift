import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import SMTPTransport

/// Shared by the HTTP providers: one POST under a deadline, the answer's status, body and Retry-After.
struct ProviderCall: Sendable {
    let http: HTTPClient
    let provider: String
    let timeout: TimeAmount

    func post(_ url: String, headers: [(String, String)], body: Data) async throws -> (status: Int, body: Data, headers: HTTPHeaders) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(data: body))
        do {
            let response = try await http.execute(request, timeout: timeout)
            let bytes = try await response.body.collect(upTo: 1 << 20)
            return (Int(response.status.code), Data(buffer: bytes), response.headers)
        } catch {
            throw EmailProviderError(.providerUnavailable, detail: "\(provider) unreachable: \(error)", permanent: false)
        }
    }
}

/// SendGrid v3 Mail Send (`POST /v3/mail/send`, `Authorization: Bearer`). 202 carries the message id in
/// `X-Message-Id`; errors are `{"errors": [{"message", "field", "help"}]}`. The notification's tracking values go in
/// `custom_args`, which SendGrid copies into every event of its Event Webhook.
public struct SendGridProvider: EmailProvider {
    public let name = "sendgrid"
    let call: ProviderCall
    let baseURL: String
    let apiKey: String

    public init(http: HTTPClient, baseURL: String = "https://api.sendgrid.com", apiKey: String, timeout: TimeAmount = .seconds(10)) {
        self.call = ProviderCall(http: http, provider: "sendgrid", timeout: timeout)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.apiKey = apiKey
    }

    static func payload(_ message: EmailMessage) -> [String: Any] {
        var to: [String: Any] = ["email": message.to]
        if let name = message.toName, !name.isEmpty { to["name"] = name }
        var from: [String: Any] = ["email": message.from]
        if let name = message.fromName, !name.isEmpty { from["name"] = name }
        var content: [[String: Any]] = [["type": "text/plain", "value": message.text]]
        if let html = message.html { content.append(["type": "text/html", "value": html]) }
        var personalization: [String: Any] = ["to": [to]]
        if !message.tracking.isEmpty { personalization["custom_args"] = message.tracking }
        var payload: [String: Any] = [
            "personalizations": [personalization], "from": from, "subject": message.subject, "content": content,
        ]
        if let replyTo = message.replyTo { payload["reply_to"] = ["email": replyTo] }
        var headers: [String: String] = [:]
        for (name, value) in message.headers { headers[name] = EmailMessage.headerSafe(value) }
        if !headers.isEmpty { payload["headers"] = headers }
        return payload
    }

    public func send(_ message: EmailMessage) async throws -> String {
        let body = try JSONSerialization.data(withJSONObject: Self.payload(message))
        let answer = try await call.post(
            "\(baseURL)/v3/mail/send",
            headers: [("Authorization", "Bearer \(apiKey)"), ("Content-Type", "application/json")],
            body: body
        )
        if (200..<300).contains(answer.status) {
            return answer.headers.first(name: "X-Message-Id") ?? ""
        }
        let object = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any]
        let errors = (object?["errors"] as? [[String: Any]] ?? []).map { error in
            [error["field"] as? String, error["message"] as? String].compactMap { $0 }.joined(separator: ": ")
        }
        throw EmailProviderError.http(
            "sendgrid",
            status: answer.status,
            detail: errors.joined(separator: "; "),
            retryAfter: answer.headers.first(name: "Retry-After")
        )
    }
}

/// Mailgun Messages API (`POST /v3/{domain}/messages`, HTTP Basic `api:{key}`, form fields). 200 carries
/// `{"id": "<…>", "message": "Queued. Thank you."}`; errors are `{"message": "…"}`. Headers travel as `h:Name`, the
/// tracking values as `v:name` user variables, which Mailgun returns in every webhook's `user-variables`.
public struct MailgunProvider: EmailProvider {
    public let name = "mailgun"
    let call: ProviderCall
    let baseURL: String
    let domain: String
    let apiKey: String

    public init(http: HTTPClient, baseURL: String = "https://api.mailgun.net", domain: String, apiKey: String, timeout: TimeAmount = .seconds(10)) {
        self.call = ProviderCall(http: http, provider: "mailgun", timeout: timeout)
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.domain = domain
        self.apiKey = apiKey
    }

    static func fields(_ message: EmailMessage) -> [(String, String)] {
        var fields: [(String, String)] = [
            ("from", EmailMessage.mailbox(name: message.fromName, address: message.from)),
            ("to", EmailMessage.mailbox(name: message.toName, address: message.to)),
            ("subject", message.subject),
            ("text", message.text),
        ]
        if let html = message.html { fields.append(("html", html)) }
        if let replyTo = message.replyTo { fields.append(("h:Reply-To", replyTo)) }
        for (name, value) in message.headers { fields.append(("h:\(name)", EmailMessage.headerSafe(value))) }
        for (name, value) in message.tracking.sorted(by: { $0.key < $1.key }) { fields.append(("v:\(name)", value)) }
        return fields
    }

    /// `application/x-www-form-urlencoded`, every byte outside the unreserved set percent-encoded.
    static func formEncoded(_ fields: [(String, String)]) -> Data {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let encode = { (text: String) in text.addingPercentEncoding(withAllowedCharacters: allowed) ?? "" }
        return Data(fields.map { "\(encode($0.0))=\(encode($0.1))" }.joined(separator: "&").utf8)
    }

    public func send(_ message: EmailMessage) async throws -> String {
        let credentials = Data("api:\(apiKey)".utf8).base64EncodedString()
        let answer = try await call.post(
            "\(baseURL)/v3/\(domain)/messages",
            headers: [("Authorization", "Basic \(credentials)"), ("Content-Type", "application/x-www-form-urlencoded")],
            body: Self.formEncoded(Self.fields(message))
        )
        let object = (try? JSONSerialization.jsonObject(with: answer.body)) as? [String: Any]
        if (200..<300).contains(answer.status) { return object?["id"] as? String ?? "" }
        throw EmailProviderError.http(
            "mailgun",
            status: answer.status,
            detail: object?["message"] as? String ?? "",
            retryAfter: answer.headers.first(name: "Retry-After")
        )
    }
}
