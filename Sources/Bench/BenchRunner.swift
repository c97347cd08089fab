import AsyncHTTPClient
import Credentials
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO

/// What to run: the load shape and where the platform is.
public struct BenchOptions: Sendable {
    public enum Mode: String, Sendable { case open, closed }
    /// Gateways to spread the requests over (round robin).
    public var gatewayURLs = ["http://127.0.0.1:8000"]
    public var templatesURL = "http://127.0.0.1:8002"
    public var serviceKey = ""
    public var postgres: PostgresSettings
    /// open: requests start at a fixed rate whatever the answers (latency counted from the scheduled start);
    /// closed: `concurrency` clients each send the next request when the last one answered.
    public var mode = Mode.closed
    public var rate = 500.0
    public var concurrency = 32
    public var count = 10_000
    public var durationSeconds = 60.0
    /// Recipients and API keys the load is spread over (so per-user and per-key rate limits are not what is measured).
    public var users = 200
    public var keys = 8
    /// Notifications per request: 1 for the single create, more for the bulk endpoint.
    public var batch = 1
    public var waitForDelivery = true
    public var deliveryTimeoutSeconds = 300.0
    /// Processes whose memory is reported: name → pid.
    public var processes: [(name: String, pid: Int32)] = []

    public init(postgres: PostgresSettings) { self.postgres = postgres }
}

public struct LatencySummary: Codable, Sendable {
    public var count: Int
    public var p50: Double
    public var p95: Double
    public var p99: Double
    public var max: Double

    /// From seconds; reported in milliseconds.
    init(_ seconds: [Double]) {
        let sorted = seconds.sorted()
        // Nearest rank: the smallest value with at least q of the samples at or below it.
        func at(_ q: Double) -> Double {
            guard !sorted.isEmpty else { return 0 }
            let rank = Int((Double(sorted.count) * q).rounded(.up))
            return sorted[Swift.min(sorted.count - 1, Swift.max(0, rank - 1))] * 1000
        }
        count = sorted.count
        p50 = at(0.50)
        p95 = at(0.95)
        p99 = at(0.99)
        max = (sorted.last ?? 0) * 1000
    }

    init(count: Int, p50: Double, p95: Double, p99: Double, max: Double) {
        self.count = count
        self.p50 = p50
        self.p95 = p95
        self.p99 = p99
        self.max = max
    }
}

public struct BenchReport: Codable, Sendable {
    public var mode: String
    public var requested: Int
    public var accepted: Int
    public var errors: [String: Int]
    public var acceptSeconds: Double
    public var acceptedPerSecond: Double
    public var acceptLatencyMs: LatencySummary
    /// Open loop: the latency of the requests due after the first second. The first second meets cold caches (each
    /// recipient's contact and each new key looked up once) and a queue that builds behind them; what follows is the
    /// steady state.
    public var acceptLatencyAfterFirstSecondMs: LatencySummary? = nil
    public var delivered: Int?
    public var failed: Int?
    public var deliverySeconds: Double?
    public var deliveredPerSecond: Double?
    public var endToEndMs: LatencySummary?
    public var memoryMB: [String: Double]
    public var peakMemoryMB: [String: Double]
    /// CPU used by each process (with its child processes) from the first request until delivery ended, in % of
    /// one core; "bench" is this load generator.
    public var cpuPercent: [String: Double] = [:]
    /// The same CPU divided by the notifications the run was about (delivered when it waited for delivery, else
    /// accepted), in µs each: what one notification costs each process.
    public var cpuMicrosPerNotification: [String: Double] = [:]

    enum CodingKeys: String, CodingKey {
        case mode, requested, accepted, errors
        case acceptSeconds = "accept_seconds"
        case acceptedPerSecond = "accepted_per_second"
        case acceptLatencyMs = "accept_latency_ms"
        case acceptLatencyAfterFirstSecondMs = "accept_latency_after_first_second_ms"
        case delivered, failed
        case deliverySeconds = "delivery_seconds"
        case deliveredPerSecond = "delivered_per_second"
        case endToEndMs = "end_to_end_ms"
        case memoryMB = "rss_mb"
        case peakMemoryMB = "peak_rss_mb"
        case cpuPercent = "cpu_percent"
        case cpuMicrosPerNotification = "cpu_us_per_notification"
    }
}

