import Foundation
import Logging
import NotificationModel
import PostgresAccess
import PostgresNIO

/// A client's webhook endpoint as stored (the secret only sealed).
public struct WebhookEndpoint: Sendable {
    public var id: UUID
    public var client: String
    public var url: String
    public var events: [String]
    public var description: String?
    public var secretPrefix: String
    public var active: Bool
    public var createdAt: Date
    public var disabledAt: Date?
}

/// One delivery of one status change to one endpoint.
public struct WebhookDelivery: Sendable {
    public var id: Int
    public var endpointID: UUID
    public var notificationID: UUID
    public var event: String
    public var state: String
    public var attempt: Int
    public var maxAttempts: Int
    public var lastStatus: Int?
    public var lastError: String?
    public var createdAt: Date
    public var finalizedAt: Date?
}

/// A delivery the dispatcher claimed: what to POST where, signed with which (sealed) secret.
public struct ClaimedWebhook: Sendable {
    public var id: Int
    public var attempt: Int
    public var maxAttempts: Int
    public var event: String
    public var payload: String
    public var url: String
    public var secretSealed: Data
}

/// All SQL of webhook endpoints and deliveries (sql/notifications/0017).
public struct WebhookStore: Sendable {
    public let client: Database
    public let logger: Logger
    /// The events an endpoint may ask for: the statuses a notification reaches.
    public static let events = ["pending", "sent", "delivered", "undelivered", "bounced", "complained", "failed", "cancelled"]
    public static let channel = "webhooks"

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static let endpointColumns = "id, client, url, events, description, secret_prefix, active, created_at, disabled_at"
    typealias EndpointRow = (UUID, String, String, [String], String?, String, Bool, Date, Date?)

    static func endpoint(_ row: EndpointRow) -> WebhookEndpoint {
        WebhookEndpoint(
            id: row.0,
            client: row.1,
            url: row.2,
            events: row.3,
            description: row.4,
            secretPrefix: row.5,
            active: row.6,
            createdAt: row.7,
            disabledAt: row.8
        )
    }

    public func create(
        client clientName: String,
        url: String,
        events: [String],
        description: String?,
        sealed: Data,
        prefix: String
    ) async throws
        -> WebhookEndpoint
    {
        let rows = try await client.query(
            """
            INSERT INTO webhook_endpoints (client, url, events, description, secret_sealed, secret_prefix)
            VALUES (\(clientName), \(url), \(events), \(description), \(sealed), \(prefix))
            RETURNING \(unescaped: Self.endpointColumns)
            """,
            logger: logger
        )
        for try await row in rows.decode(EndpointRow.self) { return Self.endpoint(row) }
        throw JobStoreError.noRowReturned
    }

    public func list(client clientName: String?, page: Int, limit: Int) async throws -> ([WebhookEndpoint], Int) {
        var endpoints: [WebhookEndpoint] = []
        for try await row in try await client.query(
            """
            SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints
            WHERE \(clientName)::text IS NULL OR client = \(clientName)
            ORDER BY created_at DESC, id LIMIT \(limit) OFFSET \((page - 1) * limit)
            """,
            logger: logger
        ).decode(EndpointRow.self) { endpoints.append(Self.endpoint(row)) }
        var total = 0
        for try await count in try await client.query(
            "SELECT count(*)::int FROM webhook_endpoints WHERE \(clientName)::text IS NULL OR client = \(clientName)",
            logger: logger
        ).decode(Int.self) { total = count }
        return (endpoints, total)
    }

    public func get(id: UUID) async throws -> WebhookEndpoint? {
        for try await row in try await client.query(
            "SELECT \(unescaped: Self.endpointColumns) FROM webhook_endpoints WHERE id = \(id)",
            logger: logger
        ).decode(EndpointRow.self) { return Self.endpoint(row) }
        return nil
    }

    /// Removes an endpoint from use: it gets no new deliveries, and those still waiting are cancelled.
    public func disable(id: UUID) async throws -> WebhookEndpoint? {
        try await client.withTransaction(logger: logger) { [logger] connection in
            var endpoint: WebhookEndpoint?
            for try await row in try await connection.query(
                """
                UPDATE webhook_endpoints SET active = false, disabled_at = COALESCE(disabled_at, now()) WHERE id = \(id)
                RETURNING \(unescaped: Self.endpointColumns)
                """,
                logger: logger
            ).decode(EndpointRow.self) { endpoint = Self.endpoint(row) }
            guard endpoint != nil else { return nil }
            _ = try await connection.query(
                """
                UPDATE webhook_deliveries SET state = 'cancelled', finalized_at = now(), updated_at = now()
                WHERE endpoint_id = \(id) AND state IN ('available', 'retryable')
                """,
                logger: logger
            )
            return endpoint
        }
    }

    static let deliveryColumns = """
        id, endpoint_id, notification_id, event, state, attempt, max_attempts, last_status, errors -> -1 ->> 'error', created_at, finalized_at
        """
    typealias DeliveryRow = (Int, UUID, UUID, String, String, Int, Int, Int?, String?, Date, Date?)

    static func delivery(_ row: DeliveryRow) -> WebhookDelivery {
        WebhookDelivery(
            id: row.0,
            endpointID: row.1,
            notificationID: row.2,
            event: row.3,
            state: row.4,
            attempt: row.5,
            maxAttempts: row.6,
            lastStatus: row.7,
            lastError: row.8,
            createdAt: row.9,
            finalizedAt: row.10
        )
    }

