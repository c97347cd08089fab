import AsyncHTTPClient
import Breakers
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel
import Telemetry

/// What the platform knows about a recipient: the user service's contact view.
public struct Recipient: Sendable, Decodable {
    public struct Preferences: Sendable, Decodable {
        public var email: Bool
        public var push: Bool
        /// Absent in a contact cached before SMS existed: on, as for a new user.
        public var sms: Bool?
        public var categories: [String: [String: Bool]]

        public init(email: Bool, push: Bool, sms: Bool?, categories: [String: [String: Bool]]) {
            self.email = email
            self.push = push
            self.sms = sms
            self.categories = categories
        }

        /// Whether the user accepts this channel, for a template of this category.
        public func allows(channel: String, category: String?) -> Bool {
            let channelOn =
                switch channel {
                case "email": email
                case "push": push
                case "sms": sms ?? true
                default: false
                }
            if let category, let override = categories[category]?[channel] { return channelOn && override }
            return channelOn
        }
    }

    /// An active push destination.
    public struct Device: Sendable, Decodable {
        public var deviceID: String
        /// fcm, apns or webpush.
        public var platform: String
        /// The registration token (fcm, apns) or the subscription endpoint (webpush).
        public var token: String
        /// Web Push subscription keys (base64url).
        public var p256dh: String?
        public var auth: String?

        public init(deviceID: String, platform: String, token: String, p256dh: String? = nil, auth: String? = nil) {
            self.deviceID = deviceID
            self.platform = platform
            self.token = token
            self.p256dh = p256dh
            self.auth = auth
        }

        enum CodingKeys: String, CodingKey {
            case deviceID = "device_id"
            case platform, token, p256dh, auth
        }
    }

    public var userID: UUID
    public var name: String
    public var email: String
    /// E.164; nil when the user has given none.
    public var phone: String?
    public var phoneVerified: Bool?
    public var preferences: Preferences
    public var devices: [Device]
    /// Not a user: an address the client sent to directly (`recipient`). Every preference allows it, there is no
    /// unsubscribe link (the client owns consent), and a push token the provider rejects has no device to deactivate.
    public var isDirect = false
    /// IANA name; absent in contacts cached before quiet hours existed.
    public var timeZone: String?
    /// Per channel, the local window in which non-urgent notifications wait.
    public var quietHours: [String: QuietWindow]?
    /// Disabled by an operator (absent in contacts cached before this existed: enabled).
    public var disabled: Bool?

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case name, email, phone, preferences, devices, disabled
        case phoneVerified = "phone_verified"
        case timeZone = "time_zone"
        case quietHours = "quiet_hours"
    }

    /// The recipient of a notification sent to an address.
    public static func direct(_ target: DirectRecipient) -> Recipient {
        var devices: [Device] = []
        if let platform = target.platform, let token = target.token {
            devices.append(Device(deviceID: "recipient", platform: platform, token: token, p256dh: target.p256dh, auth: target.auth))
        }
        return Recipient(
            userID: UUID(text: "00000000-0000-0000-0000-000000000000")!,
            name: "",
            email: target.email ?? "",
            phone: target.phone,
            phoneVerified: nil,
            preferences: Preferences(email: true, push: true, sms: true, categories: [:]),
            devices: devices,
            isDirect: true
        )
    }

    init(
        userID: UUID,
        name: String,
        email: String,
        phone: String?,
        phoneVerified: Bool?,
        preferences: Preferences,
        devices: [Device],
        isDirect: Bool
    ) {
        self.userID = userID
        self.name = name
        self.email = email
        self.phone = phone
        self.phoneVerified = phoneVerified
        self.preferences = preferences
        self.devices = devices
        self.isDirect = isDirect
    }
}

/// A template version as the template service returns it.
public struct TemplateContent: Sendable, Decodable {
    public var code: String
    public var channel: String
    public var category: String?
    public var version: Int
    /// The template's version number when it was read: what a new notification pins.
    public var activeVersion: Int
    public var language: String
    public var subject: String?
    public var body: String
    public var htmlBody: String?
    public var title: String?
    public var imageURL: String?
    public var link: String?
    public var data: [String: String]?
    /// Archived templates take no new notifications; the worker does not send those accepted before.
    public var archived: Bool?
    /// Email only: the template's own sender and reply address.
    public var fromEmail: String?
    public var fromName: String?
    public var replyTo: String?

