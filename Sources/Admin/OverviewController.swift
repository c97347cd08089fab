import AsyncHTTPClient
import Broker
import Deadlines
import Foundation
import Hummingbird
import JobQueue
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel
import NotifyConfig
import NotifyHTTP
import PostgresAccess
import PostgresNIO

struct ServiceEndpoint: Sendable {
    var name: String
    var url: String
}

/// The operator's view of the platform: `GET /api/v1/admin/overview/` and the dead letters
/// (`GET /api/v1/admin/dead-letters/`, `GET …/{id}/`, `POST …/{id}/replay/`).
struct OverviewController: Sendable {
    let postgres: Database
    let management: RabbitManagementClient
    let http: HTTPClient
    let services: [ServiceEndpoint]
    let logger: Logger

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.get("/api/v1/admin/overview", use: overview)
        router.get("/api/v1/admin/dead-letters", use: deadLetters)
        router.get("/api/v1/admin/dead-letters/:id", use: deadLetter)
        router.post("/api/v1/admin/dead-letters/:id/replay", use: replay)
    }

    struct ServiceHealth: Encodable, Sendable {
        var name: String
        var url: String
        var status: String
        var checks: [String: Check]
        struct Check: Codable, Sendable {
            var status: String
            var detail: String?
        }
    }

    struct Breaker: Encodable, Sendable {
        var service: String
        var name: String
        var state: String
    }

    struct JobCount: Encodable, Sendable {
        var queue: String
        var state: JobState
        var count: Int
        var oldestAgeSeconds: Double?
        enum CodingKeys: String, CodingKey {
            case queue, state, count
            case oldestAgeSeconds = "oldest_age_seconds"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(queue, forKey: .queue)
            try container.encode(state, forKey: .state)
            try container.encode(count, forKey: .count)
            try container.encode(oldestAgeSeconds, forKey: .oldestAgeSeconds)
        }
    }

    struct Minute: Encodable, Sendable {
        var minute: Date
        var sent: Int
        var failed: Int
    }

    struct Outbox: Encodable, Sendable {
        var unpublished: Int
        var oldestAgeSeconds: Double?
        enum CodingKeys: String, CodingKey {
            case unpublished
            case oldestAgeSeconds = "oldest_age_seconds"
        }
        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(unpublished, forKey: .unpublished)
            try container.encode(oldestAgeSeconds, forKey: .oldestAgeSeconds)
        }
    }

    struct Queue: Encodable, Sendable {
        var name: String
        var messages: Int?
        var consumers: Int?
    }

    struct Overview: Encodable, Sendable {
        var generatedAt: Date
        var services: [ServiceHealth]
        var breakers: [Breaker]
        var totals: [String: Int]
        var jobStates: [JobCount]
        var throughput: [Minute]
        var outbox: Outbox
        var queues: [Queue]
        var deadLetters: Int
    }

    @Sendable func overview(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        async let health = serviceHealth()
        async let queues = queueDepths()
        let database: (totals: [String: Int], jobs: [JobCount], minutes: [Minute], outbox: Outbox, dead: Int)
        do {
            database = try await withDeadline(.seconds(5)) { try await databaseFigures() }
        } catch {
            throw APIError.dependencyUnavailable("The notifications database is unavailable")
        }
        let services = await health
        var breakers: [Breaker] = []
        for service in services {
            for (name, check) in service.checks.sorted(by: { $0.key < $1.key }) where name.hasPrefix("circuit:") {
                breakers.append(Breaker(service: service.name, name: String(name.dropFirst("circuit:".count)), state: check.detail ?? check.status))
            }
        }
        let overview = Overview(
            generatedAt: Date(),
            services: services,
            breakers: breakers,
            totals: database.totals,
            jobStates: database.jobs,
            throughput: database.minutes,
            outbox: database.outbox,
            queues: await queues,
            deadLetters: database.dead
        )
        return .envelope(data: overview, message: "Overview")
    }

    func databaseFigures() async throws -> (totals: [String: Int], jobs: [JobCount], minutes: [Minute], outbox: Outbox, dead: Int) {
        var totals = ["accepted": 0]
        for status in NotificationStatus.allCases { totals[status.rawValue] = 0 }
        for try await (status, count) in try await postgres.query(
            "SELECT status, count(*)::int FROM notifications GROUP BY status",
            logger: logger
        ).decode((String, Int).self) {
            totals[status] = count
            totals["accepted", default: 0] += count
        }
        let stats = try await JobStats.read(postgres, logger: logger)
        let jobs = stats.jobs.map { JobCount(queue: $0.queue, state: $0.state, count: $0.count, oldestAgeSeconds: $0.oldestAgeSeconds) }
        var minutes: [Minute] = []
        for try await (minute, sent, failed) in try await postgres.query(
            """
            SELECT m, count(e.id) FILTER (WHERE e.to_status = 'sent')::int, count(e.id) FILTER (WHERE e.to_status = 'failed')::int
            FROM generate_series(date_trunc('minute', now()) - interval '29 minutes', date_trunc('minute', now()), interval '1 minute') AS m
            LEFT JOIN notification_events e ON e.at >= m AND e.at < m + interval '1 minute' AND e.to_status IN ('sent', 'failed')
            GROUP BY m ORDER BY m
            """,
            logger: logger
        ).decode((Date, Int, Int).self) {
            minutes.append(Minute(minute: minute, sent: sent, failed: failed))
        }
        let outbox = Outbox(unpublished: stats.outboxUnpublished, oldestAgeSeconds: stats.outboxOldestAgeSeconds)
        var dead = 0
        for try await count in try await postgres.query("SELECT count(*)::int FROM dead_letters", logger: logger).decode(Int.self) {
            dead = count
        }
        return (totals, jobs, minutes, outbox, dead)
    }

    /// Each process's `/health`, asked in parallel with a short timeout (no answer: `unreachable`).
    func serviceHealth() async -> [ServiceHealth] {
        await withTaskGroup(of: ServiceHealth.self) { group in
            for service in services {
                group.addTask {
                    var request = HTTPClientRequest(url: "\(service.url)/health")
                    request.method = .GET
                    guard let response = try? await http.execute(request, timeout: .seconds(2)),
                        let body = try? await response.body.collect(upTo: 1 << 20),
                        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any],
                        let data = object["data"] as? [String: Any]
                    else { return ServiceHealth(name: service.name, url: service.url, status: "unreachable", checks: [:]) }
                    var checks: [String: ServiceHealth.Check] = [:]
                    for (name, value) in data["checks"] as? [String: Any] ?? [:] {
                        let check = value as? [String: Any] ?? [:]
                        checks[name] = .init(status: check["status"] as? String ?? "unknown", detail: check["detail"] as? String)
                    }
                    return ServiceHealth(name: service.name, url: service.url, status: data["status"] as? String ?? "unknown", checks: checks)
                }
            }
            var results: [ServiceHealth] = []
            for await result in group { results.append(result) }
            let order = services.map(\.name)
            return results.sorted { (order.firstIndex(of: $0.name) ?? 0) < (order.firstIndex(of: $1.name) ?? 0) }
        }
    }

    func queueDepths() async -> [Queue] {
        // One request for every queue; unknown (nil) when the management API does not answer.
        let depths = try? await management.queueDepths()
        return (NotificationChannel.allCases.map(\.queueName) + ["failed.queue"]).map { name in
            let depth = depths?[name]
            return Queue(name: name, messages: depth?.messages, consumers: depth?.consumers)
        }
    }

    struct DeadLetter: Encodable, Sendable {
        var notificationID: String
        var requestID: String
        var client: String
        var channel: String
        var userID: String
        var templateCode: String
        var attempts: Int
        var failedAt: Date?
        var lastError: String?
        var errors: [ErrorEntry]?
        struct ErrorEntry: Codable, Sendable {
            var at: String?
            var attempt: Int?
            var error: String?
            var permanent: Bool?
        }
        enum CodingKeys: String, CodingKey {
            case notificationID = "notification_id"
            case requestID = "request_id"
            case client, channel
            case userID = "user_id"
            case templateCode = "template_code"
            case attempts
            case failedAt = "failed_at"
            case lastError = "last_error"
            case errors
        }
    }

    typealias DeadRow = (UUID, String, String, String, UUID, String, Int, Date?, String?, String)

    static func deadLetter(_ row: DeadRow, withErrors: Bool) -> DeadLetter {
        DeadLetter(
            notificationID: row.0.lowercased,
            requestID: row.1,
            client: row.2,
            channel: row.3,
            userID: row.4.lowercased,
            templateCode: row.5,
            attempts: row.6,
            failedAt: row.7,
            lastError: row.8,
            errors: withErrors ? (try? JSONDecoder().decode([DeadLetter.ErrorEntry].self, from: Data(row.9.utf8))) : nil
        )
    }

    @Sendable func deadLetters(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        if !errors.isEmpty { throw APIError.validation(errors) }
        var items: [DeadLetter] = []
        for try await row in try await postgres.query(
            """
            SELECT notification_id, request_id, client, channel, user_id, template_code, attempts, failed_at, last_error, errors::text
            FROM dead_letters ORDER BY failed_at DESC NULLS LAST, notification_id LIMIT \(limit) OFFSET \((page - 1) * limit)
            """,
            logger: logger
        ).decode(DeadRow.self) { items.append(Self.deadLetter(row, withErrors: false)) }
        var total = 0
        for try await count in try await postgres.query("SELECT count(*)::int FROM dead_letters", logger: logger).decode(Int.self) { total = count }
        return .envelope(data: items, message: "Dead letters", meta: PageMeta(total: total, limit: limit, page: page))
    }

    @Sendable func deadLetter(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)) else { throw Self.notFound }
        for try await row in try await postgres.query(
            """
            SELECT notification_id, request_id, client, channel, user_id, template_code, attempts, failed_at, last_error, errors::text
            FROM dead_letters WHERE notification_id = \(id)
            """,
            logger: logger
        ).decode(DeadRow.self) { return .envelope(data: Self.deadLetter(row, withErrors: true), message: "Dead letter") }
        throw Self.notFound
    }

    @Sendable func replay(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try identity.require(.admin)
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)) else { throw Self.notFound }
        var exists = false
        for try await _ in try await postgres.query("SELECT 1 FROM notifications WHERE id = \(id)", logger: logger).decode(Int.self) { exists = true }
        guard exists else { throw Self.notFound }
        let replayed = try await JobStore(client: postgres, logger: logger).replayDeadLetter(id)
        guard replayed else { throw APIError(.conflict, code: .notRetryable, message: "Only a failed notification can be replayed") }
        context.logger.info(
            "dead letter replayed",
            metadata: ["notification_id": .string(id.lowercased), "by": .string(identity.client)]
        )
        return .envelope(data: Replayed(notificationID: id.lowercased, replayed: true), message: "Notification re-queued")
    }

    struct Replayed: Encodable, Sendable {
        var notificationID: String
        var replayed: Bool
    }

    static let notFound = APIError.notFound(.notificationNotFound, "No dead letter with this id")
}
