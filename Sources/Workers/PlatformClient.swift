import AsyncHTTPClient
import Breakers
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1

/// What a worker needs to know about the recipient (the user service's contact view).
public struct Recipient: Sendable, Decodable {
    public struct Preferences: Sendable, Decodable {
        public var email: Bool
        public var push: Bool
    }

    /// An active push destination.
    public struct Device: Sendable, Decodable {
        public var deviceID: String
        public var platform: String
        public var token: String

        enum CodingKeys: String, CodingKey {
            case deviceID = "device_id"
            case platform, token
        }
    }

    public var userID: UUID
    public var name: String
    public var email: String
    public var preferences: Preferences
    public var devices: [Device]

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case name, email, preferences, devices
    }
}

/// A template version as the template service returns it.
public struct TemplateContent: Sendable, Decodable {
    public var code: String
    public var channel: String
    public var version: Int
    public var language: String
    public var subject: String?
    public var body: String
    public var htmlBody: String?
    public var title: String?
    public var imageURL: String?
    public var link: String?

    enum CodingKeys: String, CodingKey {
        case code, channel, version, language, subject, body
        case htmlBody = "html_body"
        case title
        case imageURL = "image_url"
        case link
    }
}

/// Calls the user and template services with the service key, carrying the correlation id.
public struct PlatformClient: Sendable {
    let http: HTTPClient
    let usersURL: String
    let templatesURL: String
    let serviceKey: String
    public let usersBreaker: CircuitBreaker
    public let templatesBreaker: CircuitBreaker

    public init(
        http: HTTPClient, usersURL: String, templatesURL: String, serviceKey: String, usersBreaker: CircuitBreaker,
        templatesBreaker: CircuitBreaker
    ) {
        self.http = http
        self.usersURL = usersURL
        self.templatesURL = templatesURL
        self.serviceKey = serviceKey
        self.usersBreaker = usersBreaker
        self.templatesBreaker = templatesBreaker
    }

    public func recipient(_ userID: UUID, correlationID: String) async throws -> Recipient {
        try await usersBreaker.run(
            {
                try await get(Recipient.self, url: "\(usersURL)/api/v1/users/\(userID.uuidString.lowercased())/contact", what: "user", correlationID: correlationID)
            },
            isFailure: Self.countsAgainstService)
    }

    public func template(_ code: String, language: String?, correlationID: String) async throws -> TemplateContent {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let path = code.addingPercentEncoding(withAllowedCharacters: allowed) ?? code
        var url = "\(templatesURL)/api/v1/templates/\(path)"
        if let language, let encoded = language.addingPercentEncoding(withAllowedCharacters: allowed) { url += "?language=\(encoded)" }
        return try await templatesBreaker.run(
            { try await get(TemplateContent.self, url: url, what: "template", correlationID: correlationID) }, isFailure: Self.countsAgainstService)
    }

    /// A missing user or template is an answer, not an outage.
    static func countsAgainstService(_ error: any Error) -> Bool {
        (error as? DeliveryFailure)?.permanent != true
    }

    struct Wrapped<T: Decodable>: Decodable {
        var data: T
    }

    func get<T: Decodable>(_ type: T.Type, url: String, what: String, correlationID: String) async throws -> T {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Authorization", value: "Bearer \(serviceKey)")
        request.headers.add(name: "X-Correlation-ID", value: correlationID)
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: .seconds(5))
        } catch {
            throw DeliveryFailure(message: "\(what) service unreachable", permanent: false)
        }
        let body = try await response.body.collect(upTo: 4 << 20)
        switch response.status.code {
        case 200:
            let decoder = JSONDecoder()
            do {
                return try decoder.decode(Wrapped<T>.self, from: Data(buffer: body)).data
            } catch {
                throw DeliveryFailure(message: "\(what) service sent an unreadable answer", permanent: false)
            }
        case 404:
            throw DeliveryFailure(message: "\(what) not found", permanent: true)
        default:
            throw DeliveryFailure(message: "\(what) service answered \(response.status.code)", permanent: response.status.code < 500 && response.status.code != 429)
        }
    }
}

/// A failed delivery attempt, classified: permanent failures are dead-lettered, transient ones retried.
public struct DeliveryFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var permanent: Bool
    public var retryAfter: Duration?

    public init(message: String, permanent: Bool, retryAfter: Duration? = nil) {
        self.message = message
        self.permanent = permanent
        self.retryAfter = retryAfter
    }

    public var description: String { message }
}
