import Credentials
import Crypto
import Foundation
import Hummingbird
import NotifyHTTP

/// Who may call the user service: the platform's service key (other services), a client API key from the
/// notifications database with `users:read`/`users:write` scopes, or a user's own access token.
struct UserAuthMiddleware: RouterMiddleware {
    typealias Context = NotifyRequestContext

    let serviceKey: ServiceKeyMiddleware
    let tokens: AccessTokens
    let apiKeys: APIKeyStore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let credential = request.credential else { throw APIError.unauthorized }
        var context = context
        if serviceKey.matches(credential) {
            context.identity = Identity(client: "service", keyID: nil, scopes: ["service"])
        } else if credential.split(separator: ".").count == 3 {
            guard let userID = await tokens.verify(credential) else { throw APIError.unauthorized }
            context.identity = Identity(client: "user", keyID: nil, scopes: ["user"], userID: userID)
        } else {
            let record: APIKeyRecord?
            do { record = try await apiKeys.find(key: credential) } catch {
                throw APIError.dependencyUnavailable("The credential store is unavailable; try again shortly")
            }
            guard let record else { throw APIError.unauthorized }
            context.identity = Identity(client: record.client, keyID: record.id, scopes: Set(record.scopes))
        }
        return try await next(request, context)
    }
}
