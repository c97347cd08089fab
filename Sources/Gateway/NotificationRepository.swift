import Crypto
import Foundation
import JobQueue
import Logging
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO

/// A validated create request, normalised (the hash of this is what idempotency compares).
struct NewNotification: Sendable, Encodable {
    var channel: NotificationChannel
    /// The user it goes to, or nil when it goes to `recipient`.
    var userID: UUID?
    var templateCode: String
    var variables: [String: JSONValue]
    var requestID: String
    var priority: Int
    var metadata: [String: JSONValue]?
    var language: String?
    var sendAt: Date?
    /// The address an email goes to instead of the user's (the platform's own mail, such as the verification of a new
    /// address; only the service key may set it). Part of the payload hash only when set.
    var deliverTo: String? = nil
    /// An address to send to instead of a user (the client owns consent). Part of the payload hash only when set.
    var recipient: DirectRecipient? = nil
    /// Not asked for but decided at acceptance: the end of the user's quiet hours, when it falls in them and is not
    /// urgent. It replaces `send_at` when written; not part of the payload hash (a replay is the same request).
    var heldUntil: Date? = nil

    /// The per-recipient rate limit's bucket: the user, or the address (hashed: Redis holds no addresses).
    var rateKey: String {
        if let userID { return "user:\(userID.lowercased)" }
        return "recipient:" + SHA256.hash(data: Data((recipient?.key ?? "").utf8)).hexString
    }

    enum CodingKeys: String, CodingKey {
        case channel = "notification_type"
        case userID = "user_id"
        case templateCode = "template_code"
        case variables
        case requestID = "request_id"
        case priority, metadata, language
        case sendAt = "send_at"
        case deliverTo = "deliver_to"
        case recipient
    }

    /// What `payload_hash` holds for this request: the version prefix, then the SHA-256 of `canonicalPayload`.
    var payloadHash: String { Self.payloadHashVersion + SHA256.hash(data: canonicalPayload).hexString }

    static let payloadHashVersion = "v2:"

    /// Whether a stored `payload_hash` is this request's. Rows written before the version prefix hold the SHA-256 of
    /// `JSONEncoder`'s sorted-keys encoding (`legacyPayloadHash`), computed only when such a row is replayed.
    func matches(storedHash: String) -> Bool {
        storedHash.hasPrefix(Self.payloadHashVersion) ? storedHash == payloadHash : storedHash == legacyPayloadHash
    }

    /// The hash before version 2 (`JSONEncoder` with sorted keys, 3.6 % of the gateway's CPU per create).
    var legacyPayloadHash: String {
        let encoder = JSONEncoder.canonical
        encoder.dateEncodingStrategy = .iso8601
        let data = (try? encoder.encode(self)) ?? Data()
        return SHA256.hash(data: data).hexString
    }

    /// The request in one byte form (`CanonicalJSON`, members in the order of their keys): the same fields as the
    /// legacy encoding, `send_at` in whole seconds as it had it, absent optionals left out.
    var canonicalPayload: [UInt8] {
        var json = CanonicalJSON()
        json.beginObject()
        if let deliverTo {
            json.key("deliver_to")
            json.string(deliverTo)
        }
        if let language {
            json.key("language")
            json.string(language)
        }
        if let metadata {
            json.key("metadata")
            json.object(metadata)
        }
        json.key("notification_type")
        json.string(channel.rawValue)
        json.key("priority")
        json.int(priority)
        if let recipient {
            json.key("recipient")
            json.beginObject()
            for (key, value) in [
                ("auth", recipient.auth), ("email", recipient.email), ("p256dh", recipient.p256dh), ("phone", recipient.phone),
                ("platform", recipient.platform), ("token", recipient.token),
            ] {
                guard let value else { continue }
                json.member(key)
                json.string(value)
            }
            json.endObject()
        }
        json.key("request_id")
        json.string(requestID)
        if let sendAt {
            json.key("send_at")
            json.int(Int(sendAt.timeIntervalSince1970.rounded(.down)))
        }
        json.key("template_code")
        json.string(templateCode)
        if let userID {
            json.key("user_id")
            json.string(userID.uppercased)
        }
        json.key("variables")
        json.object(variables)
        json.endObject()
        return json.bytes
    }
}

