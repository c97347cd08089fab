import AsyncHTTPClient
import Breakers
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotifyHTTP

/// Asks the user service whether a user exists and which channels they accept (its answers are cached in Redis
/// there). Guarded by a breaker: when the service is down the gateway answers 503 at once instead of hanging.
struct UserDirectory: Sendable {
    struct Preferences: Decodable, Sendable {
        var email: Bool
        var push: Bool
    }

    struct Contact: Decodable, Sendable {
        var preferences: Preferences
    }

    struct Wrapped: Decodable {
        var data: Contact
    }

    let http: HTTPClient
    let baseURL: String
    let serviceKey: String
    let breaker: CircuitBreaker

    /// The user's channel preferences, or nil when there is no such user.
    func preferences(of userID: UUID, correlationID: String) async throws -> Preferences? {
        do {
            return try await breaker.run {
                var request = HTTPClientRequest(url: "\(baseURL)/api/v1/users/\(userID.uuidString.lowercased())/contact")
                request.headers.add(name: "Authorization", value: "Bearer \(serviceKey)")
                request.headers.add(name: "X-Correlation-ID", value: correlationID)
                let response = try await http.execute(request, timeout: .seconds(3))
                let body = try await response.body.collect(upTo: 1 << 20)
                switch response.status.code {
                case 200: return try JSONDecoder().decode(Wrapped.self, from: Data(buffer: body)).data.preferences
                case 404: return nil
                default: throw UserServiceError(status: Int(response.status.code))
                }
            }
        } catch {
            throw APIError.dependencyUnavailable("The user service is unavailable, so the recipient cannot be checked; try again shortly")
        }
    }

    struct UserServiceError: Error {
        var status: Int
    }
}