    public func deliveries(endpoint: UUID, state: String?, page: Int, limit: Int) async throws -> ([WebhookDelivery], Int) {
        var result: [WebhookDelivery] = []
        for try await row in try await client.query(
            """
            SELECT \(unescaped: Self.deliveryColumns) FROM webhook_deliveries
            WHERE endpoint_id = \(endpoint) AND (\(state)::text IS NULL OR state = \(state))
            ORDER BY id DESC LIMIT \(limit) OFFSET \((page - 1) * limit)
            """,
            logger: logger
        ).decode(DeliveryRow.self) { result.append(Self.delivery(row)) }
        var total = 0
        for try await count in try await client.query(
            "SELECT count(*)::int FROM webhook_deliveries WHERE endpoint_id = \(endpoint) AND (\(state)::text IS NULL OR state = \(state))",
            logger: logger
        ).decode(Int.self) { total = count }
        return (result, total)
    }

    /// A dead letter (discarded) goes out again with a fresh set of attempts. Nil: no such delivery; false: it is
    /// not a dead letter (or its endpoint is disabled).
    public func replay(id: Int) async throws -> Bool? {
        try await client.withTransaction(logger: logger) { [logger] connection in
            var found: (String, Bool)?
            for try await row in try await connection.query(
                """
                SELECT d.state, e.active FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
                WHERE d.id = \(id) FOR UPDATE OF d
                """,
                logger: logger
            ).decode((String, Bool).self) { found = row }
            guard let (state, active) = found else { return nil }
            guard state == "discarded", active else { return false }
            _ = try await connection.query(
                """
                UPDATE webhook_deliveries SET state = 'available', attempt = 0, run_at = now(), finalized_at = NULL, updated_at = now()
                WHERE id = \(id)
                """,
                logger: logger
            )
            _ = try await connection.query("SELECT pg_notify(\(Self.channel), '')", logger: logger)
            return true
        }
    }

    // MARK: the dispatcher's side

    /// Claims up to `limit` due deliveries (their endpoint active) under a lease, in due order; `SKIP LOCKED` lets
    /// several relays dispatch at once. Deliveries of disabled endpoints are cancelled on the way.
    public func claim(limit: Int, worker: String, lease: Duration) async throws -> [ClaimedWebhook] {
        try await client.withTransaction(logger: logger) { [logger] connection in
            var claimed: [ClaimedWebhook] = []
            for try await row in try await connection.query(
                """
                WITH due AS (
                    SELECT id FROM webhook_deliveries
                    WHERE state IN ('available', 'retryable') AND run_at <= now()
                    ORDER BY run_at, id LIMIT \(limit)
                    FOR UPDATE SKIP LOCKED
                )
                UPDATE webhook_deliveries d
                SET state = CASE WHEN e.active THEN 'running' ELSE 'cancelled' END,
                    attempt = d.attempt + CASE WHEN e.active THEN 1 ELSE 0 END,
                    attempted_at = now(), attempted_by = \(worker),
                    lease_expires_at = CASE WHEN e.active THEN now() + make_interval(secs => \(lease.inSeconds)) END,
                    finalized_at = CASE WHEN e.active THEN NULL ELSE now() END, updated_at = now()
                FROM due, webhook_endpoints e
                WHERE d.id = due.id AND e.id = d.endpoint_id
                RETURNING d.id, d.attempt, d.max_attempts, d.event, d.payload::text, e.url, e.secret_sealed, e.active
                """,
                logger: logger
            ).decode((Int, Int, Int, String, String, String, Data, Bool).self) {
                guard row.7 else { continue }
                claimed.append(
                    ClaimedWebhook(id: row.0, attempt: row.1, maxAttempts: row.2, event: row.3, payload: row.4, url: row.5, secretSealed: row.6)
                )
            }
            return claimed
        }
    }

    public func complete(id: Int, status: Int) async throws {
        try await client.query(
            """
            UPDATE webhook_deliveries SET state = 'completed', last_status = \(status), finalized_at = now(), lease_expires_at = NULL,
                updated_at = now()
            WHERE id = \(id) AND (state = 'running') IS TRUE
            """,
            logger: logger
        )
    }

    /// A failed attempt: retryable at now + `retryAfter` while fewer than `maxAttempts` were made (and it is not
    /// `permanent`), else a dead letter. Returns the new state.
    @discardableResult
    public func fail(id: Int, status: Int?, error: String, permanent: Bool, retryAfter: Duration, maxAttempts: Int) async throws -> String? {
        for try await state in try await client.query(
            """
            UPDATE webhook_deliveries
            SET state = CASE WHEN \(permanent) OR attempt >= \(maxAttempts) THEN 'discarded' ELSE 'retryable' END,
                max_attempts = \(maxAttempts),
                run_at = now() + make_interval(secs => \(retryAfter.inSeconds)),
                finalized_at = CASE WHEN \(permanent) OR attempt >= \(maxAttempts) THEN now() END,
                last_status = \(status),
                errors = errors || jsonb_build_array(jsonb_build_object('at', now(), 'attempt', attempt, 'status', \(status)::int, 'error', \(error)::text)),
                lease_expires_at = NULL, updated_at = now()
            WHERE id = \(id) AND (state = 'running') IS TRUE
            RETURNING state
            """,
            logger: logger
        ).decode(String.self) { return state }
        return nil
    }

    /// Deliveries whose dispatcher died (lease expired) become retryable at once.
    @discardableResult
    public func rescue() async throws -> Int {
        var count = 0
        for try await _ in try await client.query(
            """
            UPDATE webhook_deliveries SET state = 'retryable', run_at = now(), lease_expires_at = NULL, updated_at = now()
            WHERE state = 'running' AND lease_expires_at < now()
            RETURNING id
            """,
            logger: logger
        ).decode(Int.self) { count += 1 }
        return count
    }
}
