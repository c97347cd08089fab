import AsyncHTTPClient
import Breakers
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import Telemetry

/// What the platform knows about a recipient: the user service's contact view.
public struct Recipient: Sendable, Decodable {
    public struct Preferences: Sendable, Decodable {
        public var email: Bool
        public var push: Bool
        public var categories: [String: [String: Bool]]

        /// Whether the user accepts this channel, for a template of this category.
        public func allows(channel: String, category: String?) -> Bool {
            let channelOn = channel == "email" ? email : push
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
    public var preferences: Preferences
    public var devices: [Device]

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case name, email, preferences, devices
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

    /// Every text part, for the required-variables check.
    public var parts: [String] { [subject, body, htmlBody, title, imageURL, link].compactMap { $0 } + (data.map { Array($0.values) } ?? []) }

    enum CodingKeys: String, CodingKey {
        case code, channel, category, version, language, subject, body, data
        case activeVersion = "active_version"
        case htmlBody = "html_body"
        case title
        case imageURL = "image_url"
        case link
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

/// The user or template service could not answer (down, slow, or an unexpected reply).
public struct DirectoryUnavailable: Error, CustomStringConvertible, Sendable {
    public var service: String
    public var description: String { "\(service) service unavailable" }
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
    /// Template versions are immutable (every edit is a new version), so a lookup pinned to a version can be kept;
    /// the workers, which always render the pinned version, turn this on.
    let pinnedTemplates: NIOLockedValueBox<[String: TemplateContent]>?
    /// Recent answers kept in the process for `cacheSeconds` (0: none): a user's or template's change takes that long
    /// to reach this process. Only found things are kept, so a user or template created a moment ago is seen at once.
    let recent: RecentAnswers?

    public init(
        http: HTTPClient,
        usersURL: String,
        templatesURL: String,
        serviceKey: String,
        usersBreaker: CircuitBreaker,
        templatesBreaker: CircuitBreaker,
        timeout: TimeAmount = .seconds(5),
        cachePinnedTemplates: Bool = false,
        cacheSeconds: Double = 0
    ) {
        self.timeout = timeout
        self.recent = cacheSeconds > 0 ? RecentAnswers(seconds: cacheSeconds) : nil
        self.pinnedTemplates = cachePinnedTemplates ? NIOLockedValueBox([:]) : nil
        self.http = http
        self.usersURL = usersURL
        self.templatesURL = templatesURL
        self.serviceKey = serviceKey
        self.usersBreaker = usersBreaker
        self.templatesBreaker = templatesBreaker
    }

    /// The user's contact data, or nil when there is no such user. Throws `DirectoryUnavailable` or `BreakerOpenError`.
    public func recipient(_ userID: UUID, correlationID: String) async throws -> Recipient? {
        let key = userID.uuidString
        if let recent, let cached = recent.recipient(key) { return cached }
        let recipient = try await fetch(
            Recipient.self,
            "\(usersURL)/api/v1/users/\(userID.uuidString.lowercased())/contact",
            service: "user",
            breaker: usersBreaker,
            correlationID: correlationID
        )
        if let recent, let recipient { recent.keep(recipient, key) }
        return recipient
    }

    /// Many users' contact data in one call to the user service (those the cache holds are not asked for); ids that
    /// name no user are absent. Throws `DirectoryUnavailable` or `BreakerOpenError`.
    public func recipients(_ userIDs: [UUID], correlationID: String) async throws -> [UUID: Recipient] {
        var found: [UUID: Recipient] = [:]
        var wanted: [UUID] = []
        for id in Set(userIDs) {
            if let recent, let cached = recent.recipient(id.uuidString) { found[id] = cached } else { wanted.append(id) }
        }
        // The user service takes up to 1,000 ids a call.
        for start in stride(from: 0, to: wanted.count, by: 1000) {
            let chunk = wanted[start..<min(start + 1000, wanted.count)]
            struct Contacts: Decodable, Sendable { var contacts: [Recipient] }
            let body = try JSONSerialization.data(withJSONObject: ["user_ids": chunk.map { $0.uuidString.lowercased() }])
            let answer = try await fetch(
                Contacts.self,
                "\(usersURL)/api/v1/users/contacts",
                body: body,
                service: "user",
                breaker: usersBreaker,
                correlationID: correlationID
            )
            guard let answer else {
                // A user service from before this call (a rolling upgrade) answers 404: ask for each user alone.
                for id in chunk { found[id] = try await recipient(id, correlationID: correlationID) }
                continue
            }
            for recipient in answer.contacts {
                found[recipient.userID] = recipient
                if let recent { recent.keep(recipient, recipient.userID.uuidString) }
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
        let pinnedKey = version.map { "\(code)|\(channel)|\(language ?? "")|\($0)" }
        if let pinnedKey, let cached = pinnedTemplates?.withLockedValue({ $0[pinnedKey] }) { return cached }
        // The active version can change: it is kept only for the cache's lifetime. A pinned version never changes.
        let recentKey = version == nil ? "\(code)|\(channel)|\(language ?? "")" : nil
        if let recent, let recentKey, let cached = recent.template(recentKey) { return cached }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        var url = "\(templatesURL)/api/v1/templates/\(code.addingPercentEncoding(withAllowedCharacters: allowed) ?? code)"
        var query: [String] = ["channel=\(channel)"]
        if let language, let encoded = language.addingPercentEncoding(withAllowedCharacters: allowed) { query.append("language=\(encoded)") }
        if let version { query.append("version=\(version)") }
        if !query.isEmpty { url += "?" + query.joined(separator: "&") }
        let template = try await fetch(TemplateContent.self, url, service: "template", breaker: templatesBreaker, correlationID: correlationID)
        if let recent, let recentKey, let template { recent.keep(template, recentKey) }
        if let pinnedKey, let template, let pinnedTemplates {
            pinnedTemplates.withLockedValue { cache in
                if cache.count >= 10_000 { cache.removeAll() }
                cache[pinnedKey] = template
            }
        }
        return template
    }

    /// Marks a device inactive in the user service (its token or subscription is dead). True when the user service
    /// recorded it (or the device is already gone).
    public func deactivateDevice(userID: UUID, deviceID: String, reason: String, correlationID: String) async -> Bool {
        var request = HTTPClientRequest(url: "\(usersURL)/api/v1/users/\(userID.uuidString.lowercased())/devices/\(deviceID)/deactivate")
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
        correlationID: String
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
                let response = try await http.execute(request, timeout: timeout)
                let body = try await response.body.collect(upTo: 4 << 20)
                switch response.status.code {
                case 200: return try JSONDecoder().decode(Wrapped<T>.self, from: Data(buffer: body)).data
                // 400: the service refused the code or language as malformed, so there is no such thing.
                case 400, 404: return nil
                default: throw DirectoryUnavailable(service: service)
                }
            } catch {
                throw DirectoryUnavailable(service: service)
            }
        }
    }
}
