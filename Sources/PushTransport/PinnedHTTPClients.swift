import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import OutboundPolicy

/// HTTP clients for user-supplied endpoints (Web Push), each bound to the one address its host was checked to have.
///
/// A name is resolved here, every address it has is checked against the `EndpointPolicy`, and the client made for it
/// connects to the checked address only (AsyncHTTPClient's `dnsOverride`: TLS still verifies the host name), so a
/// name that resolves inward later (DNS rebinding) reaches nothing. Redirects are never followed. A name is resolved
/// again after `ttl`; at most `capacity` names are held, the least recently used client is shut down first.
public final class PinnedHTTPClients: Sendable {
    struct Entry {
        var address: IPAddress
        var client: HTTPClient
        var resolvedAt: ContinuousClock.Instant
        var usedAt: ContinuousClock.Instant
    }

    public let policy: EndpointPolicy
    let ttl: Duration
    let capacity: Int
    let requestTimeout: TimeAmount
    private let entries = NIOLockedValueBox([String: Entry]())
    /// For endpoints given as IP literals: the address is the one checked, no resolution happens.
    private let literalClient: HTTPClient

    public init(policy: EndpointPolicy, ttl: Duration = .seconds(300), capacity: Int = 256, requestTimeout: TimeAmount = .seconds(10)) {
        self.policy = policy
        self.ttl = ttl
        self.capacity = capacity
        self.requestTimeout = requestTimeout
        self.literalClient = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: Self.configuration(dnsOverride: [:]))
    }

    static func configuration(dnsOverride: [String: String]) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: .seconds(5), read: .seconds(10))
        )
        configuration.dnsOverride = dnsOverride
        return configuration
    }

    /// The client for the URL's host, after checking the URL and the address it will connect to.
    /// Throws `EndpointRefused` when either is refused.
    public func client(for url: URL) async throws -> HTTPClient {
        if let reason = policy.refusal(endpoint: url.absoluteString) { throw EndpointRefused("the endpoint \(reason)") }
        guard let rawHost = url.host else { throw EndpointRefused("the endpoint has no host") }
        let host = rawHost.lowercased()
        if IPAddress(host) != nil {
            _ = try await policy.resolve(host: host)
            return literalClient
        }
        let now = ContinuousClock.now
        if let entry = entries.withLockedValue({ entries -> Entry? in
            guard var entry = entries[host], now - entry.resolvedAt < ttl else { return nil }
            entry.usedAt = now
            entries[host] = entry
            return entry
        }) {
            return entry.client
        }
        let address = try await policy.resolve(host: host)
        let client = HTTPClient(
            eventLoopGroup: HTTPClient.defaultEventLoopGroup,
            configuration: Self.configuration(dnsOverride: [host: address.description])
        )
        var retired: [HTTPClient] = []
        let chosen = entries.withLockedValue { entries -> HTTPClient in
            // Another caller resolved it meanwhile: keep theirs if still fresh.
            if let current = entries[host], now - current.resolvedAt < ttl, current.address == address {
                retired.append(client)
                return current.client
            }
            if let stale = entries[host] { retired.append(stale.client) }
            entries[host] = Entry(address: address, client: client, resolvedAt: now, usedAt: now)
            while entries.count > capacity, let oldest = entries.min(by: { $0.value.usedAt < $1.value.usedAt })?.key {
                if let evicted = entries.removeValue(forKey: oldest) { retired.append(evicted.client) }
            }
            return entries[host]?.client ?? client
        }
        retire(retired)
        return chosen
    }

    /// A replaced client may still carry requests: it is shut down once they had time to finish.
    private func retire(_ clients: [HTTPClient]) {
        guard !clients.isEmpty else { return }
        let grace = requestTimeout + .seconds(5)
        Task {
            try? await Task.sleep(for: .nanoseconds(grace.nanoseconds))
            for client in clients { try? await client.shutdown() }
        }
    }

    public func shutdown() async {
        let clients = entries.withLockedValue { entries in
            defer { entries.removeAll() }
            return entries.values.map(\.client)
        }
        for client in clients { try? await client.shutdown() }
        try? await literalClient.shutdown()
    }
}