    /// Every text part, for the required-variables check.
    public var parts: [String] { [subject, body, htmlBody, title, imageURL, link].compactMap { $0 } + (data.map { Array($0.values) } ?? []) }

    enum CodingKeys: String, CodingKey {
        case code, channel, category, version, language, subject, body, data, archived
        case activeVersion = "active_version"
        case htmlBody = "html_body"
        case title
        case imageURL = "image_url"
        case link
        case fromEmail = "from_email"
        case fromName = "from_name"
        case replyTo = "reply_to"
    }
}

/// Answers of the user and template services kept for a few seconds, bounded in size (cleared when full).
final class RecentAnswers: Sendable {
    struct Entry<Value: Sendable>: Sendable {
        var value: Value
        var expires: ContinuousClock.Instant
    }
    let lifetime: Duration
    let recipients = NIOLockedValueBox<[String: Entry<Recipient>]>([:])
    let templates = NIOLockedValueBox<[String: Entry<TemplateContent>]>([:])
    static let capacity = 100_000

    init(seconds: Double) { lifetime = .milliseconds(Int64(seconds * 1000)) }

    func recipient(_ key: String) -> Recipient? { Self.read(recipients, key, cache: "directory_user") }
    func template(_ key: String) -> TemplateContent? { Self.read(templates, key, cache: "directory_template") }
    func keep(_ recipient: Recipient, _ key: String) { Self.write(recipients, key, recipient, lifetime) }
    func keep(_ template: TemplateContent, _ key: String) { Self.write(templates, key, template, lifetime) }

    static func read<Value>(_ box: NIOLockedValueBox<[String: Entry<Value>]>, _ key: String, cache: String) -> Value? {
        let now = ContinuousClock.now
        let value = box.withLockedValue { entries -> Value? in
            guard let entry = entries[key] else { return nil }
            if entry.expires > now { return entry.value }
            entries[key] = nil
            return nil
        }
        Telemetry.cache(cache, hit: value != nil)
        return value
    }

    static func write<Value>(_ box: NIOLockedValueBox<[String: Entry<Value>]>, _ key: String, _ value: Value, _ lifetime: Duration) {
        let entry = Entry(value: value, expires: .now + lifetime)
        box.withLockedValue { entries in
            if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            entries[key] = entry
        }
    }
}

/// The last answer of the user and template services for each user and template, kept for `bound`: while a service
/// cannot answer, the gateway checks a notification against it (and says so on the notification). Bounded in size:
/// when full, entries older than the bound go, then everything.
public final class LastKnown: Sendable {
    struct Entry<Value: Sendable>: Sendable {
        var value: Value
        var at: ContinuousClock.Instant
    }

    public let bound: Duration
    let capacity: Int
    let recipients = NIOLockedValueBox<[UUID: Entry<Recipient>]>([:])
    let templates = NIOLockedValueBox<[String: Entry<TemplateContent>]>([:])

    public init(bound: Duration, capacity: Int = 100_000) {
        self.bound = bound
        self.capacity = max(1, capacity)
    }

    func keep(_ recipient: Recipient) { Self.write(recipients, recipient.userID, recipient, capacity: capacity, bound: bound) }
    func keep(_ template: TemplateContent, _ key: String) { Self.write(templates, key, template, capacity: capacity, bound: bound) }
    func recipient(_ id: UUID) -> (Recipient, Duration)? { Self.read(recipients, id, bound: bound) }
    /// The service answered that there is no such user: nothing is kept for it.
    func forget(_ id: UUID) { recipients.withLockedValue { $0[id] = nil } }
    func template(_ key: String) -> (TemplateContent, Duration)? { Self.read(templates, key, bound: bound) }

    static func read<Key: Hashable, Value>(_ box: NIOLockedValueBox<[Key: Entry<Value>]>, _ key: Key, bound: Duration) -> (Value, Duration)? {
        let now = ContinuousClock.now
        guard let entry = box.withLockedValue({ $0[key] }), now - entry.at <= bound else { return nil }
        return (entry.value, now - entry.at)
    }

