import Deadlines
import Directory
import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyHTTP
import OutboundPolicy
import RateLimiting
import Telemetry

/// The gateway's notification endpoints: create (one or in bulk), status, list, retry and delivery reports.
///
/// Callers: client API keys (scopes `notifications:write` / `notifications:read`; they see their own
/// notifications), a user's access token from the user service (may send to and read notifications of that user
/// only), and the platform's service key (delivery reports).
struct NotificationController: Sendable {
    let repository: NotificationRepository
    let directory: PlatformDirectory
    let limiter: RateLimiter
    let limits: RateLimits
    let suppressions: SuppressionList
    /// Which Web Push endpoints a `recipient` may name (the user service's rule for registered devices).
    var webPushPolicy = EndpointPolicy()
    /// Which notifications wait for the end of a user's quiet hours.
    var quietHours = QuietHoursPolicy()
    /// Template categories whose notifications wait for the end of their window, to go out as one message.
    var digests = DigestPolicy()
    /// The clock quiet hours are read against.
    var now: @Sendable () -> Date = { Date() }

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/notifications", use: create)
        router.post("/api/v1/notifications/bulk", use: bulk)
        router.get("/api/v1/notifications/:id", use: show)
        router.post("/api/v1/notifications/:id/retry", use: retry)
        router.post("/api/v1/notifications/:id/cancel", use: cancel)
        router.get("/api/v1/notifications", use: list)
        router.post("/api/v1/email/status", use: { request, context in try await report(request, context: context, channel: "email") })
        router.post("/api/v1/push/status", use: { request, context in try await report(request, context: context, channel: "push") })
    }

    /// Re-queues a failed (dead-lettered) notification with a fresh set of attempts.
    @Sendable func retry(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        try identity.require(.notificationsWrite)
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)),
            let replayed = try await repository.replay(id: id, client: identity.client)
        else { throw APIError.notFound(.notificationNotFound, "No notification with this id") }
        guard replayed else {
            throw APIError(.conflict, code: .notRetryable, message: "Only a failed notification can be retried")
        }
        guard let notification = try await repository.find(id: id, owner: .client(identity.client)) else { throw APIError.internalError }
        context.logger.info("notification replayed", metadata: ["notification_id": .string(notification.notificationID)])
        return .envelope(.accepted, data: notification, message: "Notification re-queued")
    }

    /// `POST /api/v1/notifications/{id}/cancel/`: withdraws a notification not yet sent (scheduled, waiting, or
    /// retrying) so it is never sent, even if its message is already on the broker. Cancelling it again answers 200;
    /// once a worker is sending it, or it was sent or failed, 409.
    @Sendable func cancel(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        if identity.userID != nil {
            throw APIError.forbidden("A user's access token cannot cancel notifications; a client's API key with notifications:write can")
        }
        try identity.require(.notificationsWrite)
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)),
            try await repository.find(id: id, owner: .client(identity.client)) != nil
        else { throw APIError.notFound(.notificationNotFound, "No notification with this id") }
        let outcome = try await repository.cancel(id: id)
        let message: String
        switch outcome {
        case .cancelled:
            message = "Notification cancelled: it will not be sent"
            Telemetry.cancelled()
            context.logger.info("notification cancelled by its client", metadata: ["notification_id": .string(id.lowercased)])
        case .alreadyCancelled:
            message = "Notification already cancelled"
        case .tooLate(let state):
            let why =
                switch state {
                case .running: "it is being sent right now"
                case .completed: "it was already sent"
                case .discarded: "it already failed (a dead letter can be retried, not cancelled)"
                default: "it is \(state.rawValue)"
                }
            throw APIError(.conflict, code: .notCancellable, message: "This notification cannot be cancelled: \(why)")
        case .notFound:
            throw APIError.notFound(.notificationNotFound, "No notification with this id")
        }
        guard let notification = try await repository.find(id: id, owner: .client(identity.client), withHistory: true) else {
            throw APIError.internalError
        }
        return .envelope(data: notification, message: message)
    }

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let identity = try context.requireIdentity()
        // The credential's bucket (which the middleware leaves to this handler) and the recipient's, in one round trip.
        let keyLimit = identity.has(.service) ? nil : limits.perCredential
        let new: NewNotification
        do {
            try Self.requireSend(identity)
            new = try Self.validate(try await request.jsonObject(), idempotencyKey: request.headers[.idempotencyKey], webPush: webPushPolicy)
            if let refusal = Self.refusal(identity, sending: new) { throw refusal }
        } catch {
            // Refused before the buckets: charged to the credential all the same, as every other call.
            if let keyLimit {
                let decision = await limiter.check(RateLimitMiddleware.bucket(identity), limit: keyLimit)
                if !decision.allowed { throw RateLimitMiddleware.refused(decision) }
            }
            throw error
        }
        var buckets: [(key: String, limit: RateLimit, cost: Int)] = []
        if let keyLimit { buckets.append((RateLimitMiddleware.bucket(identity), keyLimit, 1)) }
        if let limit = limits.perUser { buckets.append((new.rateKey, limit, 1)) }
        let decisions = await limiter.checkChain(buckets)
        let keyDecision = keyLimit == nil ? nil : decisions.first
        if let keyDecision, !keyDecision.allowed { throw RateLimitMiddleware.refused(keyDecision) }
        if let decision = decisions.last, !decision.allowed {
            // A replay of what was accepted before still answers with the original.
            if let earlier = try await repository.existing(new, client: identity.client) {
                return RateLimitMiddleware.withHeaders(try Self.respond(earlier, context: context, requestID: new.requestID), of: keyDecision)
            }
            Telemetry.rateLimited(scope: new.recipient == nil ? "user" : "recipient")
            throw APIError.rateLimited(decision, Self.tooMany(new))
        }
        return RateLimitMiddleware.withHeaders(try await accept(new, identity: identity, context: context), of: keyDecision)
    }

    /// A create past its rate limits: checked against the recipient, the template and the suppression list, then written.
    func accept(_ new: NewNotification, identity: Identity, context: NotifyRequestContext) async throws -> Response {
        let checked: (recipient: Checked<Recipient?>, template: Checked<TemplateContent?>)
        do {
            checked = try await lookUp(new, correlationID: context.correlationID)
        } catch {
            context.logger.warning("recipient and template not checked", metadata: ["error": .string(String(describing: error))])
            throw APIError.dependencyUnavailable("The user or template service is unavailable, so the request cannot be checked; try again shortly")
        }
        if let refusal = Self.refusal(new, recipient: checked.recipient.value, template: checked.template.value) {
            // A replay of a request accepted before the user changed their mind still returns the original.
            if let earlier = try await repository.existing(new, client: identity.client) {
                return try Self.respond(earlier, context: context, requestID: new.requestID)
            }
            throw refusal
        }
        // The suppression list is checked in the transaction that writes it, with the other creates of its group.
        let address = Self.address(of: new, recipient: checked.recipient.value)
        var held = new
        held.heldUntil = hold(new, recipient: checked.recipient.value, template: checked.template.value)
        let toWrite = held
        let outcome: CreateOutcome
        do {
            // If the deadline passes after the commit, the client's retry with the same request_id finds the original.
            outcome = try await withDeadline(.seconds(10)) {
                try await repository.create(
                    toWrite,
                    templateVersion: checked.template.value?.activeVersion ?? 1,
                    staleDataAge: Self.staleSeconds(checked.recipient.staleFor, checked.template.staleFor),
                    suppressionAddress: address,
                    client: identity.client,
                    correlationID: context.correlationID
                )
            }
        } catch let error as APIError {
            throw error
        } catch {
            context.logger.error("notification not stored", metadata: ["error_type": .string(String(describing: type(of: error)))])
            throw APIError.dependencyUnavailable("The notification could not be stored durably; nothing was accepted")
        }
        return try Self.respond(outcome, context: context, requestID: new.requestID)
    }

    /// The recipient and the template a notification names (nil when they do not exist), from their services or, while
    /// one cannot answer, from its last answer within the staleness bound; throws when neither is possible.
    func lookUp(_ new: NewNotification, correlationID: String) async throws -> (recipient: Checked<Recipient?>, template: Checked<TemplateContent?>) {
        async let template = directory.checkedTemplate(
            new.templateCode,
            channel: new.channel.rawValue,
            language: new.language,
            correlationID: correlationID
        )
        guard let userID = new.userID else {
            // Sent to an address: nothing to look up.
            return (Checked(value: new.recipient.map(Recipient.direct)), try await template)
        }
        let recipient = try await directory.checkedRecipient(userID, correlationID: correlationID)
        return (recipient, try await template)
    }

    /// The age, in whole seconds rounded up, of the oldest last-known answer a notification was checked against (nil:
    /// every answer was fresh).
    static func staleSeconds(_ ages: Duration?...) -> Int? {
        guard let oldest = ages.compactMap({ $0 }).max() else { return nil }
        return max(1, Int(oldest.inSeconds.rounded(.up)))
    }

    /// Why this notification may not be sent: no such template or user, or the user turned the channel off.
    static func refusal(_ new: NewNotification, recipient: Recipient?, template: TemplateContent?) -> APIError? {
        guard let template else {
            return APIError.notFound(.templateNotFound, "No \(new.channel.rawValue) template with this template_code")
        }
        guard let recipient else { return APIError.notFound(.userNotFound, "No user with this user_id") }
        // Sent to an address: the client owns consent; the suppression list still applies.
        if recipient.isDirect { return nil }
        if recipient.disabled == true {
            return APIError(.unprocessableContent, code: .userDisabled, message: "The user is disabled: nothing is sent to them")
        }
        let preferences = recipient.preferences
        // The platform's own mail to an address the user asked for (a verification) is not subject to their preferences.
        if new.deliverTo != nil { return nil }
        if new.channel == .sms, recipient.phone == nil {
            return APIError(.unprocessableContent, code: .noPhoneNumber, message: "The user has no phone number to send an SMS to")
        }
        if preferences.allows(channel: new.channel.rawValue, category: template.category) { return nil }
        return APIError(
            .unprocessableContent,
            code: .channelDisabled,
            message: "The user has turned \(new.channel.rawValue) notifications\(template.category.map { " of category \($0)" } ?? "") off"
        )
    }

    /// The end of the user's quiet hours on this channel when the notification would go inside them and is not urgent
    /// (its priority below the threshold of its template's category); nil: it goes when due. The platform's own mail
    /// and notifications to an address are never held.
    func hold(_ new: NewNotification, recipient: Recipient?, template: TemplateContent?) -> Date? {
        guard let recipient, !recipient.isDirect, new.deliverTo == nil else { return nil }
        let due = new.sendAt ?? now()
        let quiet = quietHours.hold(
            due: due,
            channel: new.channel.rawValue,
            priority: new.priority,
            category: template?.category,
            quietHours: recipient.quietHours,
            timeZone: recipient.timeZone
        )
        // A digest category: the end of the window it falls in (after quiet hours, if those hold it).
        return digests.windowEnd(category: template?.category, due: quiet ?? due) ?? quiet
    }

    /// The address an email goes to (`deliver_to`, platform mail, or the user's), or the number an SMS goes to.
    static func address(of new: NewNotification, recipient: Recipient?) -> String? {
        switch new.channel {
        case .email: return new.deliverTo ?? recipient?.email
        case .sms: return recipient?.phone
        case .push: return nil
        }
    }

    /// A suppression lookup the database could not answer: 503, nothing accepted (never a 500, never sent unchecked).
    static func checked<T: Sendable>(_ lookup: () async throws -> T) async throws -> T {
        do {
            return try await lookup()
        } catch {
            throw APIError.dependencyUnavailable("The suppression list could not be checked, so nothing was accepted; try again shortly")
        }
    }

    static func suppressed(_ reason: Suppression.Reason) -> APIError {
        let why: String
        switch reason {
        case .hardBounce: why = "it hard-bounced"
        case .complaint: why = "its owner marked the platform's mail as spam"
        case .manual: why = "an operator added it"
        case .optOut: why = "its owner replied STOP"
        }
        let what = reason == .optOut ? "phone number" : "email address"
        return APIError(
            .unprocessableContent,
            code: .recipientSuppressed,
            message: "The recipient's \(what) is on the suppression list (\(why)); an operator can remove it through the admin API"
        )
    }

    /// Client keys need `notifications:write`. A user's own token sends nothing: what a user receives is decided by
    /// the backends that hold client keys (otherwise a user could mail any template, with variables of their
    /// choosing, to their own or a changed address). It may read what was sent to that user.
    static func requireSend(_ identity: Identity) throws {
        // The platform's own services send their own mail (the user service: address verifications).
        if identity.has(.service) { return }
        if identity.userID != nil {
            throw APIError.forbidden("A user's access token cannot send notifications; a client's API key with notifications:write can")
        }
        try identity.require(.notificationsWrite)
    }

    /// A user's token reaches only notifications addressed to that user; `deliver_to` is the platform's own.
    static func refusal(_ identity: Identity, sending new: NewNotification) -> APIError? {
        if let own = identity.userID, own != new.userID {
            return APIError.forbidden("A user's access token may only send notifications to that user")
        }
        if new.deliverTo != nil, !identity.has(.service) {
            return APIError.forbidden("deliver_to is reserved for the platform's own services")
        }
        return nil
    }

    /// The 429 message of the per-recipient limit.
    static func tooMany(_ new: NewNotification) -> String {
        new.recipient == nil ? "Too many notifications for this user; try again later" : "Too many notifications for this recipient; try again later"
    }

    /// Reading needs `notifications:read` (or write, or admin), or a user's own token.
    static func readOwner(_ identity: Identity) throws -> Owner {
        if let userID = identity.userID { return .user(userID) }
        guard identity.has(.notificationsRead) || identity.has(.notificationsWrite) || identity.has(.admin)
        else { throw APIError.forbidden("This credential lacks the scope notifications:read") }
        return .client(identity.client)
    }

    static func respond(_ outcome: CreateOutcome, context: NotifyRequestContext, requestID: String) throws -> Response {
        switch outcome {
        case .created(let notification):
            Telemetry.accepted(channel: notification.notificationType)
            context.logger.info(
                "notification accepted",
                metadata: [
                    "notification_id": .string(notification.notificationID), "request_id": .string(requestID),
                    "job_id": .string(notification.jobID.map(String.init) ?? ""),
                ]
            )
            let message =
                notification.heldUntil == nil
                ? "Notification accepted" : "Notification accepted; it is held until held_until (the user's quiet hours or its digest window)"
            return .envelope(.accepted, writing: notification, message: message)
        case .replayed(let notification):
            return .envelope(.ok, writing: Accepted(notification), message: "Notification already accepted", headers: [.idempotentReplayed: "true"])
        case .conflict:
            throw APIError(
                .unprocessableContent,
                code: .idempotencyConflict,
                message: "This request_id was already used with a different payload"
            )
        case .suppressed(let reason):
            throw Self.suppressed(reason)
        }
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let owner = try Self.readOwner(try context.requireIdentity())
        guard let id = context.parameters.get("id").flatMap(UUID.init(text:)) else {
            throw APIError.notFound(.notificationNotFound, "No notification with this id")
        }
        guard let notification = try await repository.find(id: id, owner: owner, withHistory: true) else {
            throw APIError.notFound(.notificationNotFound, "No notification with this id")
        }
        return .envelope(data: notification, message: "Notification retrieved successfully")
    }

    /// `GET /api/v1/notifications/?request_id=&user_id=&status=&page=&limit=`: the caller's notifications, newest first.
    @Sendable func list(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let owner = try Self.readOwner(try context.requireIdentity())
        let query = request.uri.queryParameters
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        var userID: UUID?
        if let raw = query.get("user_id") {
            userID = UUID(text: raw)
            if userID == nil { errors.append(FieldError(field: "user_id", message: "must be a UUID")) }
        }
        if let raw = query.get("request_id"), raw.isEmpty || raw.count > 255 || raw.unicodeScalars.contains("\u{0}") {
            errors.append(FieldError(field: "request_id", message: "must be 1 to 255 characters, without NUL"))
        }
        let status = query.get("status").map { NotificationStatus(rawValue: $0) }
        if let status, status == nil {
            let statuses = NotificationStatus.allCases.map(\.rawValue).joined(separator: ", ")
            errors.append(FieldError(field: "status", message: "must be one of: " + statuses))
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let (items, total) = try await repository.list(
            owner: owner,
            requestID: query.get("request_id"),
            userID: userID,
            status: status ?? nil,
            page: page,
            limit: limit
        )
        return .envelope(data: items, message: "Notifications retrieved successfully", meta: PageMeta(total: total, limit: limit, page: page))
    }

    /// `POST /api/v1/{email|push}/status/`: a delivery report, from a service credential.
    func report(_ request: Request, context: NotifyRequestContext, channel: String) async throws -> Response {
        let identity = try context.requireIdentity()
        guard identity.isPrivileged else {
            throw APIError.forbidden("Delivery reports need a service credential")
        }
        var fields = FieldValidator(try await request.jsonObject())
        let id = fields.uuid("notification_id")
        let status = fields.oneOf("status", [NotificationStatus.delivered, .pending, .failed].map(\.rawValue)).flatMap(
            NotificationStatus.init(rawValue:)
        )
        let error = fields.string("error", required: false, maxLength: 2000)
        var at: Date?
        if let raw = fields.string("timestamp", required: false, maxLength: 64) {
            at = Self.parseTimestamp(raw)
            if at == nil { fields.fail("timestamp", "must be an RFC 3339 timestamp") }
        }
        try fields.check()
        guard let id, let status else { throw APIError.internalError }
        switch try await repository.report(id: id, channel: channel, status: status, error: error, at: at) {
        case .recorded(let notification):
            return .envelope(data: notification, message: "Delivery report recorded")
        case .alreadyRecorded(let notification):
            return .envelope(data: notification, message: "Delivery report already recorded", headers: [.idempotentReplayed: "true"])
        case .notFound:
            throw APIError.notFound(.notificationNotFound, "No \(channel) notification with this id")
        case .invalid(let current):
            throw APIError(
                .conflict,
                code: .invalidTransition,
                message: "A notification that is \(current.rawValue) cannot become \(status.rawValue): it has not been sent"
            )
        }
    }

    static func validate(_ body: [String: JSONValue], idempotencyKey: String?, webPush: EndpointPolicy) throws -> NewNotification {
        var fields = FieldValidator(body)
        let channel = fields.oneOf("notification_type", ["email", "push", "sms"])
        let hasUser = body["user_id"].map { $0 != .null } ?? false
        let hasRecipient = body["recipient"].map { $0 != .null } ?? false
        var userID: UUID?
        var recipient: DirectRecipient?
        switch (hasUser, hasRecipient) {
        case (true, true):
            fields.fail("recipient", "give either user_id (a user of the platform) or recipient (an address), not both")
        case (false, false):
            fields.fail("user_id", "is required, or recipient: an address to send to instead of a user")
        case (true, false):
            userID = fields.uuid("user_id")
        case (false, true):
            if let channel { recipient = Self.recipient(body["recipient"] ?? .null, channel: channel, webPush: webPush, into: &fields) }
        }
        let templateCode = fields.string("template_code", maxLength: 100)
        if let templateCode, !FieldValidator.isCode(templateCode) {
            fields.fail("template_code", "may hold only letters, digits, '_', '-' and '.'")
        }
        let variables = fields.object("variables") ?? [:]
        var requestID = fields.string("request_id", required: idempotencyKey == nil, maxLength: 255)
        if requestID == nil, let idempotencyKey {
            if idempotencyKey.isEmpty || idempotencyKey.count > 255 {
                fields.fail("Idempotency-Key", "must be 1 to 255 characters")
            } else {
                requestID = idempotencyKey
            }
        }
        let priority = fields.int("priority", range: 0...10) ?? 0
        let metadata = fields.object("metadata")
        let language = fields.languageTag("language")
        var sendAt: Date?
        if let raw = fields.string("send_at", required: false, maxLength: 64) {
            sendAt = Self.parseTimestamp(raw)
            if sendAt == nil { fields.fail("send_at", "must be an RFC 3339 timestamp") }
        }
        var deliverTo: String?
        if let target = fields.object("deliver_to") {
            var inner = FieldValidator(target)
            deliverTo = inner.email("email")
            for key in target.keys where key != "email" { inner.fail(key, "is not a field of deliver_to") }
            for error in inner.errors { fields.fail("deliver_to.\(error.field)", error.message) }
            if channel != "email" { fields.fail("deliver_to", "applies to email notifications only") }
            if hasRecipient { fields.fail("deliver_to", "applies to notifications to a user; recipient already names the address") }
        }
        try fields.check()
        guard let channel, userID != nil || recipient != nil, let templateCode, let requestID else { throw APIError.internalError }
        return NewNotification(
            channel: NotificationChannel(rawValue: channel) ?? .email,
            userID: userID,
            templateCode: templateCode,
            variables: variables,
            requestID: requestID,
            priority: priority,
            metadata: metadata,
            language: language,
            sendAt: sendAt,
            deliverTo: deliverTo,
            recipient: recipient
        )
    }

    /// `recipient` for the channel: an email address; a phone number (E.164, normalized); for push an FCM token, or
    /// `{"platform": "fcm"|"apns", "token": …}`, or `{"platform": "webpush", "endpoint": …, "keys": {"p256dh", "auth"}}`
    /// with an endpoint the Web Push policy allows (never an internal address).
    static func recipient(_ value: JSONValue, channel: String, webPush: EndpointPolicy, into fields: inout FieldValidator) -> DirectRecipient? {
        switch (channel, value) {
        case ("email", .string):
            var inner = FieldValidator(["recipient": value])
            let email = inner.email("recipient")
            for error in inner.errors { fields.fail(error.field, error.message) }
            return email.map { DirectRecipient(email: $0) }
        case ("email", _):
            fields.fail("recipient", "must be an email address for an email notification")
        case ("sms", .string(let text)):
            guard let phone = PhoneNumber.normalize(text) else {
                fields.fail("recipient", PhoneNumber.problem)
                return nil
            }
            return DirectRecipient(phone: phone)
        case ("sms", _):
            fields.fail("recipient", "must be a phone number (E.164) for an SMS notification")
        case ("push", .string(let token)):
            if let problem = DeviceValidation.fcm(token) {
                fields.fail("recipient", problem)
                return nil
            }
            return DirectRecipient(platform: "fcm", token: token)
        case ("push", .object(let object)):
            var inner = FieldValidator(object)
            let platform = inner.oneOf("platform", ["fcm", "apns", "webpush"])
            var target: DirectRecipient?
            switch platform {
            case "fcm", "apns":
                if let token = inner.string("token", maxLength: 4096) {
                    if let problem = platform == "fcm" ? DeviceValidation.fcm(token) : DeviceValidation.apns(token) {
                        inner.fail("token", problem)
                    } else {
                        target = DirectRecipient(platform: platform, token: token)
                    }
                }
                for key in object.keys where !["platform", "token"].contains(key) {
                    inner.fail(key, "is not a field of a \(platform ?? "") recipient")
                }
            case "webpush":
                let endpoint = inner.string("endpoint", maxLength: 2048)
                var keys = FieldValidator(inner.object("keys", required: true) ?? [:])
                let p256dh = keys.string("p256dh", maxLength: 200)
                let auth = keys.string("auth", maxLength: 100)
                for error in keys.errors { inner.fail("keys.\(error.field)", error.message) }
                if let endpoint {
                    let problems = DeviceValidation.webpush(endpoint: endpoint, p256dh: p256dh, auth: auth, policy: webPush)
                    for problem in problems { inner.fail(problem.field, problem.message) }
                    if problems.isEmpty, keys.errors.isEmpty {
                        target = DirectRecipient(platform: "webpush", token: endpoint, p256dh: p256dh, auth: auth)
                    }
                }
                for key in object.keys where !["platform", "endpoint", "keys"].contains(key) {
                    inner.fail(key, "is not a field of a webpush recipient")
                }
            default:
                break
            }
            for error in inner.errors { fields.fail("recipient.\(error.field)", error.message) }
            return inner.errors.isEmpty ? target : nil
        case ("push", _):
            fields.fail("recipient", "must be an FCM token or a push destination object for a push notification")
        default:
            break
        }
        return nil
    }

    static func parseTimestamp(_ raw: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        if let date = formatter.date(from: raw) { return date }
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.date(from: raw)
    }
}

