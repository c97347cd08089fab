import Foundation
import Hummingbird
import Telemetry

/// `GET /metrics` (public, like `/health`): runs the collectors, then emits the registry.
public struct MetricsRoute: Sendable {
    /// Who may read `/metrics` (`NOTIFY_METRICS_ACCESS`): `loopback` (the default: callers on this host, or any caller
    /// with `Authorization: Bearer $NOTIFY_METRICS_TOKEN`) or `public` (anyone who can reach the port: leave that
    /// to network policy). Others get 404, as if there were no such page.
    public enum Access: String, Sendable { case loopback, `public` }

    let collectors: [@Sendable () async -> Void]
    let access: Access
    let token: String?

    public init(
        collectors: [@Sendable () async -> Void] = [],
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) {
        self.collectors = collectors
        self.access = Access(rawValue: environment["NOTIFY_METRICS_ACCESS"] ?? "") ?? .loopback
        self.token = environment["NOTIFY_METRICS_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Whether this caller may read the metrics.
    public static func allows(peer: String?, authorization: String?, access: Access, token: String?) -> Bool {
        if access == .public { return true }
        if let token, let authorization, authorization.hasPrefix("Bearer ") {
            let given = Array(authorization.dropFirst("Bearer ".count).utf8)
            let expected = Array(token.utf8)
            // Constant time over the expected length.
            var difference = given.count ^ expected.count
            for index in expected.indices { difference |= Int(expected[index] ^ (index < given.count ? given[index] : 0)) }
            if difference == 0 { return true }
        }
        guard let peer else { return false }
        return peer == "127.0.0.1" || peer == "::1" || peer.hasPrefix("127.") || peer == "::ffff:127.0.0.1"
    }

    public func register(on router: Router<NotifyRequestContext>) {
        router.get("/metrics") { [access, token] request, context -> Response in
            guard Self.allows(peer: context.remoteAddress, authorization: request.headers[.authorization], access: access, token: token) else {
                throw APIError.notFound(.notFound, "No such page")
            }
            Telemetry.recordBreakers()
            await withTaskGroup(of: Void.self) { group in
                for collector in collectors { group.addTask { await collector() } }
            }
            return Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: Telemetry.exposition()))
            )
        }
    }
}
