import Breakers
import Deadlines
import Directory
import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyHTTP
import RateLimiting
import Telemetry

/// One item's outcome in a bulk response, in the order of the request.
struct BulkItemResult: Encodable, Sendable {
    var index: Int
    var requestID: String?
    var success: Bool
    /// The status the item would have had as a single request (202, 200 replay, 400, 403, 404, 422, 429).
    var status: Int
    var error: String?
    var message: String
    var details: [FieldError]?
    var data: Accepted?

    enum CodingKeys: String, CodingKey {
        case index
        case requestID = "request_id"
        case success, status, error, message, details, data
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(index, forKey: .index)
        try container.encode(requestID, forKey: .requestID)
        try container.encode(success, forKey: .success)
        try container.encode(status, forKey: .status)
        try container.encode(error, forKey: .error)
        try container.encode(message, forKey: .message)
        try container.encodeIfPresent(details, forKey: .details)
        try container.encode(data, forKey: .data)
    }

    init(index: Int, requestID: String?, error: APIError) {
        self.index = index
        self.requestID = requestID
        success = false
        status = Int(error.status.code)
        self.error = error.code.rawValue
        message = error.message
        details = error.details
    }

    init(index: Int, requestID: String, accepted: Accepted, replayed: Bool) {
        self.index = index
        self.requestID = requestID
        success = true
        status = replayed ? 200 : 202
        message = replayed ? "Notification already accepted" : "Notification accepted"
        data = accepted
    }
}

struct BulkSummary: Encodable, Sendable {
    var total: Int
    var accepted: Int
    var replayed: Int
    var rejected: Int
    var results: [BulkItemResult]
}

extension NotificationController {
    static let bulkLimit = 1000

