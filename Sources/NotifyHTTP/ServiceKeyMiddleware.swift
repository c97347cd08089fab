import Crypto
import Foundation
import Hummingbird

/// Admits callers presenting the platform's service key (the workers and the gateway calling users/templates).
/// Only the key's SHA-256 is held; comparison is constant-time.
public struct ServiceKeyMiddleware: RouterMiddleware {
    public typealias Context = NotifyRequestContext
    let digest: [UInt8]

    public init(serviceKey: String) {
        self.digest = Array(SHA256.hash(data: Data(serviceKey.utf8)))
    }

    /// Compares every byte whatever the first difference, so timing says nothing about the key.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var difference: UInt8 = 0
        for index in a.indices { difference |= a[index] ^ b[index] }
        return difference == 0
    }

    /// True when the credential is the service key.
    public func matches(_ credential: String) -> Bool {
        Self.constantTimeEqual(Array(SHA256.hash(data: Data(credential.utf8))), digest)
    }

    public func handle(
        _ request: Request,
        context: Context,
        next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var context = context
        if context.identity == nil, let credential = request.credential, matches(credential) {
            context.identity = Identity(client: "service", keyID: nil, scopes: [Scope.service])
        }
        guard context.identity != nil else { throw APIError.unauthorized }
        return try await next(request, context)
    }
}
