import AsyncHTTPClient
import Breakers
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotifyHTTP

/// What the gateway checks before accepting a notification: the user exists and accepts the channel (and the
/// template's category), and the template exists for the channel. Answers come from the user and template services
/// (cached in Redis there), each behind a breaker: when one is down the gateway answers 503 at once, never hangs.
struct PlatformDirectory: Sendable {
    struct Preferences: Decodable, Sendable {
        var email: Bool
        var push: Bool
        var categories: [String: [String: Bool]]

        func allows(channel: String, category: String?) -> Bool {
            if let category, let override = categories[category]?[channel] { return override && (channel == "email" ? email : push) }
            return channel == "email" ? email : push
        }
    }

    struct Contact: Decodable, Sendable {
        var preferences: Preferences
    }

    struct Template: Decodable, Sendable {
        var channel: String
        var category: String?
    }

    struct Wrapped<T: Decodable>: Decodable {
        var data: T
    }

    let http: HTTPClient
    let usersURL: String
    let templatesURL: String
    let serviceKey: String
    let usersBreaker: CircuitBreaker
    let templatesBreaker: CircuitBreaker

    /// The user's preferences, or nil when there is no such user.
    func preferences(of userID: UUID, correlationID: String) async throws -> Preferences? {
        try await fetch(
            Contact.self, "\(usersURL)/api/v1/users/\(userID.uuidString.lowercased())/contact", breaker: usersBreaker, service: "user",
            correlationID: correlationID)?.preferences
    }

    /// The template's channel and category, or nil when there is no such template.
    func template(code: String, correlationID: String) async throws -> Template? {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        let path = code.addingPercentEncoding(withAllowedCharacters: allowed) ?? code
        return try await fetch(
            Template.self, "\(templatesURL)/api/v1/templates/\(path)", breaker: templatesBreaker, service: "template",
            correlationID: correlationID)
    }

    struct UnexpectedStatus: Error {
        var status: Int
    }

    func fetch<T: Decodable & Sendable>(_ type: T.Type, _ url: String, breaker: CircuitBreaker, service: String, correlationID: String) async throws
        -> T?
    {
        do {
            return try await breaker.run {
                var request = HTTPClientRequest(url: url)
                request.headers.add(name: "Authorization", value: "Bearer \(serviceKey)")
                request.headers.add(name: "X-Correlation-ID", value: correlationID)
                let response = try await http.execute(request, timeout: .seconds(3))
                let body = try await response.body.collect(upTo: 1 << 20)
                switch response.status.code {
                case 200: return try JSONDecoder().decode(Wrapped<T>.self, from: Data(buffer: body)).data
                case 404: return nil
                default: throw UnexpectedStatus(status: Int(response.status.code))
                }
            }
        } catch {
            throw APIError.dependencyUnavailable("The \(service) service is unavailable, so the request cannot be checked; try again shortly")
        }
    }
}