    /// `POST /api/v1/notifications/bulk/` `{"notifications": [...]}`: up to 1,000 notifications, each checked like a
    /// single create, every accepted one written in ONE transaction; the answer has one result per item, in order.
    /// Idempotency is per item (`request_id`), also between items of the same request.
    @Sendable func bulk(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try Self.requireSend(identity)
        let body = try await request.jsonObject(limit: 8 << 20)
        guard case .array(let rawItems)? = body["notifications"] else {
            throw APIError.validation([FieldError(field: "notifications", message: "an array of notifications is required")])
        }
        guard (1...Self.bulkLimit).contains(rawItems.count) else {
            throw APIError.validation([FieldError(field: "notifications", message: "must hold 1 to \(Self.bulkLimit) notifications")])
        }
        // The credential's bucket was charged once by the middleware; the other items are charged here.
        if rawItems.count > 1, let limit = limits.perCredential, !identity.has(.service) {
            let decision = await limiter.check(RateLimitMiddleware.bucket(identity), limit: limit, cost: rawItems.count - 1)
            if !decision.allowed { throw APIError.rateLimited(decision, "This bulk request is larger than the credential's remaining rate limit") }
        }

        var results = [BulkItemResult?](repeating: nil, count: rawItems.count)
        var candidates: [(index: Int, new: NewNotification)] = []
        for (index, raw) in rawItems.enumerated() {
            guard case .object(let object) = raw else {
                results[index] = BulkItemResult(
                    index: index,
                    requestID: nil,
                    error: APIError.validation([FieldError(field: "notifications[\(index)]", message: "must be a JSON object")])
                )
                continue
            }
            do {
                let new = try Self.validate(object, idempotencyKey: nil, webPush: webPushPolicy)
                if new.deliverTo != nil {
                    let refusal = APIError.validation([FieldError(field: "deliver_to", message: "is not accepted in a bulk request")])
                    results[index] = BulkItemResult(index: index, requestID: new.requestID, error: refusal)
                } else if let refusal = Self.refusal(identity, sending: new) {
                    results[index] = BulkItemResult(index: index, requestID: new.requestID, error: refusal)
                } else {
                    candidates.append((index, new))
                }
            } catch let error as APIError {
                results[index] = BulkItemResult(index: index, requestID: object["request_id"]?.stringValue, error: error)
            }
        }

        // Repeated request_ids inside the request: the first one counts, later ones are replays or conflicts of it.
        var firstByRequestID: [String: (index: Int, new: NewNotification)] = [:]
        var repeats: [(index: Int, new: NewNotification, first: (index: Int, new: NewNotification))] = []
        var unique: [(index: Int, new: NewNotification)] = []
        for candidate in candidates {
            if let first = firstByRequestID[candidate.new.requestID] {
                repeats.append((candidate.index, candidate.new, first))
            } else {
                firstByRequestID[candidate.new.requestID] = candidate
                unique.append(candidate)
            }
        }

        let checked: [Int: Lookup]
        do {
            checked = try await lookUpAll(unique, correlationID: context.correlationID)
        } catch {
            context.logger.warning("recipients and templates not checked", metadata: ["error": .string(String(describing: error))])
            throw APIError.dependencyUnavailable("The user or template service is unavailable, so the request cannot be checked; try again shortly")
        }
        let unavailable = APIError.dependencyUnavailable(
            "The user or template service is unavailable and this recipient or template has not been seen recently; try again shortly"
        )
        var allowedUsers: [String: RateDecision] = [:]
        if let limit = limits.perUser {
            // Every recipient's bucket in one round trip to Redis, each charged with its items.
            let counts = Array(Dictionary(grouping: unique, by: \.new.rateKey).mapValues(\.count))
            let decisions = await limiter.checkMany(counts.map { ($0.key, $0.value) }, limit: limit)
            for (entry, decision) in zip(counts, decisions) { allowedUsers[entry.key] = decision }
        }
        // Every email address of the batch checked against the suppression list in one query.
        let addresses = unique.compactMap { entry in Self.address(of: entry.new, recipient: checked[entry.index]?.recipient?.value) }
        let suppressed = try await Self.checked { try await suppressions.reasons(for: addresses) }
        var toInsert: [(index: Int, new: NewNotification, version: Int, staleDataAge: Int?)] = []
        var refused: [(index: Int, new: NewNotification, error: APIError)] = []
        for (index, new) in unique {
            guard let lookup = checked[index], !lookup.unavailable else {
                refused.append((index, new, unavailable))
                continue
            }
            if let refusal = Self.refusal(new, recipient: lookup.recipient?.value, template: lookup.template.value) {
                refused.append((index, new, refusal))
            } else if let address = Self.address(of: new, recipient: lookup.recipient?.value), let reason = suppressed[address] {
                refused.append((index, new, Self.suppressed(reason)))
            } else if let decision = allowedUsers[new.rateKey], !decision.allowed {
                refused.append((index, new, APIError.rateLimited(decision, Self.tooMany(new))))
            } else {
                let staleDataAge = Self.staleSeconds(lookup.recipient?.staleFor, lookup.template.staleFor)
                var held = new
                held.heldUntil = hold(new, recipient: lookup.recipient?.value, template: lookup.template.value)
                toInsert.append((index, held, lookup.template.value?.activeVersion ?? 1, staleDataAge))
            }
        }

        let inserted: [Accepted?]
        let rows = toInsert.map {
            PendingCreate(
                new: $0.new,
                templateVersion: $0.version,
                staleDataAge: $0.staleDataAge,
                client: identity.client,
                correlationID: context.correlationID
            )
        }
        do {
            inserted = try await withDeadline(.seconds(30)) {
                // No suppression address here: the bulk checked its addresses above, in one query.
                try await repository.createMany(rows).map { written in
                    if case .accepted(let accepted) = written { return accepted }
                    return nil
                }
            }
        } catch {
            context.logger.error("bulk not stored", metadata: ["error_type": .string(String(describing: type(of: error)))])
            throw APIError.dependencyUnavailable("The notifications could not be stored durably; nothing was accepted")
        }
        for (entry, accepted) in zip(toInsert, inserted) {
            if let accepted {
                results[entry.index] = BulkItemResult(index: entry.index, requestID: entry.new.requestID, accepted: accepted, replayed: false)
            } else {
                results[entry.index] = try await earlierResult(entry.index, entry.new, client: identity.client)
            }
        }
        // Refused items whose request_id was accepted earlier answer with the original, as a single create does.
        for entry in refused {
            if let earlier = try await repository.existing(entry.new, client: identity.client) {
                results[entry.index] = Self.result(entry.index, entry.new, earlier)
            } else {
                results[entry.index] = BulkItemResult(index: entry.index, requestID: entry.new.requestID, error: entry.error)
            }
        }
        for entry in repeats {
            let first = results[entry.first.index]
            if let first, first.success, let data = first.data {
                results[entry.index] =
                    entry.first.new.payloadHash == entry.new.payloadHash
                    ? BulkItemResult(index: entry.index, requestID: entry.new.requestID, accepted: data, replayed: true)
                    : BulkItemResult(index: entry.index, requestID: entry.new.requestID, error: Self.idempotencyConflict)
            } else if let first {
                // The first item with this request_id was refused; this one shares its fate.
                var copy = first
                copy.index = entry.index
                results[entry.index] = copy
            }
        }

        for result in results where result?.status == 202 {
            Telemetry.accepted(channel: result?.data?.notificationType ?? "email")
        }
        let final = results.enumerated().map {
            $0.element ?? BulkItemResult(index: $0.offset, requestID: nil, error: APIError.internalError)
        }
        let summary = BulkSummary(
            total: final.count,
            accepted: final.filter { $0.status == 202 }.count,
            replayed: final.filter { $0.status == 200 }.count,
            rejected: final.filter { !$0.success }.count,
            results: final
        )
        context.logger.info(
            "bulk processed",
            metadata: ["accepted": "\(summary.accepted)", "replayed": "\(summary.replayed)", "rejected": "\(summary.rejected)"]
        )
        return .envelope(
            writing: summary,
            message: "\(summary.accepted) accepted, \(summary.replayed) already accepted, \(summary.rejected) rejected"
        )
    }

