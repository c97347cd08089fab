import Foundation
import Logging
import NotificationModel
import PostgresAccess
import PostgresNIO

/// One notification to accept: the row `accept_notifications` (sql/notifications/0020) writes with its job and its
/// outbox message.
public struct NotificationToEnqueue: Sendable {
    public var id: UUID
    public var client: String
    public var requestID: String
    /// What idempotency compares: the same request_id with another hash is a conflict.
    public var payloadHash: String
    public var channel: NotificationChannel
    /// The user it goes to, or nil when it goes to `recipient`.
    public var userID: UUID?
    public var templateCode: String
    public var language: String?
    public var variables: [String: JSONValue]
    public var metadata: [String: JSONValue]?
    public var priority: Int
    public var sendAt: Date?
    public var correlationID: String
    public var templateVersion: Int
    /// Seconds: the age of the last-known user or template data it was checked against (nil: fresh data).
    public var staleDataAge: Int?
    /// The address an email goes to instead of the user's.
    public var deliverTo: String?
    /// Where it goes when it goes to an address rather than a user.
    public var recipient: DirectRecipient?
    /// The address to check against the suppression list in the transaction that writes it (nil: checked before, or
    /// nothing to check): a suppressed one is not written.
    public var suppressionAddress: String?

    public init(
        id: UUID,
        client: String,
        requestID: String,
        payloadHash: String,
        channel: NotificationChannel,
        userID: UUID?,
        templateCode: String,
        language: String?,
        variables: [String: JSONValue],
        metadata: [String: JSONValue]?,
        priority: Int,
        sendAt: Date?,
        correlationID: String,
        templateVersion: Int,
        staleDataAge: Int?,
        deliverTo: String?,
        recipient: DirectRecipient? = nil,
        suppressionAddress: String? = nil
    ) {
        self.id = id
        self.client = client
        self.requestID = requestID
        self.payloadHash = payloadHash
        self.channel = channel
        self.userID = userID
        self.templateCode = templateCode
        self.language = language
        self.variables = variables
        self.metadata = metadata
        self.priority = priority
        self.sendAt = sendAt
        self.correlationID = correlationID
        self.templateVersion = templateVersion
        self.staleDataAge = staleDataAge
        self.deliverTo = deliverTo
        self.recipient = recipient
        self.suppressionAddress = suppressionAddress
    }
}

/// A notification `enqueue` wrote: when, and the job that carries it.
public struct EnqueuedJob: Sendable {
    public var createdAt: Date
    public var jobID: Int
}

/// What `enqueue` did, by notification id: written, or refused for a suppressed address; an id in neither was not
/// written because its client already used its request_id.
public struct Enqueued: Sendable {
    public var written: [UUID: EnqueuedJob] = [:]
    public var suppressed: [UUID: Suppression.Reason] = [:]
}

extension JobStore {
    static let noUser = UUID(text: "00000000-0000-0000-0000-000000000000")!

    /// Writes every notification with its job and outbox message in ONE statement, hence one transaction, set-based
    /// (one insert of the notifications, one of their jobs, one of their outbox messages, whatever the count).
    /// Returns what was written, by notification id; a notification whose client already used its request_id is
    /// not written and is absent. Nothing is returned before COMMIT returned (see `Database.withTransaction`): a lone
    /// statement's rows arrive before its commit.
    ///
    /// Items with a `suppressionAddress` are checked against the suppression list by the same statement, and the
    /// suppressed ones are left out: the transaction is BEGIN, one statement, COMMIT.
    public func enqueue(_ items: [NotificationToEnqueue], maxAttempts: Int) async throws -> Enqueued {
        guard !items.isEmpty else { return Enqueued() }
        return try await client.withTransaction(logger: logger) { connection in
            try await accept(items, maxAttempts: maxAttempts, on: connection)
        }
    }

    /// The JSON text of variables or metadata, for a `jsonb` bind.
    static func jsonText(_ object: [String: JSONValue]) throws -> String {
        guard let text = CanonicalJSON.text(object) else {
            throw EncodingError.invalidValue(object, .init(codingPath: [], debugDescription: "a number that is not finite has no JSON form"))
        }
        return text
    }