/// A notification as its status endpoint shows it.
struct NotificationResource: Codable, Sendable {
    var notificationID: String
    var requestID: String
    var notificationType: String
    /// The user it went to; null when it went to `recipient`.
    var userID: String?
    /// The address it went to instead of a user, as the client gave it (normalized): an email address, a phone
    /// number, or a push destination.
    var recipient: RecipientView?
    var templateCode: String
    var status: NotificationStatus
    var priority: Int
    var correlationID: String
    var attempts: Int
    var jobState: String?
    var lastError: String?
    var createdAt: Date
    var updatedAt: Date
    var sentAt: Date?
    var sendAt: Date?
    var deliveredAt: Date?
    var templateVersion: Int?
    /// Seconds: the age of the last-known user or template data the gateway checked this notification against while
    /// the user or template service could not answer (nil: checked against their live answers).
    var staleDataAge: Int?
    /// Every status with its time and cause (on the single-notification view).
    var history: [HistoryEntry]?
    /// Push only: each device's outcome in each attempt (on the single-notification view).
    var deliveries: [DeviceDelivery]?
    /// Email only: each provider tried in each attempt, in chain order (on the single-notification view).
    var providerAttempts: [ProviderAttemptEntry]?

    enum CodingKeys: String, CodingKey {
        case notificationID = "notification_id"
        case requestID = "request_id"
        case notificationType = "notification_type"
        case userID = "user_id"
        case recipient
        case templateCode = "template_code"
        case status, priority
        case correlationID = "correlation_id"
        case attempts
        case jobState = "job_state"
        case lastError = "last_error"
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case sentAt = "sent_at"
        case sendAt = "send_at"
        case deliveredAt = "delivered_at"
        case templateVersion = "template_version"
        case staleDataAge = "stale_data_age_s"
        case history, deliveries
        case providerAttempts = "provider_attempts"
    }

    /// As synthesized, except that `user_id` is always there (null for a notification sent to a `recipient`).
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(notificationID, forKey: .notificationID)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(notificationType, forKey: .notificationType)
        try container.encode(userID, forKey: .userID)
        try container.encodeIfPresent(recipient, forKey: .recipient)
        try container.encode(templateCode, forKey: .templateCode)
        try container.encode(status, forKey: .status)
        try container.encode(priority, forKey: .priority)
        try container.encode(correlationID, forKey: .correlationID)
        try container.encode(attempts, forKey: .attempts)
        try container.encodeIfPresent(jobState, forKey: .jobState)
        try container.encodeIfPresent(lastError, forKey: .lastError)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encodeIfPresent(sentAt, forKey: .sentAt)
        try container.encodeIfPresent(sendAt, forKey: .sendAt)
        try container.encodeIfPresent(deliveredAt, forKey: .deliveredAt)
        try container.encodeIfPresent(templateVersion, forKey: .templateVersion)
        try container.encodeIfPresent(staleDataAge, forKey: .staleDataAge)
        try container.encodeIfPresent(history, forKey: .history)
        try container.encodeIfPresent(deliveries, forKey: .deliveries)
        try container.encodeIfPresent(providerAttempts, forKey: .providerAttempts)
    }
}

/// `recipient` as the API shows it: the string a client sends for an email address, a phone number or an FCM token;
/// an object for other push destinations.
enum RecipientView: Codable, Sendable {
    case address(String)
    case destination(platform: String, token: String)

    init(_ recipient: DirectRecipient) {
        if let email = recipient.email {
            self = .address(email)
        } else if let phone = recipient.phone {
            self = .address(phone)
        } else {
            self = .destination(platform: recipient.platform ?? "fcm", token: recipient.token ?? "")
        }
    }

