import Breakers
import Foundation
import Hummingbird
import NotificationModel

/// The state of one dependency as `/health` reports it.
public struct DependencyHealth: Codable, Sendable {
    public enum Status: String, Codable, Sendable { case up, degraded, down }
    public var status: Status
    public var detail: String?
    public var latencyMs: Double?

    public init(status: Status, detail: String? = nil, latencyMs: Double? = nil) {
        self.status = status
        self.detail = detail
        self.latencyMs = latencyMs
    }

    enum CodingKeys: String, CodingKey {
        case status, detail
        case latencyMs = "latency_ms"
    }
}

/// A named probe; a critical dependency that is down makes the process `down` (503), any other problem `degraded`.
public struct HealthCheck: Sendable {
    public var name: String
    public var critical: Bool
    public var probe: @Sendable () async -> DependencyHealth

    public init(_ name: String, critical: Bool = true, probe: @escaping @Sendable () async -> DependencyHealth) {
        self.name = name
        self.critical = critical
        self.probe = probe
    }

    /// Times a throwing probe: success is `up`, an error is `down` with the error's kind (never its text, which may hold secrets).
    public static func timed(_ name: String, critical: Bool = true, _ body: @escaping @Sendable () async throws -> Void) -> HealthCheck {
        HealthCheck(name, critical: critical) {
            let start = ContinuousClock.now
            do {
                try await body()
                let elapsed = ContinuousClock.now - start
                return DependencyHealth(
                    status: .up,
                    latencyMs: elapsed.inSeconds * 1000
                )
            } catch {
                return DependencyHealth(status: .down, detail: String(describing: type(of: error)))
            }
        }
    }
}

public struct HealthReport: Codable, Sendable {
    public var service: String
    public var status: DependencyHealth.Status
    public var checks: [String: DependencyHealth]
}

public struct HealthRoutes: Sendable {
    let service: String
    let checks: [HealthCheck]

    public init(service: String, checks: [HealthCheck]) {
        self.service = service
        self.checks = checks
    }

    public func register(on router: Router<NotifyRequestContext>) {
        router.get("/health") { _, _ in await self.report() }
        router.get("/api/v1/health") { _, _ in await self.report() }
    }

    func report() async -> Response {
        var results: [String: DependencyHealth] = [:]
        await withTaskGroup(of: (String, DependencyHealth).self) { group in
            for check in checks {
                group.addTask { (check.name, await check.probe()) }
            }
            for await (name, health) in group { results[name] = health }
        }
        var status = DependencyHealth.Status.up
        for check in checks {
            switch results[check.name]?.status {
            case .down?: status = check.critical ? .down : (status == .down ? .down : .degraded)
            case .degraded?: if status == .up { status = .degraded }
            default: break
            }
        }
        let report = HealthReport(service: service, status: status, checks: results)
        let message = status == .down ? "Service unavailable" : (status == .degraded ? "Service degraded" : "Service healthy")
        if status == .down {
            let envelope = Envelope(success: false, data: report, error: ErrorCode.dependencyUnavailable.rawValue, message: message, meta: .single)
            return .json(.serviceUnavailable, envelope)
        }
        return .envelope(data: report, message: message)
    }
}

extension HealthCheck {
    /// Reports a circuit breaker: `up` when closed, `degraded` otherwise (never critical: the process works around it).
    public static func breaker(_ breaker: CircuitBreaker) -> HealthCheck {
        HealthCheck("circuit:\(breaker.name)", critical: false) {
            let snapshot = breaker.snapshot
            return DependencyHealth(status: snapshot.state == .closed ? .up : .degraded, detail: snapshot.state.rawValue)
        }
    }
}

/// `GET /openapi.json`: the service's OpenAPI document, public like `/health`.
public struct OpenAPIRoute: Sendable {
    let document: Data

    public init(document: Data) { self.document = document }

    public func register(on router: Router<NotifyRequestContext>) {
        router.get("/openapi.json") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/json; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(bytes: document))
            )
        }
    }
}