/// The benchmark: prepares recipients, a template and API keys, drives the gateway open- or closed-loop, then waits
/// until every accepted notification is sent and reads the end-to-end latencies from the database's own timestamps.
public struct BenchRunner: Sendable {
    let options: BenchOptions
    let logger: Logger
    let run = String(UUID().uuidString.prefix(8)).lowercased()

    public init(options: BenchOptions, logger: Logger) {
        self.options = options
        self.logger = logger
    }

    var client: String { "bench-\(run)" }

    public func execute(progress: @escaping @Sendable (String) -> Void) async throws -> BenchReport {
        var httpConfiguration = HTTPClient.Configuration()
        httpConfiguration.connectionPool = .init(
            idleTimeout: .seconds(30),
            concurrentHTTP1ConnectionsPerHostSoftLimit: max(options.concurrency, 8)
        )
        let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: httpConfiguration)
        let users = Database(options.postgres, database: .users, applicationName: "notify-bench", logger: logger)
        let notifications = Database(options.postgres, database: .notifications, applicationName: "notify-bench", logger: logger)
        do {
            let report = try await withThrowingTaskGroup(of: BenchReport?.self) { group in
                group.addTask {
                    try await users.run()
                    return nil
                }
                group.addTask {
                    try await notifications.run()
                    return nil
                }
                let (recipients, keys) = try await prepare(http: http, users: users, notifications: notifications)
                progress("prepared \(recipients.count) recipients and \(keys.count) API keys (client \(client))")
                let watched = options.processes + [("bench", getpid())]
                let cpuBefore = Self.cpuSeconds(watched)
                let began = ContinuousClock.now
                var report = try await load(recipients: recipients, keys: keys, progress: progress)
                if options.waitForDelivery, report.accepted > 0 {
                    try await delivery(into: &report, notifications: notifications, progress: progress)
                }
                let wall = (ContinuousClock.now - began).inSeconds
                let counted = options.waitForDelivery ? report.delivered ?? 0 : report.accepted
                for (name, seconds) in Self.cpuSeconds(watched) {
                    let used = seconds - (cpuBefore[name] ?? 0)
                    report.cpuPercent[name] = (used / max(wall, 0.001) * 1000).rounded() / 10
                    if counted > 0 { report.cpuMicrosPerNotification[name] = (used / Double(counted) * 1_000_000).rounded() }
                }
                report.memoryMB = Self.memory(options.processes, field: "VmRSS")
                report.peakMemoryMB = Self.memory(options.processes, field: "VmHWM")
                group.cancelAll()
                return report
            }
            try await http.shutdown()
            return report
        } catch {
            try? await http.shutdown()
            throw error
        }
    }

    /// Recipients straight into the users database (registering hundreds through bcrypt would take minutes), the
    /// email template through the template service, API keys in the notifications database.
    func prepare(http: HTTPClient, users: Database, notifications: Database) async throws -> ([String], [String]) {
        var ids: [String] = []
        // A bcrypt hash of nothing anyone types: bench users cannot log in.
        let hash = "$2b$04$benchbenchbenchbenchbeuQ1mQ6m2m9Kx7wVt8Y3z1f0r5bVn3sG6"
        for index in 0..<options.users {
            let rows = try await users.query(
                """
                INSERT INTO users (name, email, password_hash) VALUES (\("Bench \(index)"), \("bench-\(run)-\(index)@bench.invalid"), \(hash))
                RETURNING id
                """,
                logger: logger
            )
            for try await id in rows.decode(UUID.self) { ids.append(id.uuidString.lowercased()) }
        }
        var request = HTTPClientRequest(url: "\(options.templatesURL)/api/v1/templates/")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(options.serviceKey)")
        request.headers.add(name: "Content-Type", value: "application/json")
        let template: [String: Any] = [
            "code": "bench_email", "name": "Benchmark", "channel": "email", "subject": "Benchmark for {{name}}",
            "body": "Hello {{name}}, this is message {{n}}.",
        ]
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: template)))
        let (created, createdBody) = try await call(http, request)
        guard created == 201 || created == 409 else {
            throw BenchError(
                "creating the template bench_email answered \(created)\(Self.reason(createdBody)): nothing was sent; check the template service (deploy/local/up starts it)"
            )
        }
        if created == 409 {
            // It exists; an earlier fuzz run may have archived it: in use again (200 either way).
            var restore = HTTPClientRequest(url: "\(options.templatesURL)/api/v1/templates/bench_email/restore/?channel=email")
            restore.method = .POST
            restore.headers.add(name: "Authorization", value: "Bearer \(options.serviceKey)")
            let (restored, restoredBody) = try await call(http, restore)
            guard restored == 200 else {
                throw BenchError("restoring the template bench_email answered \(restored)\(Self.reason(restoredBody)): nothing was sent")
            }
        }
        let store = APIKeyStore(client: notifications, logger: logger)
        var keys: [String] = []
        for index in 0..<max(1, options.keys) {
            keys.append(try await store.create(client: client, name: "bench \(index)", scopes: ["notifications:write"]).key)
        }
        try await probe(http: http, recipient: ids.first, store: store)
        return (ids, keys)
    }

    /// One notification from a key of its own client (so it is not counted as the run's) before the load: when the
    /// gateway refuses it, the run stops here with the gateway's reason instead of sending thousands of requests
    /// that all fail the same way.
    func probe(http: HTTPClient, recipient: String?, store: APIKeyStore) async throws {
        guard let recipient else { throw BenchError("no recipients were prepared: --users must be at least 1") }
        let key = try await store.create(client: "\(client)-probe", name: "bench probe", scopes: ["notifications:write"]).key
        let gateway = options.gatewayURLs[0]
        var request = HTTPClientRequest(url: gateway + "/api/v1/notifications/")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(key)")
        request.headers.add(name: "Content-Type", value: "application/json")
        let body: [String: Any] = [
            "notification_type": "email", "user_id": recipient, "template_code": "bench_email",
            "variables": ["name": "Probe", "n": "0"], "request_id": "\(client)-probe",
        ]
        request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        let status: Int
        let answer: Data
        do {
            (status, answer) = try await call(http, request)
        } catch {
            throw BenchError("the gateway at \(gateway) did not answer (\(error)): nothing was sent; is the stack up (deploy/local/up)?")
        }
        guard status == 202 else {
            throw BenchError("the gateway refused a first notification with \(status)\(Self.reason(answer)): nothing else was sent")
        }
    }

    func call(_ http: HTTPClient, _ request: HTTPClientRequest) async throws -> (Int, Data) {
        let response = try await http.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), Data(buffer: body))
    }

    /// The envelope's error code and message, for a sentence: " (CODE: message)", or nothing.
    static func reason(_ body: Data) -> String {
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else { return "" }
        let error = object["error"] as? [String: Any]
        let code = error?["code"] as? String ?? object["error"] as? String
        let message = object["message"] as? String ?? error?["message"] as? String
        let parts = [code, message].compactMap { $0 }
        return parts.isEmpty ? "" : " (\(parts.joined(separator: ": ")))"
    }

    struct Sample: Sendable {
        var status: Int
        var seconds: Double
        var accepted: Int
        /// Why no answer came (status 0): the client error's name, so that a report says which failure it was.
        var failure: String? = nil
        /// When the request began (open loop: was due), in seconds from the start of the load.
        var startedAt = 0.0
    }

    /// One request: its status (0: no answer), how many notifications it got accepted, and why no answer came.
    func send(
        _ index: Int,
        pool: ConnectionPool,
        recipients: [String],
        keys: [String]
    ) async -> (Int, Int, String?) {
        let batch = max(1, options.batch)
        let gateway = options.gatewayURLs[index % options.gatewayURLs.count]
        let path = batch == 1 ? "/api/v1/notifications/" : "/api/v1/notifications/bulk/"
        let authorization = "Bearer \(keys[index % keys.count])"
        let body = Self.body(index, batch: batch, client: client, recipients: recipients)
        do {
            let answer = try await pool.post(gateway, path, headers: [("Authorization", authorization)], body: body)
            let (code, bytes) = (answer.status, answer.body)
            if batch == 1 { return (code, code == 202 ? 1 : 0, nil) }
            struct Summary: Decodable {
                struct Counts: Decodable { var accepted: Int }
                var data: Counts
            }
            return (code, (try? JSONDecoder().decode(Summary.self, from: bytes))?.data.accepted ?? 0, nil)
        } catch {
            // The client's own error (a timeout, a closed connection): it names no secret.
            return (0, 0, String(describing: error))
        }
    }

    /// The body of request `index`: one notification, or `batch` of them in a bulk. Written byte by byte: the load
    /// generator shares the machine's cores with what it measures, and `JSONSerialization` (dictionaries bridged to
    /// Foundation's) took three quarters of its CPU.
    static func body(_ index: Int, batch: Int, client: String, recipients: [String]) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.reserveCapacity(batch * 200 + 20)
        func item(_ n: Int) {
            buffer.writeString(#"{"notification_type":"email","user_id":"#)
            writeJSONString(recipients[n % recipients.count], to: &buffer)
            buffer.writeString(#","template_code":"bench_email","variables":{"name":"Reader \#(n)","n":"\#(n)"},"request_id":"#)
            writeJSONString("\(client)-\(n)", to: &buffer)
            buffer.writeString("}")
        }
        if batch == 1 {
            item(index)
        } else {
            buffer.writeString(#"{"notifications":["#)
            for offset in 0..<batch {
                if offset > 0 { buffer.writeString(",") }
                item(index * batch + offset)
            }
            buffer.writeString("]}")
        }
        return buffer
    }

    /// `text` as a JSON string (quotes, backslashes and control characters escaped).
    static func writeJSONString(_ text: String, to buffer: inout ByteBuffer) {
        buffer.writeInteger(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                buffer.writeInteger(UInt8(ascii: "\\"))
                buffer.writeInteger(byte)
            case 0..<0x20:
                buffer.writeString("\\u00")
                let hex = Array("0123456789abcdef".utf8)
                buffer.writeInteger(hex[Int(byte >> 4)])
                buffer.writeInteger(hex[Int(byte & 0xF)])
            default:
                buffer.writeInteger(byte)
            }
        }
        buffer.writeInteger(UInt8(ascii: "\""))
    }

    func load(recipients: [String], keys: [String], progress: @escaping @Sendable (String) -> Void) async throws -> BenchReport {
        let samples = NIOLockedValueBox<[Sample]>([])
        samples.withLockedValue { $0.reserveCapacity(options.count) }
        // The open loop's requests share plain keep-alive connections: `concurrency` to each gateway, opened before
        // the clock starts (as a client's keep-alive pool is), more when more requests are in flight at once.
        let shared = ConnectionPool()
        if options.mode == .open { try await shared.open(options.gatewayURLs, count: options.concurrency) }
        let start = ContinuousClock.now
        let deadline = start + .seconds(options.durationSeconds)
        func record(_ outcome: (status: Int, accepted: Int, failure: String?), since: ContinuousClock.Instant) {
            let elapsed = ContinuousClock.now - since
            let seconds = elapsed.inSeconds
            let sample = Sample(
                status: outcome.status,
                seconds: seconds,
                accepted: outcome.accepted,
                failure: outcome.failure,
                startedAt: (since - start).inSeconds
            )
            samples.withLockedValue { $0.append(sample) }
        }
        switch options.mode {
        case .closed:
            let next = NIOLockedValueBox(0)
            await withTaskGroup(of: Void.self) { group in
                for _ in 0..<max(1, options.concurrency) {
                    group.addTask {
                        // Each client on connections of its own, one request at a time, as a closed loop needs.
                        let connections = ConnectionPool()
                        while ContinuousClock.now < deadline {
                            let index = next.withLockedValue { value -> Int in
                                defer { value += 1 }
                                return value
                            }
                            guard index < options.count else { break }
                            let began = ContinuousClock.now
                            record(
                                await send(index, pool: connections, recipients: recipients, keys: keys),
                                since: began
                            )
                        }
                        await connections.closeAll()
                    }
                }
            }
        case .open:
            // Each request starts at its scheduled instant; its latency counts from that instant, so a slow answer
            // is not hidden by the load generator waiting for it (no coordinated omission).
            let interval = 1.0 / max(options.rate, 0.001)
            let maxInFlight = 4096
            await withTaskGroup(of: Void.self) { group in
                var inFlight = 0
                for index in 0..<options.count {
                    let due = start + .nanoseconds(Int64(Double(index) * interval * 1e9))
                    guard due < deadline else { break }
                    if due > .now { try? await Task.sleep(until: due, clock: .continuous) }
                    if inFlight >= maxInFlight {
                        await group.next()
                        inFlight -= 1
                    }
                    group.addTask {
                        record(await send(index, pool: shared, recipients: recipients, keys: keys), since: due)
                    }
                    inFlight += 1
                }
            }
            await shared.closeAll()
        }
        let elapsed = ContinuousClock.now - start
        let seconds = elapsed.inSeconds
        let all = samples.withLockedValue { $0 }
        let accepted = all.reduce(0) { $0 + $1.accepted }
        var errors: [String: Int] = [:]
        for sample in all where sample.status != 202 && sample.status != 200 {
            errors[sample.status == 0 ? "transport: \(sample.failure ?? "unknown")" : String(sample.status), default: 0] += 1
        }
        progress(String(format: "load done: %d accepted in %.2f s", accepted, seconds))
        return BenchReport(
            mode: options.mode.rawValue,
            requested: all.count * max(1, options.batch),
            accepted: accepted,
            errors: errors,
            acceptSeconds: seconds,
            acceptedPerSecond: Double(accepted) / max(seconds, 0.001),
            acceptLatencyMs: LatencySummary(all.map(\.seconds)),
            acceptLatencyAfterFirstSecondMs: options.mode == .open
                ? LatencySummary(all.filter { $0.startedAt >= 1 }.map(\.seconds)) : nil,
            memoryMB: [:],
            peakMemoryMB: [:]
        )
    }

    /// Waits (polling the database, bounded) until every accepted notification is sent or failed, then reads
    /// throughput and end-to-end latency (accepted → handed to SMTP) from the rows' own timestamps.
    func delivery(into report: inout BenchReport, notifications: Database, progress: @escaping @Sendable (String) -> Void) async throws {
        let deadline = ContinuousClock.now + .seconds(options.deliveryTimeoutSeconds)
        var done = (sent: 0, failed: 0)
        while ContinuousClock.now < deadline {
            for try await row in try await notifications.query(
                """
                SELECT count(*) FILTER (WHERE status IN ('sent', 'delivered'))::int, count(*) FILTER (WHERE status = 'failed')::int
                FROM notifications WHERE client = \(client)
                """,
                logger: logger
            ).decode((Int, Int).self) { done = row }
            if done.sent + done.failed >= report.accepted { break }
            try await Task.sleep(for: .milliseconds(250))
        }
        progress("delivery: \(done.sent) sent, \(done.failed) failed")
        report.delivered = done.sent
        report.failed = done.failed
        for try await row in try await notifications.query(
            """
            SELECT count(*)::int,
                   COALESCE(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)), 0)::float8,
                   COALESCE(percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)), 0)::float8,
                   COALESCE(percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM sent_at - created_at)), 0)::float8,
                   COALESCE(max(extract(epoch FROM sent_at - created_at)), 0)::float8,
                   COALESCE(extract(epoch FROM max(sent_at) - min(created_at)), 0)::float8
            FROM notifications WHERE client = \(client) AND sent_at IS NOT NULL
            """,
            logger: logger
        ).decode((Int, Double, Double, Double, Double, Double).self) {
            report.endToEndMs = LatencySummary(count: row.0, p50: row.1 * 1000, p95: row.2 * 1000, p99: row.3 * 1000, max: row.4 * 1000)
            report.deliverySeconds = row.5
            report.deliveredPerSecond = row.5 > 0 ? Double(row.0) / row.5 : nil
        }
    }

    /// CPU seconds (user + system) of each process and all its descendants, from /proc.
    static func cpuSeconds(_ processes: [(name: String, pid: Int32)]) -> [String: Double] {
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        var parent: [Int32: Int32] = [:]
        var used: [Int32: Double] = [:]
        for entry in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
            guard let pid = Int32(entry), let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { continue }
            // After "pid (comm)": state (3rd field), ppid (4th) … utime (14th), stime (15th).
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            guard fields.count > 12, let ppid = Int32(fields[1]), let user = Double(fields[11]), let system = Double(fields[12]) else { continue }
            parent[pid] = ppid
            used[pid] = (user + system) / ticks
        }
        // Each process counts toward the nearest listed process above it (so a wrapper does not count its child twice).
        let names = Dictionary(processes.map { ($0.pid, $0.name) }, uniquingKeysWith: { first, _ in first })
        var result: [String: Double] = Dictionary(processes.map { ($0.name, 0.0) }, uniquingKeysWith: { first, _ in first })
        for (pid, seconds) in used {
            var current: Int32? = pid
            var depth = 0
            while let node = current, depth < 64 {
                if let name = names[node] {
                    result[name, default: 0] += seconds
                    break
                }
                current = parent[node]
                depth += 1
            }
        }
        return result
    }

    /// A process's resident memory (or its peak) in MB, from /proc.
    static func memory(_ processes: [(name: String, pid: Int32)], field: String) -> [String: Double] {
        var result: [String: Double] = [:]
        for (name, pid) in processes {
            guard let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { continue }
            for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
                let kilobytes = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
                result[name] = (kilobytes / 1024 * 10).rounded() / 10
            }
        }
        return result
    }
}

public struct BenchError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}
