import Foundation
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// A user-supplied URL the platform would send to, refused: the reason is safe to show to whoever supplied it.
public struct EndpointRefused: Error, CustomStringConvertible, Sendable {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// Which user-supplied URLs (Web Push subscription endpoints) the platform sends to: `https` on the default port, a
/// public host name on the allow-list (by default the push services browsers use), never an internal address.
///
/// `allowLoopback` admits `http(s)://127.0.0.1` and `[::1]` endpoints for local development and tests (the local Web
/// Push stand-in); it is off unless `NOTIFY_WEBPUSH_ALLOW_LOOPBACK=true`.
public struct EndpointPolicy: Sendable {
    /// Host names (`fcm.googleapis.com`) and wildcard suffixes (`*.notify.windows.com`: any subdomain). Empty: any
    /// public host.
    public var allowedHosts: [String]
    public var allowLoopback: Bool
    /// Name resolution (getaddrinfo, on a thread pool); replaceable in tests to play a rebinding resolver.
    public var lookup: @Sendable (String) async throws -> [IPAddress] = { host in
        try await NIOThreadPool.singleton.runIfActive { try EndpointPolicy.systemLookup(host) }
    }

    /// The push services of Chrome and other Chromium browsers, Firefox, Safari and Edge.
    public static let knownPushServices = [
        "fcm.googleapis.com", "updates.push.services.mozilla.com", "web.push.apple.com", "*.push.apple.com", "*.notify.windows.com",
    ]

    public init(allowedHosts: [String] = EndpointPolicy.knownPushServices, allowLoopback: Bool = false) {
        self.allowedHosts = allowedHosts.map { $0.lowercased() }
        self.allowLoopback = allowLoopback
    }

    /// From `NOTIFY_WEBPUSH_ALLOWED_HOSTS` (comma-separated; `*` for any public host; unset: the known push services)
    /// and `NOTIFY_WEBPUSH_ALLOW_LOOPBACK`.
    public init(environment value: (String) -> String?) {
        let hosts = value("NOTIFY_WEBPUSH_ALLOWED_HOSTS").map {
            $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let list: [String]
        if let hosts { list = hosts == ["*"] ? [] : hosts } else { list = Self.knownPushServices }
        self.init(allowedHosts: list, allowLoopback: value("NOTIFY_WEBPUSH_ALLOW_LOOPBACK") == "true")
    }

    /// Why the endpoint may not be registered or sent to, or nil. Judged from the text alone (no DNS); the address a
    /// name resolves to is judged when connecting (`resolve`).
    public func refusal(endpoint text: String) -> String? {
        guard text.count <= 2048, let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            let rawHost = components.host, !rawHost.isEmpty
        else { return "must be an absolute https URL" }
        guard components.user == nil, components.password == nil else { return "must not carry credentials" }
        let host = Self.normalized(rawHost)
        if let address = IPAddress(host) {
            if allowLoopback && AddressPolicy.isLoopback(address) { return scheme == "https" || scheme == "http" ? nil : "must be an https URL" }
            if let what = AddressPolicy.refusal(address) { return "must not point at \(what)" }
            guard scheme == "https" else { return "must be an https URL" }
            guard allowedHosts.isEmpty else { return "must name a push service's host, not an IP address" }
            return components.port == nil || components.port == 443 ? nil : "must use the default https port"
        }
        guard scheme == "https" else { return "must be an https URL" }
        if let what = Self.internalName(host) { return "must not point at \(what)" }
        guard components.port == nil || components.port == 443 else { return "must use the default https port" }
        guard isAllowed(host) else { return "must be a push service's endpoint (\(allowedHosts.joined(separator: ", ")))" }
        return nil
    }

    func isAllowed(_ host: String) -> Bool {
        allowedHosts.isEmpty
            || allowedHosts.contains { pattern in
                pattern.hasPrefix("*.") ? host.hasSuffix(pattern.dropFirst()) && host.count > pattern.count - 1 : host == pattern
            }
    }

    static func normalized(_ host: String) -> String {
        var host = host.lowercased()
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        while host.hasSuffix(".") { host.removeLast() }
        return host
    }

    /// Names that are internal by construction, or numbers a resolver would read as an address (`2130706433`,
    /// `0x7f.1`, `127.1`).
    static func internalName(_ host: String) -> String? {
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        if labels.contains(where: \.isEmpty) { return "a malformed host name" }
        if let last = labels.last, last.allSatisfy(\.isNumber) || last.hasPrefix("0x") { return "an IP address that is not in dotted-quad form" }
        if labels.count < 2 { return "a single-label (internal) host name" }
        for suffix in ["localhost", "local", "internal", "localdomain", "home.arpa", "intranet", "lan", "corp"] {
            if host == suffix || host.hasSuffix("." + suffix) { return "an internal host name (.\(suffix))" }
        }
        return nil
    }

    /// The address to connect to for `host`: every address it resolves to must be public (a name that answers with
    /// any internal address is refused as a whole), and the caller connects to the one returned, no other.
    public func resolve(host rawHost: String) async throws -> IPAddress {
        let host = Self.normalized(rawHost)
        if let address = IPAddress(host) {
            if allowLoopback && AddressPolicy.isLoopback(address) { return address }
            if let what = AddressPolicy.refusal(address) { throw EndpointRefused("the endpoint points at \(what)") }
            return address
        }
        if let what = Self.internalName(host) { throw EndpointRefused("the endpoint points at \(what)") }
        let addresses = try await lookup(host)
        guard let first = addresses.first else { throw EndpointRefused("the endpoint's host does not resolve") }
        for address in addresses {
            if allowLoopback && AddressPolicy.isLoopback(address) { continue }
            if let what = AddressPolicy.refusal(address) { throw EndpointRefused("the endpoint's host resolves to \(what)") }
        }
        return first
    }

    /// getaddrinfo: every address of the name, IPv4 first (blocking; runs on a thread pool).
    public static func systemLookup(_ host: String) throws -> [IPAddress] {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, "443", &hints, &result)
        guard status == 0, let head = result else { throw EndpointRefused("the endpoint's host does not resolve") }
        defer { freeaddrinfo(head) }
        var v4: [IPAddress] = []
        var v6: [IPAddress] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = head
        while let entry = cursor {
            if let sockaddr = entry.pointee.ai_addr {
                switch entry.pointee.ai_family {
                case AF_INET:
                    let bytes = sockaddr.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin_addr) { Array($0) }
                    }
                    if let address = IPAddress(bytes: bytes), !v4.contains(address) { v4.append(address) }
                case AF_INET6:
                    let bytes = sockaddr.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { pointer in
                        withUnsafeBytes(of: pointer.pointee.sin6_addr) { Array($0) }
                    }
                    if let address = IPAddress(bytes: bytes), !v6.contains(address) { v6.append(address) }
                default: break
                }
            }
            cursor = entry.pointee.ai_next
        }
        return v4 + v6
    }
}