    enum CodingKeys: String, CodingKey {
        case platform, token
    }

    func encode(to encoder: any Encoder) throws {
        switch self {
        case .address(let text):
            var container = encoder.singleValueContainer()
            try container.encode(text)
        case .destination(let platform, let token):
            // Web Push keys are the subscriber's secrets: never shown back.
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(platform, forKey: .platform)
            try container.encode(token, forKey: .token)
        }
    }

    init(from decoder: any Decoder) throws {
        if let text = try? decoder.singleValueContainer().decode(String.self) {
            self = .address(text)
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self = .destination(platform: try container.decode(String.self, forKey: .platform), token: try container.decode(String.self, forKey: .token))
    }
}

struct ProviderAttemptEntry: Codable, Sendable {
    var attempt: Int
    var provider: String
    var outcome: String
    var providerMessageID: String?
    var errorCode: String?
    var error: String?
    var at: Date
}

struct DeviceDelivery: Codable, Sendable {
    var attempt: Int
    var deviceID: String
    var platform: String
    var outcome: String
    var providerMessageID: String?
    var errorCode: String?
    var error: String?
    var deviceDeactivated: Bool
    var at: Date
}

struct HistoryEntry: Codable, Sendable {
    var status: NotificationStatus
    var previous: NotificationStatus?
    var cause: String?
    var at: Date
}

/// Whose notifications a caller sees: a client's own (API keys), those addressed to one user (that user's access
/// token), or all (the platform's services).
enum Owner: Sendable {
    case client(String)
    case user(UUID)
    case anyone

    var filter: (client: String?, user: UUID?) {
        switch self {
        case .client(let name): return (name, nil)
        case .user(let id): return (nil, id)
        case .anyone: return (nil, nil)
        }
    }
}

/// What a delivery report did.
enum ReportOutcome: Sendable {
    case recorded(NotificationResource)
    case alreadyRecorded(NotificationResource)
    case notFound
    case invalid(current: NotificationStatus)
}

enum CreateOutcome: Sendable {
    /// Newly accepted: what the client is told (status `pending`), as of the commit, whatever a worker did since.
    case created(Accepted)
    case replayed(NotificationResource)
    case conflict
    /// Not written: its address is on the suppression list.
    case suppressed(Suppression.Reason)
}

/// What writing one create did.
enum Written: Sendable {
    case accepted(Accepted)
    /// This client already used the request_id: nothing written.
    case alreadyUsed
    /// Its address is on the suppression list: nothing written.
    case suppressed(Suppression.Reason)
}

/// The gateway's SQL: the notification, its job and its outbox message are written in ONE transaction.
struct NotificationRepository: Sendable {
    let client: Database
    let maxAttempts: Int
    let logger: Logger
    /// Groups concurrent single creates into shared transactions (nil: one transaction each).
    var committer: GroupCommitter?

    init(client: Database, maxAttempts: Int, logger: Logger, groupCommit: GroupCommitter.Limits? = nil) {
        self.client = client
        self.maxAttempts = maxAttempts
        self.logger = logger
        self.committer = nil
        if let groupCommit { committer = GroupCommitter(limits: groupCommit, repository: self, logger: logger) }
    }

    func create(
        _ new: NewNotification,
        templateVersion: Int,
        staleDataAge: Int? = nil,
        suppressionAddress: String? = nil,
        client clientName: String,
        correlationID: String
    ) async throws -> CreateOutcome {
        let item = PendingCreate(
            new: new,
            templateVersion: templateVersion,
            staleDataAge: staleDataAge,
            client: clientName,
            correlationID: correlationID,
            suppressionAddress: suppressionAddress
        )
        let written: Written
        if let committer {
            written = try await committer.write(item)
        } else {
            written = try await createMany([item]).first ?? .alreadyUsed
        }
        switch written {
        case .accepted(let accepted):
            return .created(accepted)
        case .suppressed(let reason):
            // A replay of a request accepted before the address was suppressed still returns the original.
            return try await existing(new, client: clientName) ?? .suppressed(reason)
        case .alreadyUsed:
            guard let earlier = try await existing(new, client: clientName) else { throw NotificationRepositoryError.vanished }
            return earlier
        }
    }

