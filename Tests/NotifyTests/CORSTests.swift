import Foundation
import Gateway
import NIOHTTP1
import NotifyConfig
import NotifyHTTP
import Testing

/// Browser clients: CORS on the gateway and the user service, off by default, an allow-list when configured.
@Suite struct CORSTests {
    static let origins = "https://app.example.com, http://LOCALHOST:3000, https://admin.example.com:443"

    @Test("the allow-list is parsed as browsers send origins; '*', paths and other schemes are configuration errors")
    func parsing() {
        var problems: [String] = []
        let policy = CORSPolicy.parse(Self.origins, problems: &problems)
        #expect(problems.isEmpty)
        #expect(policy?.origins == ["https://app.example.com", "http://localhost:3000", "https://admin.example.com"])
        #expect(CORSPolicy.parse(nil, problems: &problems) == nil)
        #expect(CORSPolicy.parse("  ", problems: &problems) == nil)
        #expect(problems.isEmpty)
        _ = CORSPolicy.parse("*, https://ok.example.com/path, ftp://files.example.com, https://ok.example.com", problems: &problems)
        #expect(problems.count == 3, "\(problems)")
        #expect(problems.allSatisfy { $0.hasPrefix("NOTIFY_CORS_ORIGINS: ") })
        let base = [
            "NOTIFY_SERVICE_KEY": "service-key", "NOTIFY_JWT_SECRET": String(repeating: "s", count: 32), "NOTIFY_PG_USER": "notify",
            "NOTIFY_PG_PASSWORD": "secret",
        ]
        #expect(throws: Never.self) { try GatewayConfiguration(EnvironmentReader(base.merging(["NOTIFY_CORS_ORIGINS": Self.origins]) { $1 })) }
        let error = #expect(throws: ConfigurationError.self) {
            try GatewayConfiguration(EnvironmentReader(base.merging(["NOTIFY_CORS_ORIGINS": "*"]) { $1 }))
        }
        #expect(error?.problems.count == 1 && error?.problems.first?.hasPrefix("NOTIFY_CORS_ORIGINS") == true, "\(String(describing: error))")
    }

    /// Preflight and requests from a listed origin, another origin, and no origin, on one service.
    func check(_ stack: RouterHarness, path: String, credential: [String: String]) async throws {
        let preflight = try await stack.call(
            .OPTIONS,
            path,
            headers: [
                "Origin": "https://app.example.com", "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            ]
        )
        #expect(preflight.status == 204, "a preflight carries no credential and is answered before authentication")
        #expect(preflight.headers["Access-Control-Allow-Origin"].first == "https://app.example.com")
        #expect(preflight.headers["Access-Control-Allow-Methods"].first?.contains("POST") == true)
        let allowedHeaders = preflight.headers["Access-Control-Allow-Headers"].first?.lowercased() ?? ""
        #expect(allowedHeaders.contains("authorization") && allowedHeaders.contains("content-type") && allowedHeaders.contains("idempotency-key"))
        #expect(preflight.headers["Access-Control-Allow-Credentials"].isEmpty, "credentials travel in headers, never cookies")

        let foreign = try await stack.call(.OPTIONS, path, headers: ["Origin": "https://evil.example.net", "Access-Control-Request-Method": "POST"])
        #expect(foreign.status == 403)
        #expect(foreign.json["error"] as? String == "FORBIDDEN")
        #expect(foreign.headers["Access-Control-Allow-Origin"].isEmpty)

        // The answer names a listed origin, errors included, so the browser lets the page read why.
        let unauthorized = try await stack.call(.GET, path, headers: ["Origin": "http://localhost:3000"])
        #expect(unauthorized.status == 401)
        #expect(unauthorized.headers["Access-Control-Allow-Origin"].first == "http://localhost:3000")
        var headers = credential
        headers["Origin"] = "https://app.example.com"
        let allowed = try await stack.call(.GET, path, headers: headers)
        #expect(allowed.status == 200, "\(allowed.json)")
        #expect(allowed.headers["Access-Control-Allow-Origin"].first == "https://app.example.com")
        #expect(allowed.headers["Access-Control-Expose-Headers"].first?.contains("X-Correlation-ID") == true)
        #expect(allowed.headers["Vary"].contains("Origin"))
        headers["Origin"] = "https://evil.example.net"
        let other = try await stack.call(.GET, path, headers: headers)
        #expect(other.status == 200, "the browser, not the server, withholds the answer from a foreign page")
        #expect(other.headers["Access-Control-Allow-Origin"].isEmpty)
    }

    @Test("gateway: listed origins get preflights and readable answers (errors too); others and unconfigured services get none")
    func gateway() async throws {
        try await RouterHarness.with(.gateway, extra: ["NOTIFY_CORS_ORIGINS": Self.origins]) { stack in
            try await check(stack, path: "/api/v1/notifications/?limit=1", credential: ["Authorization": "Bearer \(stack.apiKey)"])
        }
        try await RouterHarness.with(.gateway) { stack in
            let preflight = try await stack.call(
                .OPTIONS,
                "/api/v1/notifications/",
                headers: ["Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"]
            )
            #expect(preflight.status != 204)
            #expect(preflight.headers["Access-Control-Allow-Origin"].isEmpty, "off by default")
            let get = try await stack.call(
                .GET,
                "/api/v1/notifications/?limit=1",
                headers: ["Authorization": "Bearer \(stack.apiKey)", "Origin": "https://app.example.com"]
            )
            #expect(get.status == 200)
            #expect(get.headers["Access-Control-Allow-Origin"].isEmpty, "off by default")
        }
    }

    @Test("user service: the same allow-list rules")
    func users() async throws {
        try await RouterHarness.with(.users, extra: ["NOTIFY_CORS_ORIGINS": Self.origins]) { stack in
            try await check(stack, path: "/api/v1/users/?limit=1", credential: stack.serviceAuth)
        }
    }
}
