import Foundation
import HTTPTypes
import Hummingbird

/// Cross-origin access for browser clients (`NOTIFY_CORS_ORIGINS`): off unless configured, and then only for the
/// listed origins, never `*`. Browsers send the credential as an `Authorization` or `X-API-Key` header, never a
/// cookie, so credentials mode is not allowed either. Preflights are answered before authentication (they carry no
/// credential); every other answer to an allowed origin, errors included, names that origin.
public struct CORSPolicy: Sendable, Equatable {
    public let origins: Set<String>
    public static let allowedMethods = "GET, POST, PUT, PATCH, DELETE"
    public static let allowedHeaders = "Authorization, Content-Type, X-API-Key, Idempotency-Key, X-Correlation-ID"
    public static let exposedHeaders =
        "X-Correlation-ID, Retry-After, Idempotent-Replayed, RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset, Location"
    /// How long a browser may keep a preflight's answer.
    public static let maxAgeSeconds = 600

    public init(origins: Set<String>) { self.origins = origins }

    /// `https://app.example.com, http://localhost:3000`: each an origin (scheme, host, optional port; no path), as a
    /// browser sends it. Nil or blank: CORS is off. Problems name the entry and the rule it breaks.
    public static func parse(_ text: String?, variable: String = "NOTIFY_CORS_ORIGINS", problems: inout [String]) -> CORSPolicy? {
        guard let text, !text.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
        var origins: Set<String> = []
        for entry in text.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            guard let origin = origin(entry) else {
                problems.append(
                    "\(variable): \(entry.debugDescription) is not an origin (http or https, a host, an optional port, nothing after; '*' is not allowed)"
                )
                continue
            }
            origins.insert(origin)
        }
        return origins.isEmpty ? nil : CORSPolicy(origins: origins)
    }

    /// The origin in the form browsers send it (lowercase scheme and host, no default port), or nil.
    static func origin(_ text: String) -> String? {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(),
            scheme == "http" || scheme == "https", let host = components.host?.lowercased(), !host.isEmpty,
            components.path.isEmpty, components.query == nil, components.fragment == nil, components.user == nil,
            components.password == nil
        else { return nil }
        let port = components.port.flatMap { (scheme == "http" && $0 == 80) || (scheme == "https" && $0 == 443) ? nil : $0 }
        return "\(scheme)://\(host)" + (port.map { ":\($0)" } ?? "")
    }

    /// True for an `Origin` header that is one of the list (compared as browsers send it: exact).
    public func allows(_ origin: String) -> Bool { origins.contains(origin) }

    static let requestMethod = HTTPField.Name("Access-Control-Request-Method")!
    static let allowOrigin = HTTPField.Name("Access-Control-Allow-Origin")!
    static let allowMethods = HTTPField.Name("Access-Control-Allow-Methods")!
    static let allowHeaders = HTTPField.Name("Access-Control-Allow-Headers")!
    static let exposeHeaders = HTTPField.Name("Access-Control-Expose-Headers")!
    static let maxAge = HTTPField.Name("Access-Control-Max-Age")!
    static let origin = HTTPField.Name("Origin")!
    static let vary = HTTPField.Name("Vary")!

    /// A preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) gets its answer here: 204 with the
    /// allowed methods and headers for a listed origin, 403 in the envelope for any other. Nil: not a preflight.
    func preflight(_ request: Request) -> Response? {
        guard request.method == .options, let origin = request.headers[Self.origin], request.headers[Self.requestMethod] != nil else {
            return nil
        }
        guard allows(origin) else {
            return APIError.forbidden("Cross-origin requests from this origin are not allowed").response()
        }
        return Response(
            status: .noContent,
            headers: [
                Self.allowOrigin: origin, Self.allowMethods: Self.allowedMethods, Self.allowHeaders: Self.allowedHeaders,
                Self.maxAge: String(Self.maxAgeSeconds), Self.vary: "Origin",
            ]
        )
    }

    /// Names the request's origin on the answer when it is listed; answers differ by origin, so caches key on it.
    func decorate(_ response: inout Response, for request: Request) {
        response.headers.append(HTTPField(name: Self.vary, value: "Origin"))
        guard let origin = request.headers[Self.origin], allows(origin) else { return }
        response.headers[Self.allowOrigin] = origin
        response.headers[Self.exposeHeaders] = Self.exposedHeaders
    }
}