    /// Writes every notification with its job and outbox message in ONE statement, hence one transaction, set-based:
    /// one insert of the notifications, one of their jobs, one of their outbox messages, whatever the count. Per item:
    /// what the client is told (status `pending`, as of the commit), that its address is suppressed (items with a
    /// `suppressionAddress`, checked in the same transaction), or that this client already used the request_id.
    func createMany(_ items: [PendingCreate]) async throws -> [Written] {
        guard !items.isEmpty else { return [] }
        let jobs = items.map { item in
            NotificationToEnqueue(
                id: UUID.timeOrdered(),
                client: item.client,
                requestID: item.new.requestID,
                payloadHash: item.new.payloadHash,
                channel: item.new.channel,
                userID: item.new.userID,
                templateCode: item.new.templateCode,
                language: item.new.language,
                variables: item.new.variables,
                metadata: item.new.metadata,
                priority: item.new.priority,
                sendAt: item.new.heldUntil ?? item.new.sendAt,
                correlationID: item.correlationID,
                templateVersion: item.templateVersion,
                staleDataAge: item.staleDataAge,
                deliverTo: item.new.deliverTo,
                recipient: item.new.recipient,
                suppressionAddress: item.suppressionAddress
            )
        }
        let enqueued = try await JobStore(client: client, logger: logger).enqueue(jobs, maxAttempts: maxAttempts)
        return zip(items, jobs).map { item, job in
            if let reason = enqueued.suppressed[job.id] { return .suppressed(reason) }
            guard let row = enqueued.written[job.id] else { return .alreadyUsed }
            return .accepted(
                Accepted(
                    notificationID: job.id.lowercased,
                    requestID: job.requestID,
                    status: .pending,
                    notificationType: job.channel.rawValue,
                    createdAt: row.createdAt,
                    jobID: row.jobID,
                    heldUntil: item.new.heldUntil
                )
            )
        }
    }

    /// The outcome for a request_id this client already used: the original, or a conflict if the payload differs.
    func existing(_ new: NewNotification, client clientName: String) async throws -> CreateOutcome? {
        let rows = try await client.query(
            "SELECT id, payload_hash FROM notifications WHERE client = \(clientName) AND request_id = \(new.requestID)",
            logger: logger
        )
        for try await (existingID, existingHash) in rows.decode((UUID, String).self) {
            guard new.matches(storedHash: existingHash) else { return .conflict }
            if let resource = try await find(id: existingID, owner: .client(clientName)) { return .replayed(resource) }
        }
        return nil
    }

    static let columns = """
        n.id, n.request_id, n.channel, n.user_id, n.template_code, n.status, n.priority, n.correlation_id,
        COALESCE(j.attempt, 0), j.state, n.last_error, n.created_at, n.updated_at, n.sent_at, n.send_at, n.delivered_at, n.template_version,
        n.stale_data_age_s, n.recipient::text
        """
    typealias Row = (
        UUID, String, String, UUID?, String, String, Int, String, Int, String?, String?, Date, Date, Date?, Date?, Date?, Int?, Int?, String?
    )

    /// A status the code does not know fails loudly (the CHECK on `notifications.status` should make it impossible).
    static func resource(_ row: Row) throws -> NotificationResource {
        guard let status = NotificationStatus(rawValue: row.5) else { throw UnknownNotificationStatus(status: row.5) }
        return NotificationResource(
            notificationID: row.0.lowercased,
            requestID: row.1,
            notificationType: row.2,
            userID: row.3?.lowercased,
            recipient: row.18.flatMap { try? JSONDecoder().decode(DirectRecipient.self, from: Data($0.utf8)) }.map(RecipientView.init),
            templateCode: row.4,
            status: status,
            priority: row.6,
            correlationID: row.7,
            attempts: row.8,
            jobState: row.9,
            lastError: row.10,
            createdAt: row.11,
            updatedAt: row.12,
            sentAt: row.13,
            sendAt: row.14,
            deliveredAt: row.15,
            templateVersion: row.16,
            staleDataAge: row.17,
            history: nil,
            deliveries: nil,
            providerAttempts: nil
        )
    }