    static func write<Key: Hashable, Value>(
        _ box: NIOLockedValueBox<[Key: Entry<Value>]>,
        _ key: Key,
        _ value: Value,
        capacity: Int,
        bound: Duration
    ) {
        let now = ContinuousClock.now
        box.withLockedValue { entries in
            if entries.count >= capacity, entries[key] == nil {
                entries = entries.filter { now - $0.value.at <= bound }
                if entries.count >= capacity { entries.removeAll(keepingCapacity: true) }
            }
            entries[key] = Entry(value: value, at: now)
        }
    }
}

/// A lookup's answer and, when it came from the last known answers because the service could not answer, their age.
public struct Checked<Value: Sendable>: Sendable {
    public var value: Value
    public var staleFor: Duration?

    public init(value: Value, staleFor: Duration? = nil) {
        self.value = value
        self.staleFor = staleFor
    }
}

/// The user or template service could not answer (down, slow, or an unexpected reply).
public struct DirectoryUnavailable: Error, CustomStringConvertible, Sendable {
    public var service: String
    /// What failed: the status the service answered, or the HTTP client's error. For the log, never for a client.
    public var reason: String = ""
    public var description: String { reason.isEmpty ? "\(service) service unavailable" : "\(service) service unavailable: \(reason)" }
}

/// Lookups of single users that the cache could not answer, gathered while a call to the user service is out: the next
/// call asks for every user gathered meanwhile, in one `POST /api/v1/users/contacts` (a lone user still goes by its
/// own `GET`). One call at a time, as the gateway's group commit: a burst of creates for users not yet cached (a new
/// client's first second) cost a call each, and those calls, not the creates, were what queued. A call must end by
/// the deadline of the first lookup it carries (made `timeout` after that lookup began), so no lookup waits longer
/// than it would alone, and a service that hangs fails every call within that time (its breaker learns as fast).
final class RecipientLookups: Sendable {
    typealias Waiter = CheckedContinuation<Recipient?, any Error>
    typealias Fetch = @Sendable (_ ids: [UUID], _ correlationID: String, _ deadline: NIODeadline) async throws -> [UUID: Recipient]
    struct Pending {
        var waiters: [UUID: [Waiter]] = [:]
        /// The correlation id of the first lookup waiting, the one a gathered call carries, and its deadline.
        var correlationID = ""
        var deadline = NIODeadline.distantFuture
        var running = false
    }
    let pending = NIOLockedValueBox(Pending())
    /// Calls made so far and the most users one carried.
    let made = NIOLockedValueBox((calls: 0, largest: 0))

    /// `userID`'s contact (nil: no such user), by the next call, which must end by `deadline`; `fetch` asks the
    /// service for the users gathered.
    func recipient(
        _ userID: UUID,
        correlationID: String,
        deadline: NIODeadline,
        fetch: @escaping Fetch
    ) async throws -> Recipient? {
        try await withCheckedThrowingContinuation { (waiter: Waiter) in
            let lead = pending.withLockedValue { state -> Bool in
                if state.waiters.isEmpty {
                    state.correlationID = correlationID
                    state.deadline = deadline
                } else {
                    state.deadline = min(state.deadline, deadline)
                }
                state.waiters[userID, default: []].append(waiter)
                defer { state.running = true }
                return !state.running
            }
            guard lead else { return }
            Task {
                while let (waiters, correlationID, deadline) = next() {
                    made.withLockedValue { made in
                        made.calls += 1
                        made.largest = max(made.largest, waiters.count)
                    }
                    do {
                        let found = try await fetch(Array(waiters.keys), correlationID, deadline)
                        for (id, list) in waiters { for waiter in list { waiter.resume(returning: found[id]) } }
                    } catch {
                        for list in waiters.values { for waiter in list { waiter.resume(throwing: error) } }
                    }
                }
            }
        }
    }

    /// The users gathered since the last call, or nil (and no call running) when none are.
    func next() -> ([UUID: [Waiter]], String, NIODeadline)? {
        pending.withLockedValue { state in
            guard !state.waiters.isEmpty else {
                state.running = false
                return nil
            }
            defer { state.waiters = [:] }
            return (state.waiters, state.correlationID, state.deadline)
        }
    }
}

