import Foundation

/// The body of a message on `email.queue` / `push.queue` / `sms.queue` (the seed's fields plus the job it belongs to).
public struct QueueMessage: Codable, Sendable, Equatable {
    public var notificationID: UUID
    public var jobID: Int
    /// Null when the notification goes to an address (`recipient`) rather than a user.
    public var userID: UUID?
    public var templateCode: String
    public var variables: [String: JSONValue]
    public var requestID: String
    public var priority: Int
    public var metadata: [String: JSONValue]?
    public var attempt: Int

    public init(
        notificationID: UUID,
        jobID: Int,
        userID: UUID?,
        templateCode: String,
        variables: [String: JSONValue],
        requestID: String,
        priority: Int,
        metadata: [String: JSONValue]?,
        attempt: Int
    ) {
        self.notificationID = notificationID
        self.jobID = jobID
        self.userID = userID
        self.templateCode = templateCode
        self.variables = variables
        self.requestID = requestID
        self.priority = priority
        self.metadata = metadata
        self.attempt = attempt
    }

    /// UUIDs go out in lowercase, the canonical text form (Swift's default is uppercase).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(notificationID.lowercased, forKey: .notificationID)
        try container.encode(jobID, forKey: .jobID)
        try container.encode(userID?.lowercased, forKey: .userID)
        try container.encode(templateCode, forKey: .templateCode)
        try container.encode(variables, forKey: .variables)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(priority, forKey: .priority)
        try container.encodeIfPresent(metadata, forKey: .metadata)
        try container.encode(attempt, forKey: .attempt)
    }

    enum CodingKeys: String, CodingKey {
        case notificationID = "notification_id"
        case jobID = "job_id"
        case userID = "user_id"
        case templateCode = "template_code"
        case variables
        case requestID = "request_id"
        case priority, metadata, attempt
    }
}

/// The delivery channels; each has its own queue, routing key and worker.
public enum NotificationChannel: String, Codable, Sendable, CaseIterable {
    case email, push, sms

    public var routingKey: String { rawValue }
    public var queueName: String { "\(rawValue).queue" }
}

extension Duration {
    /// The duration as fractional seconds (for SQL intervals and arithmetic).
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }
}

/// A batch message: many jobs of one queue and priority in one broker message (`{"jobs": [message, ...]}`), so that
/// publishing through RabbitMQ's management API, which costs the broker about a millisecond and a half of CPU per
/// request, costs it per batch rather than per job. Workers take the single-job form as well.
public enum QueueBatch {
    /// The body of a batch of these message bodies (each a JSON object, as the outbox holds them).
    public static func body(_ payloads: [String]) -> String {
        "{\"jobs\":[" + payloads.joined(separator: ",") + "]}"
    }

    /// The job ids a message carries, in order: one for a single message, each job's for a batch; nil when the body
    /// is neither (such a message is dead-lettered). Only `job_id` is read: the worker takes everything else from the
    /// job's row when it claims it (decoding each job's variables and metadata, only to drop them, was 4 % of the email
    /// worker's CPU).
    public static func jobIDs(in body: Data) -> [Int]? {
        let decoder = JSONDecoder()
        if let batch = try? decoder.decode(BatchReference.self, from: body), !batch.jobs.isEmpty { return batch.jobs.map(\.jobID) }
        if let single = try? decoder.decode(JobReference.self, from: body) { return [single.jobID] }
        return nil
    }

    struct JobReference: Decodable {
        var jobID: Int
        enum CodingKeys: String, CodingKey { case jobID = "job_id" }
    }

    struct BatchReference: Decodable { var jobs: [JobReference] }
}