    /// One notification visible to `owner`.
    func find(id: UUID, owner: Owner, withHistory: Bool = false) async throws -> NotificationResource? {
        let (clientName, userID) = owner.filter
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columns)
            FROM notifications n LEFT JOIN jobs j ON j.notification_id = n.id
            WHERE n.id = \(id) AND (\(clientName)::text IS NULL OR n.client = \(clientName))
              AND (\(userID)::uuid IS NULL OR n.user_id = \(userID))
            """,
            logger: logger
        )
        var found: NotificationResource?
        for try await row in rows.decode(Row.self) { found = try Self.resource(row) }
        guard var resource = found, withHistory else { return found }
        resource.history = []
        for try await (status, previous, cause, at) in try await client.query(
            "SELECT to_status, from_status, cause, at FROM notification_history WHERE notification_id = \(id) ORDER BY id",
            logger: logger
        ).decode((String, String?, String?, Date).self) {
            guard let to = NotificationStatus(rawValue: status) else { throw UnknownNotificationStatus(status: status) }
            var from: NotificationStatus?
            if let previous {
                guard let known = NotificationStatus(rawValue: previous) else { throw UnknownNotificationStatus(status: previous) }
                from = known
            }
            resource.history?.append(HistoryEntry(status: to, previous: from, cause: cause, at: at))
        }
        if resource.notificationType == "email" || resource.notificationType == "sms" {
            resource.providerAttempts = []
            let table = resource.notificationType == "sms" ? "sms_deliveries" : "email_deliveries"
            for try await row in try await client.query(
                """
                SELECT attempt, provider, outcome, provider_message_id, error_code, error, at
                FROM \(unescaped: table) WHERE notification_id = \(id) ORDER BY id
                """,
                logger: logger
            ).decode((Int, String, String, String?, String?, String?, Date).self) {
                resource.providerAttempts?.append(
                    ProviderAttemptEntry(
                        attempt: row.0,
                        provider: row.1,
                        outcome: row.2,
                        providerMessageID: row.3,
                        errorCode: row.4,
                        error: row.5,
                        at: row.6
                    )
                )
            }
        }
        if resource.notificationType == "push" {
            resource.deliveries = []
            for try await row in try await client.query(
                """
                SELECT attempt, device_id, platform, outcome, provider_message_id, error_code, error, device_deactivated, at
                FROM push_deliveries WHERE notification_id = \(id) ORDER BY id
                """,
                logger: logger
            ).decode((Int, String, String, String, String?, String?, String?, Bool, Date).self) {
                resource.deliveries?.append(
                    DeviceDelivery(
                        attempt: row.0,
                        deviceID: row.1,
                        platform: row.2,
                        outcome: row.3,
                        providerMessageID: row.4,
                        errorCode: row.5,
                        error: row.6,
                        deviceDeactivated: row.7,
                        at: row.8
                    )
                )
            }
        }
        return resource
    }

    /// The notifications visible to `owner`, newest first, filtered; with the total for pagination.
    func list(
        owner: Owner,
        requestID: String?,
        userID: UUID?,
        status: NotificationStatus?,
        page: Int,
        limit: Int
    ) async throws
        -> ([NotificationResource], Int)
    {
        let (clientName, ownerID) = owner.filter
        var items: [NotificationResource] = []
        for try await row in try await client.query(
            """
            SELECT \(unescaped: Self.columns)
            FROM notifications n LEFT JOIN jobs j ON j.notification_id = n.id
            WHERE (\(clientName)::text IS NULL OR n.client = \(clientName)) AND (\(ownerID)::uuid IS NULL OR n.user_id = \(ownerID))
              AND (\(requestID)::text IS NULL OR n.request_id = \(requestID))
              AND (\(userID)::uuid IS NULL OR n.user_id = \(userID)) AND (\(status?.rawValue)::text IS NULL OR n.status = \(status?.rawValue))
            ORDER BY n.created_at DESC, n.id LIMIT \(limit) OFFSET \((page - 1) * limit)
            """,
            logger: logger
        ).decode(Row.self) { items.append(try Self.resource(row)) }
        var total = 0
        for try await count in try await client.query(
            """
            SELECT count(*)::int FROM notifications n
            WHERE (\(clientName)::text IS NULL OR n.client = \(clientName)) AND (\(ownerID)::uuid IS NULL OR n.user_id = \(ownerID))
              AND (\(requestID)::text IS NULL OR n.request_id = \(requestID))
              AND (\(userID)::uuid IS NULL OR n.user_id = \(userID)) AND (\(status?.rawValue)::text IS NULL OR n.status = \(status?.rawValue))
            """,
            logger: logger
        ).decode(Int.self) { total = count }
        return (items, total)
    }

    /// A delivery report from a provider or service: `delivered` only after `sent`; `failed` after `sent` (a bounce);
    /// `pending` is recorded in the history. Reporting the same outcome again changes nothing.
    func report(id: UUID, channel: String, status: NotificationStatus, error: String?, at: Date?) async throws -> ReportOutcome {
        guard let current = try await find(id: id, owner: .anyone), current.notificationType == channel else { return .notFound }
        if current.status == status, status != .pending {
            return .alreadyRecorded(try await find(id: id, owner: .anyone, withHistory: true) ?? current)
        }
        let allowed: Set<NotificationStatus> = status == .pending ? [.sent, .delivered, .processing, .pending, .retrying] : [.sent, .delivered]
        guard allowed.contains(current.status) else { return .invalid(current: current.status) }
        let cause = "delivery report: \(status.rawValue)" + (error.map { " (\($0))" } ?? "")
        try await client.withTransaction(logger: logger) { connection in
            _ = try await connection.query("SELECT set_config('notify.cause', \(cause), true)", logger: logger)
            if status == .pending {
                _ = try await connection.query(
                    "SELECT record_notification_event(\(id), \(current.status.rawValue), \(current.status.rawValue), \(cause))",
                    logger: logger
                )
            } else {
                _ = try await connection.query(
                    """
                    UPDATE notifications SET status = \(status.rawValue), updated_at = now(),
                        delivered_at = CASE WHEN \(status.rawValue) = 'delivered' THEN COALESCE(\(at), now()) ELSE delivered_at END,
                        last_error = CASE WHEN \(status.rawValue) = 'failed' THEN \(error ?? "reported failed") ELSE last_error END
                    WHERE id = \(id) AND status IN ('sent', 'delivered')
                    """,
                    logger: logger
                )
            }
        }
        return .recorded(try await find(id: id, owner: .anyone, withHistory: true) ?? current)
    }
}

extension NotificationRepository {
    /// Replays a dead-lettered notification of this client (the SQL function `replay_dead_letter`).
    /// Returns nil when there is no such notification, false when it is not failed.
    func replay(id: UUID, client clientName: String) async throws -> Bool? {
        guard try await find(id: id, owner: .client(clientName)) != nil else { return nil }
        return try await JobStore(client: client, logger: logger).replayDeadLetter(id)
    }

    /// Withdraws the notification's job if it is not yet sent (see `JobStore.cancel`).
    func cancel(id: UUID) async throws -> JobStore.CancelOutcome {
        try await JobStore(client: client, logger: logger).cancel(notificationID: id, cause: "cancelled by the client")
    }
}

enum NotificationRepositoryError: Error {
    case vanished
}

/// A notification row in a status this code does not know.
struct UnknownNotificationStatus: Error, CustomStringConvertible {
    var status: String
    var description: String { "a notification is in the unknown status \(status)" }
}