/// Reads users and templates from their services with the service key, carrying the correlation id. Each service
/// sits behind its own breaker; a missing user or template is an answer (nil), not a failure of the service.
public struct PlatformDirectory: Sendable {
    let http: HTTPClient
    let usersURL: String
    let templatesURL: String
    let serviceKey: String
    public let usersBreaker: CircuitBreaker
    public let templatesBreaker: CircuitBreaker
    /// How long one lookup may take (the HTTP client keeps retrying a refused connection until then).
    let timeout: TimeAmount
    /// Recent answers kept in the process for `cacheSeconds` (0: none): a user's or template's change takes that long
    /// to reach this process. Only found things are kept, so a user or template created a moment ago is seen at once.
    let recent: RecentAnswers?
    /// Pinned template versions, kept for `pinnedTemplateSeconds` (0: with the other answers): a version's content never
    /// changes, but whether its template is archived does, so it is asked again now and then (the workers keep them 30 s).
    let pinned: RecentAnswers?
    /// The last answers, for the `checked…` lookups while a service is away (the gateway's; nil: none kept).
    public let lastKnown: LastKnown?
    /// Users' token versions, kept briefly (see `tokenVersion`).
    let tokenVersions = NIOLockedValueBox([UUID: (version: Int, until: ContinuousClock.Instant)]())
    let tokenVersionLifetime: Duration
    let lookups = RecipientLookups()

    public init(
        http: HTTPClient,
        usersURL: String,
        templatesURL: String,
        serviceKey: String,
        usersBreaker: CircuitBreaker,
        templatesBreaker: CircuitBreaker,
        timeout: TimeAmount = .seconds(5),
        cacheSeconds: Double = 0,
        pinnedTemplateSeconds: Double = 0,
        lastKnown: LastKnown? = nil,
        tokenVersionSeconds: Int = 5
    ) {
        self.tokenVersionLifetime = .seconds(tokenVersionSeconds)
        self.pinned = pinnedTemplateSeconds > 0 ? RecentAnswers(seconds: pinnedTemplateSeconds) : nil
        self.timeout = timeout
        self.lastKnown = lastKnown
        self.recent = cacheSeconds > 0 ? RecentAnswers(seconds: cacheSeconds) : nil
        self.http = http
        self.usersURL = usersURL
        self.templatesURL = templatesURL
        self.serviceKey = serviceKey
        self.usersBreaker = usersBreaker
        self.templatesBreaker = templatesBreaker
    }

    /// The user's contact data, or nil when there is no such user. Throws `DirectoryUnavailable` or `BreakerOpenError`.
    public func recipient(_ userID: UUID, correlationID: String) async throws -> Recipient? {
        let key = userID.lowercased
        if let recent, let cached = recent.recipient(key) { return cached }
        return try await lookups.recipient(userID, correlationID: correlationID, deadline: .now() + timeout) { [self] ids, correlationID, deadline in
            if ids.count == 1 {
                return try await fetchRecipient(ids[0], correlationID: correlationID, deadline: deadline).map { [ids[0]: $0] } ?? [:]
            }
            let found = try await fetchRecipients(ids, correlationID: correlationID, deadline: deadline)
            if let lastKnown { for id in ids where found[id] == nil { lastKnown.forget(id) } }
            return found
        }
    }

    /// One user from the service (kept in the caches when found).
    func fetchRecipient(_ userID: UUID, correlationID: String, deadline: NIODeadline? = nil) async throws -> Recipient? {
        let recipient = try await fetch(
            Recipient.self,
            "\(usersURL)/api/v1/users/\(userID.lowercased)/contact",
            service: "user",
            breaker: usersBreaker,
            correlationID: correlationID,
            deadline: deadline
        )
        if let recent, let recipient { recent.keep(recipient, userID.lowercased) }
        if let lastKnown {
            if let recipient { lastKnown.keep(recipient) } else { lastKnown.forget(userID) }
        }
        return recipient
    }

    /// `recipient`, or while the user service cannot answer, its last answer for this user if not older than the bound.
    public func checkedRecipient(_ userID: UUID, correlationID: String) async throws -> Checked<Recipient?> {
        do {
            return Checked(value: try await recipient(userID, correlationID: correlationID))
        } catch  where Self.isOutage(error) {
            guard let (known, age) = lastKnown?.recipient(userID) else { throw error }
            return Checked(value: known, staleFor: age)
        }
    }