    func accept(_ items: [NotificationToEnqueue], maxAttempts: Int, on connection: PostgresConnection) async throws -> Enqueued {
        guard !items.isEmpty else { return Enqueued() }
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let ids = items.map(\.id)
        let variables = try items.map { try Self.jsonText($0.variables) }
        // Absent optional values travel as '' and become NULL in SQL (NULLIF).
        let metadata = try items.map { item in try item.metadata.map(Self.jsonText) ?? "" }
        let requestIDs = items.map(\.requestID)
        let hashes = items.map(\.payloadHash)
        let channels = items.map(\.channel.rawValue)
        // NULL in a uuid[] is not a bind PostgresNIO writes: the nil UUID stands for "no user" (a recipient).
        let userIDs = items.map { $0.userID ?? Self.noUser }
        let codes = items.map(\.templateCode)
        let languages = items.map { $0.language ?? "" }
        let priorities = items.map(\.priority)
        let sendAts = items.map { $0.sendAt.map { formatter.string(from: $0) } ?? "" }
        let versions = items.map(\.templateVersion)
        // NULL in an int[] is not a bind PostgresNIO writes: -1 stands for "checked against fresh data".
        let staleAges = items.map { $0.staleDataAge ?? -1 }
        let deliverTo = items.map { $0.deliverTo ?? "" }
        let recipients = items.map { $0.recipient?.json ?? "" }
        let clients = items.map(\.client)
        let correlationIDs = items.map(\.correlationID)
        let checkAddresses = items.map { $0.suppressionAddress ?? "" }
        let logger = self.logger

        // PL/pgSQL keeps its plans between calls, and the call itself is prepared once per connection: one round
        // trip for the whole batch, the suppression list included.
        var bindings = PostgresBindings(capacity: 19)
        bindings.append(ids)
        bindings.append(clients)
        bindings.append(requestIDs)
        bindings.append(hashes)
        bindings.append(channels)
        bindings.append(userIDs)
        bindings.append(codes)
        bindings.append(languages)
        bindings.append(variables)
        bindings.append(metadata)
        bindings.append(priorities)
        bindings.append(sendAts)
        bindings.append(correlationIDs)
        bindings.append(versions)
        bindings.append(staleAges)
        bindings.append(deliverTo)
        bindings.append(recipients)
        bindings.append(checkAddresses)
        bindings.append(maxAttempts)
        var result = Enqueued()
        for try await (id, createdAt, jobID, suppressed) in try await connection.execute(
            AcceptStatement.self,
            bindings,
            logger: logger
        ).decode((UUID, Date?, Int?, String?).self) {
            if let suppressed {
                result.suppressed[id] = Suppression.Reason(rawValue: suppressed) ?? .manual
            } else if let createdAt, let jobID {
                result.written[id] = EnqueuedJob(createdAt: createdAt, jobID: jobID)
            }
        }
        return result
    }

    /// `accept_notifications` (sql/notifications/0020), prepared once per connection. Integer arrays are bound as
    /// `bigint[]` and narrowed by the cast.
    enum AcceptStatement: PreparedSQL {
        static let sql = """
            SELECT notification_id, created_at, job_id, suppressed FROM accept_notifications(
                $1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[],
                $7::text[], $8::text[], $9::text[], $10::text[], $11::bigint[]::int[],
                $12::text[], $13::text[], $14::bigint[]::int[], $15::bigint[]::int[], $16::text[],
                $17::text[], $18::text[], $19::bigint::int)
            """
    }

    /// Sends a dead-lettered (failed) notification again with a fresh attempt budget (the SQL function
    /// `replay_dead_letter`, in its own transaction). False when the notification is not failed.
    public func replayDeadLetter(_ notificationID: UUID) async throws -> Bool {
        let logger = self.logger
        return try await client.withTransaction(logger: logger) { connection in
            var replayed = false
            for try await value in try await connection.query("SELECT replay_dead_letter(\(notificationID))", logger: logger).decode(Bool.self) {
                replayed = value
            }
            return replayed
        }
    }
}