    static let idempotencyConflict = APIError(
        .unprocessableContent,
        code: .idempotencyConflict,
        message: "This request_id was already used with a different payload"
    )

    func earlierResult(_ index: Int, _ new: NewNotification, client: String) async throws -> BulkItemResult {
        guard let earlier = try await repository.existing(new, client: client) else {
            return BulkItemResult(index: index, requestID: new.requestID, error: APIError.internalError)
        }
        return Self.result(index, new, earlier)
    }

    static func result(_ index: Int, _ new: NewNotification, _ outcome: CreateOutcome) -> BulkItemResult {
        switch outcome {
        case .created(let accepted): return BulkItemResult(index: index, requestID: new.requestID, accepted: accepted, replayed: false)
        case .replayed(let resource): return BulkItemResult(index: index, requestID: new.requestID, accepted: Accepted(resource), replayed: true)
        case .conflict: return BulkItemResult(index: index, requestID: new.requestID, error: idempotencyConflict)
        case .suppressed(let reason): return BulkItemResult(index: index, requestID: new.requestID, error: suppressed(reason))
        }
    }

    /// What a bulk item was checked against: its recipient (nil: no such user) and template, each possibly from the
    /// last known answers; `unavailable` when a service could not answer and nothing recent is known.
    struct Lookup: Sendable {
        var recipient: Checked<Recipient>?
        var template: Checked<TemplateContent?>
        var unavailable: Bool
    }

    /// Looks up every distinct user and template once, a few at a time. While a service cannot answer, items are
    /// checked against its last answers; those never seen (or seen too long ago) are `unavailable`.
    func lookUpAll(_ items: [(index: Int, new: NewNotification)], correlationID: String) async throws -> [Int: Lookup] {
        let userIDs = Array(Set(items.compactMap(\.new.userID)))
        struct TemplateKey: Hashable { var code: String, channel: String, language: String? }
        let templateKeys = Array(
            Set(items.map { TemplateKey(code: $0.new.templateCode, channel: $0.new.channel.rawValue, language: $0.new.language) })
        )
        let (recipients, unknownUsers) =
            userIDs.isEmpty ? ([:], []) : try await directory.checkedRecipients(userIDs, correlationID: correlationID)
        let templates = try await Self.concurrently(templateKeys, width: 8) { key -> Checked<TemplateContent?>? in
            do {
                return try await directory.checkedTemplate(key.code, channel: key.channel, language: key.language, correlationID: correlationID)
            } catch is DirectoryUnavailable {
                return nil
            } catch is BreakerOpenError {
                return nil
            }
        }
        var found: [Int: Lookup] = [:]
        for (index, new) in items {
            let key = TemplateKey(code: new.templateCode, channel: new.channel.rawValue, language: new.language)
            let template = templates[key] ?? nil
            // Sent to an address: nothing to look up.
            let recipient = new.userID.flatMap { recipients[$0] } ?? new.recipient.map { Checked(value: Recipient.direct($0)) }
            found[index] = Lookup(
                recipient: recipient,
                template: template ?? Checked(value: nil),
                unavailable: template == nil || (new.userID.map { unknownUsers.contains($0) } ?? false)
            )
        }
        return found
    }

    static func concurrently<Key: Hashable & Sendable, Value: Sendable>(
        _ keys: [Key],
        width: Int,
        _ body: @escaping @Sendable (Key) async throws -> Value
    ) async throws -> [Key: Value] {
        try await withThrowingTaskGroup(of: (Key, Value).self) { group in
            var results: [Key: Value] = [:]
            var iterator = keys.makeIterator()
            for _ in 0..<width {
                guard let key = iterator.next() else { break }
                group.addTask { (key, try await body(key)) }
            }
            while let (key, value) = try await group.next() {
                results[key] = value
                if let next = iterator.next() { group.addTask { (next, try await body(next)) } }
            }
            return results
        }
    }
}

extension BulkItemResult: JSONWritable {
    func write(to json: inout JSONBytes) {
        json.beginObject()
        json.key("index")
        json.int(index)
        json.key("request_id")
        json.string(requestID)
        json.key("success")
        json.bool(success)
        json.key("status")
        json.int(status)
        json.key("error")
        json.string(error)
        json.key("message")
        json.string(message)
        if let details {
            json.key("details")
            json.array(details)
        }
        json.key("data")
        json.value(data)
        json.endObject()
    }
}

extension BulkSummary: JSONWritable {
    func write(to json: inout JSONBytes) {
        json.beginObject()
        json.key("total")
        json.int(total)
        json.key("accepted")
        json.int(accepted)
        json.key("replayed")
        json.int(replayed)
        json.key("rejected")
        json.int(rejected)
        json.key("results")
        json.array(results)
        json.endObject()
    }
}