    /// `recipients`, or while the user service cannot answer, the last answers (ids without one are in `unknown`).
    public func checkedRecipients(_ userIDs: [UUID], correlationID: String) async throws -> (found: [UUID: Checked<Recipient>], unknown: Set<UUID>) {
        do {
            return (try await recipients(userIDs, correlationID: correlationID).mapValues { Checked(value: $0) }, [])
        } catch  where Self.isOutage(error) && lastKnown != nil {
            var found: [UUID: Checked<Recipient>] = [:]
            var unknown: Set<UUID> = []
            for id in userIDs {
                if let (known, age) = lastKnown?.recipient(id) { found[id] = Checked(value: known, staleFor: age) } else { unknown.insert(id) }
            }
            return (found, unknown)
        }
    }

    /// `template` (the active version), or while the template service cannot answer, its last answer if not older than
    /// the bound.
    public func checkedTemplate(_ code: String, channel: String, language: String?, correlationID: String) async throws -> Checked<TemplateContent?> {
        do {
            return Checked(value: try await template(code, channel: channel, language: language, correlationID: correlationID))
        } catch  where Self.isOutage(error) {
            guard let (known, age) = lastKnown?.template(Self.templateKey(code, channel, language)) else { throw error }
            return Checked(value: known, staleFor: age)
        }
    }

    /// The service could not answer (down, slow, its breaker open), as opposed to a cancelled caller.
    static func isOutage(_ error: any Error) -> Bool { error is DirectoryUnavailable || error is BreakerOpenError }

    static func templateKey(_ code: String, _ channel: String, _ language: String?) -> String { "\(code)|\(channel)|\(language ?? "")" }

    /// Many users' contact data in one call to the user service (those the cache holds are not asked for); ids that
    /// name no user are absent. Throws `DirectoryUnavailable` or `BreakerOpenError`.
    public func recipients(_ userIDs: [UUID], correlationID: String) async throws -> [UUID: Recipient] {
        var found: [UUID: Recipient] = [:]
        var wanted: [UUID] = []
        for id in Set(userIDs) {
            if let recent, let cached = recent.recipient(id.lowercased) { found[id] = cached } else { wanted.append(id) }
        }
        for (id, recipient) in try await fetchRecipients(wanted, correlationID: correlationID) { found[id] = recipient }
        return found
    }

    /// Users from the service, up to 1,000 a call (kept in the caches); ids that name no user are absent.
    func fetchRecipients(_ wanted: [UUID], correlationID: String, deadline: NIODeadline? = nil) async throws -> [UUID: Recipient] {
        var found: [UUID: Recipient] = [:]
        // The user service takes up to 1,000 ids a call.
        for start in stride(from: 0, to: wanted.count, by: 1000) {
            let chunk = wanted[start..<min(start + 1000, wanted.count)]
            struct Contacts: Decodable, Sendable { var contacts: [Recipient] }
            let body = try JSONSerialization.data(withJSONObject: ["user_ids": chunk.map { $0.lowercased }])
            let answer = try await fetch(
                Contacts.self,
                "\(usersURL)/api/v1/users/contacts",
                body: body,
                service: "user",
                breaker: usersBreaker,
                correlationID: correlationID,
                deadline: deadline
            )
            guard let answer else {
                // A user service from before this call (a rolling upgrade) answers 404: ask for each user alone.
                for id in chunk { found[id] = try await fetchRecipient(id, correlationID: correlationID, deadline: deadline) }
                continue
            }
            for recipient in answer.contacts {
                found[recipient.userID] = recipient
                if let recent { recent.keep(recipient, recipient.userID.lowercased) }
                if let lastKnown { lastKnown.keep(recipient) }
            }
        }
        return found
    }