/// The `data` of a 202: what the client needs to follow its notification.
struct Accepted: Encodable, Sendable {
    var notificationID: String
    var requestID: String
    var status: NotificationStatus
    var notificationType: String
    var createdAt: Date
    /// For the log line of the acceptance (not part of the response).
    var jobID: Int?
    /// Held for the user's quiet hours: when it goes.
    var heldUntil: Date?

    init(
        notificationID: String,
        requestID: String,
        status: NotificationStatus,
        notificationType: String,
        createdAt: Date,
        jobID: Int? = nil,
        heldUntil: Date? = nil
    ) {
        self.heldUntil = heldUntil
        self.notificationID = notificationID
        self.requestID = requestID
        self.status = status
        self.notificationType = notificationType
        self.createdAt = createdAt
        self.jobID = jobID
    }

    init(_ resource: NotificationResource) {
        notificationID = resource.notificationID
        requestID = resource.requestID
        status = resource.status
        notificationType = resource.notificationType
        createdAt = resource.createdAt
    }

    enum CodingKeys: String, CodingKey {
        case notificationID = "notification_id"
        case requestID = "request_id"
        case status
        case notificationType = "notification_type"
        case createdAt = "created_at"
        case heldUntil = "held_until"
    }
}

extension Accepted: JSONWritable {
    func write(to json: inout JSONBytes) {
        json.beginObject()
        json.key("notification_id")
        json.string(notificationID)
        json.key("request_id")
        json.string(requestID)
        json.key("status")
        json.string(status.rawValue)
        json.key("notification_type")
        json.string(notificationType)
        json.key("created_at")
        json.date(createdAt)
        if let heldUntil {
            json.key("held_until")
            json.date(heldUntil)
        }
        json.endObject()
    }
}