    /// The active version of a template (in `language` if it has one), or nil when there is no such template.
    public func template(
        _ code: String,
        channel: String,
        language: String?,
        version: Int? = nil,
        correlationID: String
    ) async throws
        -> TemplateContent?
    {
        // Kept only for the cache's lifetime: the active version changes, and so does whether a pinned version's
        // template is archived.
        let recentKey = Self.templateKey(code, channel, language) + (version.map { "|\($0)" } ?? "")
        let cache = version != nil ? pinned ?? recent : recent
        if let cache, let cached = cache.template(recentKey) { return cached }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        var url = "\(templatesURL)/api/v1/templates/\(code.addingPercentEncoding(withAllowedCharacters: allowed) ?? code)"
        var query: [String] = ["channel=\(channel)"]
        if let language, let encoded = language.addingPercentEncoding(withAllowedCharacters: allowed) { query.append("language=\(encoded)") }
        if let version { query.append("version=\(version)") }
        if !query.isEmpty { url += "?" + query.joined(separator: "&") }
        let template = try await fetch(TemplateContent.self, url, service: "template", breaker: templatesBreaker, correlationID: correlationID)
        if let cache, let template { cache.keep(template, recentKey) }
        if let lastKnown, version == nil, let template { lastKnown.keep(template, recentKey) }
        return template
    }

    /// Marks a device inactive in the user service (its token or subscription is dead). True when the user service
    /// recorded it (or the device is already gone).
    struct TokenVersion: Decodable, Sendable {
        var tokenVersion: Int
        enum CodingKeys: String, CodingKey { case tokenVersion = "token_version" }
    }

    /// A user's current token version, from the user service, remembered for `tokenVersionSeconds`: a revoked
    /// token stops working at the gateway within that time. Nil: no such user. Throws when the user service cannot
    /// say.
    public func tokenVersion(_ userID: UUID, correlationID: String) async throws -> Int? {
        let now = ContinuousClock.now
        if let known = tokenVersions.withLockedValue({ $0[userID] }), known.until > now { return known.version }
        let answer = try await fetch(
            TokenVersion.self,
            "\(usersURL)/api/v1/users/\(userID.lowercased)/token-version/",
            service: "users",
            breaker: usersBreaker,
            correlationID: correlationID
        )
        guard let version = answer?.tokenVersion else { return nil }
        tokenVersions.withLockedValue { versions in
            if versions.count > 100_000 { versions.removeAll() }
            versions[userID] = (version, now + tokenVersionLifetime)
        }
        return version
    }

    public func deactivateDevice(userID: UUID, deviceID: String, reason: String, correlationID: String) async -> Bool {
        var request = HTTPClientRequest(url: "\(usersURL)/api/v1/users/\(userID.lowercased)/devices/\(deviceID)/deactivate")
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(serviceKey)")
        request.headers.add(name: "X-Correlation-ID", value: correlationID)
        request.headers.add(name: "Content-Type", value: "application/json")
        let body = (try? JSONSerialization.data(withJSONObject: ["reason": String(reason.prefix(500))])) ?? Data("{}".utf8)
        request.body = .bytes(ByteBuffer(data: body))
        guard let response = try? await http.execute(request, timeout: timeout) else { return false }
        _ = try? await response.body.collect(upTo: 1 << 20)
        return response.status == .ok || response.status == .notFound
    }

    struct Wrapped<T: Decodable>: Decodable {
        var data: T
    }

    func fetch<T: Decodable & Sendable>(
        _ type: T.Type,
        _ url: String,
        body: Data? = nil,
        service: String,
        breaker: CircuitBreaker,
        correlationID: String,
        deadline: NIODeadline? = nil
    )
        async throws -> T?
    {
        try await breaker.run {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Authorization", value: "Bearer \(serviceKey)")
            request.headers.add(name: "X-Correlation-ID", value: correlationID)
            if let body {
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.body = .bytes(ByteBuffer(data: body))
            }
            do {
                let response = try await http.execute(request, deadline: deadline ?? .now() + timeout)
                let body = try await response.body.collect(upTo: 4 << 20)
                switch response.status.code {
                case 200: return try JSONDecoder().decode(Wrapped<T>.self, from: Data(buffer: body)).data
                // 400: the service refused the code or language as malformed, so there is no such thing.
                case 400, 404: return nil
                default: throw DirectoryUnavailable(service: service, reason: "HTTP \(response.status.code)")
                }
            } catch let error as DirectoryUnavailable {
                throw error
            } catch {
                // A cancelled lookup (its sibling failed, its caller gave up) is not the service's failure.
                if Task.isCancelled { throw CancellationError() }
                throw DirectoryUnavailable(service: service, reason: String(describing: error))
            }
        }
    }
}
