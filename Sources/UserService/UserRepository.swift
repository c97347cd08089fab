import Foundation
import Logging
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO

/// A user as the API shows it: never the password hash.
public struct UserResource: Codable, Sendable, Equatable {
    public struct Preferences: Codable, Sendable, Equatable {
        public var email: Bool
        public var push: Bool
        public var sms: Bool
    }

    public var userID: String
    public var name: String
    public var email: String
    public var pushToken: String?
    public var preferences: Preferences
    public var createdAt: Date
    public var updatedAt: Date
    /// A new address waiting for its verification; `email` stays the address in use until then.
    public var pendingEmail: String? = nil
    /// Where SMS goes (E.164), and whether a service confirmed the user holds it.
    public var phone: String? = nil
    public var phoneVerified: Bool = false
    /// IANA time zone name; quiet hours are read in it (UTC when none).
    public var timeZone: String? = nil
    /// Per channel: the local window in which non-urgent notifications wait for its end.
    public var quietHours: [String: QuietWindow]? = nil
    /// Disabled by an operator: nothing is sent to the user, who cannot log in.
    public var disabled: Bool = false

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case name, email, disabled
        case pushToken = "push_token"
        case preferences
        case createdAt = "created_at"
        case updatedAt = "updated_at"
        case pendingEmail = "pending_email"
        case phone
        case phoneVerified = "phone_verified"
        case timeZone = "time_zone"
        case quietHours = "quiet_hours"
    }

    /// As the seed's user model: `push_token` is always there, null when the user has no active FCM token.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(userID, forKey: .userID)
        try container.encode(name, forKey: .name)
        try container.encode(email, forKey: .email)
        try container.encode(pushToken, forKey: .pushToken)
        try container.encode(preferences, forKey: .preferences)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(updatedAt, forKey: .updatedAt)
        try container.encodeIfPresent(pendingEmail, forKey: .pendingEmail)
        try container.encodeIfPresent(phone, forKey: .phone)
        try container.encode(phoneVerified, forKey: .phoneVerified)
        try container.encode(timeZone, forKey: .timeZone)
        try container.encode(quietHours ?? [:], forKey: .quietHours)
        try container.encode(disabled, forKey: .disabled)
    }
}

/// Channel preferences, and per-category overrides: `categories["marketing"]["email"] = false`.
public struct PreferencesResource: Codable, Sendable, Equatable {
    public var email: Bool
    public var push: Bool
    public var sms: Bool
    public var categories: [String: [String: Bool]]
}

public struct DeviceResource: Codable, Sendable, Equatable {
    public var deviceID: String
    public var platform: String
    public var token: String
    public var p256dh: String?
    public var auth: String?
    public var active: Bool
    public var deactivationReason: String?
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case deviceID = "device_id"
        case platform, token, p256dh, auth, active
        case deactivationReason = "deactivation_reason"
        case createdAt = "created_at"
    }
}

/// What the gateway and the workers need to reach a user.
public struct ContactResource: Codable, Sendable, Equatable {
    public var userID: String
    public var name: String
    public var email: String
    public var pushToken: String?
    public var phone: String?
    public var phoneVerified: Bool
    public var preferences: PreferencesResource
    public var devices: [DeviceResource]
    public var timeZone: String? = nil
    public var quietHours: [String: QuietWindow]? = nil
    public var disabled: Bool = false

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case name, email, disabled
        case pushToken = "push_token"
        case phone
        case phoneVerified = "phone_verified"
        case preferences, devices
        case timeZone = "time_zone"
        case quietHours = "quiet_hours"
    }
}

/// The answer of `POST /api/v1/users/contacts`.
public struct ContactsResource: Codable, Sendable, Equatable {
    public var contacts: [ContactResource]
    public var missing: [String]
}

public struct UserChanges: Sendable {
    public var name: String?
    public var email: String?
    public var passwordHash: String?
    public var pushToken: String??
    /// `.some(nil)` removes the number.
    public var phone: String??
    public var phoneVerified: Bool?
    /// `.some(nil)` removes the time zone (UTC then).
    public var timeZone: String??
    /// Replaces every channel's window; `[:]` removes them all.
    public var quietHours: [String: QuietWindow]?
    /// An operator disables (true) or enables (false) the user.
    public var disabled: Bool?
}

public enum UserRepositoryError: Error {
    case emailTaken
}

/// All SQL of the users database.
public struct UserRepository: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// `push_token` is the seed's single token: the most recently registered (or reactivated) active FCM device, so
    /// a token the provider rejected is never shown as the user's.
    static let columnList = """
        id, name, email, \(latestFCMToken), email_enabled, push_enabled, created_at, updated_at, pending_email, phone, phone_verified, \
        sms_enabled, time_zone, quiet_hours::text, disabled_at IS NOT NULL
        """
    static let latestFCMToken = """
        (SELECT d.token FROM devices d WHERE d.user_id = users.id AND d.platform = 'fcm' AND d.active \
        ORDER BY d.updated_at DESC, d.created_at DESC, d.id LIMIT 1) AS push_token
        """
    typealias Row = (UUID, String, String, String?, Bool, Bool, Date, Date, String?, String?, Bool, Bool, String?, String, Bool)

    static func quietHours(_ text: String) -> [String: QuietWindow] {
        (try? JSONDecoder().decode([String: QuietWindow].self, from: Data(text.utf8))) ?? [:]
    }

    static func json(_ quietHours: [String: QuietWindow]?) -> String? {
        quietHours.flatMap { try? JSONEncoder.canonical.encode($0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    static func resource(_ row: Row) -> UserResource {
        UserResource(
            userID: row.0.lowercased,
            name: row.1,
            email: row.2,
            pushToken: row.3,
            preferences: .init(email: row.4, push: row.5, sms: row.11),
            createdAt: row.6,
            updatedAt: row.7,
            pendingEmail: row.8,
            phone: row.9,
            phoneVerified: row.10,
            timeZone: row.12,
            quietHours: quietHours(row.13),
            disabled: row.14
        )
    }

    func uniqueEmail<T>(_ body: () async throws -> T) async throws -> T {
        do {
            return try await body()
        } catch  where error.isUniqueViolation {
            throw UserRepositoryError.emailTaken
        }
    }

    public func create(
        name: String,
        email: String,
        passwordHash: String,
        pushToken: String?,
        emailEnabled: Bool,
        pushEnabled: Bool,
        phone: String? = nil,
        phoneVerified: Bool = false,
        smsEnabled: Bool = true,
        timeZone: String? = nil,
        quietHours: [String: QuietWindow] = [:]
    ) async throws
        -> UserResource
    {
        try await uniqueEmail {
            try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO users (
                        name, email, password_hash, push_token, email_enabled, push_enabled, phone, phone_verified, sms_enabled, time_zone, quiet_hours
                    )
                    VALUES (
                        \(name), \(email), \(passwordHash), \(pushToken), \(emailEnabled), \(pushEnabled), \(phone), \(phone != nil && phoneVerified),
                        \(smsEnabled), \(timeZone), \(Self.json(quietHours) ?? "{}")::jsonb
                    )
                    RETURNING \(unescaped: Self.columnList)
                    """,
                    logger: logger
                )
                var user: UserResource?
                for try await row in rows.decode(Row.self) { user = Self.resource(row) }
                guard var user else { throw UserRepositoryError.emailTaken }
                if let pushToken, !pushToken.isEmpty {
                    _ = try await connection.query(
                        "INSERT INTO devices (user_id, platform, token) VALUES (\(UUID(text: user.userID)!), 'fcm', \(pushToken))",
                        logger: logger
                    )
                    user.pushToken = pushToken
                }
                return user
            }
        }
    }

    public func find(id: UUID) async throws -> UserResource? {
        let rows = try await client.query(
            "SELECT \(unescaped: Self.columnList) FROM users WHERE id = \(id)",
            logger: logger
        )
        for try await row in rows.decode(Row.self) { return Self.resource(row) }
        return nil
    }

    /// The id and password hash for a login.
    public func credentials(email: String) async throws -> (UUID, String, Int)? {
        let rows = try await client.query(
            "SELECT id, password_hash, token_version FROM users WHERE lower(email) = lower(\(email)) AND disabled_at IS NULL",
            logger: logger
        )
        for try await row in rows.decode((UUID, String, Int).self) { return row }
        return nil
    }

    /// The password hash and token version of a user, for re-authentication and token checks.
    public func secrets(id: UUID) async throws -> (passwordHash: String, tokenVersion: Int)? {
        let rows = try await client.query("SELECT password_hash, token_version FROM users WHERE id = \(id)", logger: logger)
        for try await row in rows.decode((String, Int).self) { return row }
        return nil
    }

    /// The user's current token version (nil: no such user).
    public func tokenVersion(id: UUID) async throws -> Int? {
        for try await version in try await client.query("SELECT token_version FROM users WHERE id = \(id)", logger: logger).decode(Int.self) {
            return version
        }
        return nil
    }

    /// Revokes every token issued to the user so far (logout).
    public func revokeTokens(id: UUID) async throws -> Int? {
        try await client.withTransaction(logger: logger) { connection in
            for try await version in try await connection.query(
                "UPDATE users SET token_version = token_version + 1, updated_at = now() WHERE id = \(id) RETURNING token_version",
                logger: logger
            ).decode(Int.self) { return version }
            return nil
        }
    }

    /// `search`: a part of the name or the email, case-insensitive (LIKE's wildcards in it are taken literally).
    public func list(page: Int, limit: Int, search: String? = nil) async throws -> ([UserResource], Int) {
        let offset = (page - 1) * limit
        let pattern = search.map {
            "%"
                + $0.lowercased().replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "%", with: "\\%")
                .replacingOccurrences(of: "_", with: "\\_") + "%"
        }
        var users: [UserResource] = []
        let rows = try await client.query(
            """
            SELECT \(unescaped: Self.columnList)
            FROM users WHERE \(pattern)::text IS NULL OR lower(email) LIKE \(pattern) OR lower(name) LIKE \(pattern)
            ORDER BY created_at, id LIMIT \(limit) OFFSET \(offset)
            """,
            logger: logger
        )
        for try await row in rows.decode(Row.self) { users.append(Self.resource(row)) }
        var total = 0
        for try await count in try await client.query(
            "SELECT count(*)::int FROM users WHERE \(pattern)::text IS NULL OR lower(email) LIKE \(pattern) OR lower(name) LIKE \(pattern)",
            logger: logger
        ).decode(Int.self) { total = count }
        return (users, total)
    }

    public func update(id: UUID, _ changes: UserChanges) async throws -> UserResource? {
        try await uniqueEmail {
            try await client.withTransaction(logger: logger) { connection in
                let setToken = changes.pushToken != nil
                let token = changes.pushToken ?? nil
                let setPhone = changes.phone != nil
                let phone = changes.phone ?? nil
                let setTimeZone = changes.timeZone != nil
                let timeZone = changes.timeZone ?? nil
                let quietHours = Self.json(changes.quietHours)
                let rows = try await connection.query(
                    """
                    UPDATE users SET name = COALESCE(\(changes.name), name), email = COALESCE(\(changes.email), email),
                        pending_email = CASE WHEN \(changes.email)::text IS NULL THEN pending_email END,
                        email_verification_hash = CASE WHEN \(changes.email)::text IS NULL THEN email_verification_hash END,
                        password_hash = COALESCE(\(changes.passwordHash), password_hash),
                        push_token = CASE WHEN \(setToken) THEN \(token) ELSE push_token END,
                        phone = CASE WHEN \(setPhone) THEN \(phone) ELSE phone END,
                        time_zone = CASE WHEN \(setTimeZone) THEN \(timeZone) ELSE time_zone END,
                        quiet_hours = COALESCE(\(quietHours)::jsonb, quiet_hours),
                        disabled_at = CASE WHEN \(changes.disabled)::boolean IS NULL THEN disabled_at
                                           WHEN \(changes.disabled)::boolean THEN COALESCE(disabled_at, now()) END,
                        -- A new number is unverified unless the service that set it vouches for it.
                        phone_verified = CASE
                            WHEN \(changes.phoneVerified)::boolean IS NOT NULL THEN \(changes.phoneVerified)::boolean
                            WHEN \(setPhone) AND \(phone)::text IS DISTINCT FROM phone THEN false
                            ELSE phone_verified END,
                        token_version = token_version
                            + CASE WHEN \(changes.disabled)::boolean AND disabled_at IS NULL THEN 1 ELSE 0 END
                            + CASE WHEN \(changes.passwordHash)::text IS NOT NULL
                                        OR (\(changes.email)::text IS NOT NULL AND lower(\(changes.email)::text) <> lower(email)) THEN 1 ELSE 0 END,
                        updated_at = now()
                    WHERE id = \(id)
                    RETURNING \(unescaped: Self.columnList)
                    """,
                    logger: logger
                )
                var user: UserResource?
                for try await row in rows.decode(Row.self) { user = Self.resource(row) }
                guard user != nil else { return nil }
                if let token, !token.isEmpty {
                    _ = try await connection.query(
                        """
                        INSERT INTO devices (user_id, platform, token) VALUES (\(id), 'fcm', \(token))
                        ON CONFLICT (user_id, platform, token) DO UPDATE SET active = true, deactivated_at = NULL, deactivation_reason = NULL,
                            updated_at = now()
                        """,
                        logger: logger
                    )
                    user?.pushToken = token
                } else if setToken {
                    // `push_token: null` withdraws the user's FCM tokens: no more pushes to them.
                    _ = try await connection.query(
                        """
                        UPDATE devices SET active = false, deactivated_at = now(), deactivation_reason = 'removed', updated_at = now()
                        WHERE user_id = \(id) AND platform = 'fcm' AND active
                        """,
                        logger: logger
                    )
                    user?.pushToken = nil
                }
                return user
            }
        }
    }

    /// Records a new address waiting for verification, with the hash of its single-use token; replaces any earlier
    /// request (its token stops working). Nil: no such user.
    /// The email change a user had waiting before a new request replaced it.
    public struct PendingEmailChange: Sendable {
        var email: String?
        var tokenHash: Data?
        var expiresAt: Date?
    }

    /// Stores `email` as pending with a new token; returns the request it replaced (nil: no such user).
    public func requestEmailChange(id: UUID, email: String, tokenHash: Data, ttlSeconds: Int) async throws -> PendingEmailChange? {
        let rows = try await client.query(
            """
            UPDATE users u SET pending_email = \(email), email_verification_hash = \(tokenHash),
                email_verification_expires_at = now() + make_interval(secs => \(ttlSeconds)), updated_at = now()
            FROM (SELECT id, pending_email, email_verification_hash, email_verification_expires_at FROM users WHERE id = \(id) FOR UPDATE) old
            WHERE u.id = old.id
            RETURNING old.pending_email, old.email_verification_hash, old.email_verification_expires_at
            """,
            logger: logger
        )
        for try await (email, hash, expires) in rows.decode((String?, Data?, Date?).self) {
            return PendingEmailChange(email: email, tokenHash: hash, expiresAt: expires)
        }
        return nil
    }

    /// Withdraws a request whose verification could not be sent (only if it is still the current one), putting back
    /// the request it replaced.
    public func cancelEmailChange(id: UUID, tokenHash: Data, restoring previous: PendingEmailChange) async throws {
        _ = try await client.query(
            """
            UPDATE users SET pending_email = \(previous.email), email_verification_hash = \(previous.tokenHash),
                email_verification_expires_at = \(previous.expiresAt)
            WHERE id = \(id) AND email_verification_hash = \(tokenHash)
            """,
            logger: logger
        )
    }

    /// Withdraws whatever address is waiting for its verification (the user asked for the address they have).
    public func cancelEmailChange(id: UUID) async throws {
        _ = try await client.query(
            """
            UPDATE users SET pending_email = NULL, email_verification_hash = NULL, email_verification_expires_at = NULL
            WHERE id = \(id) AND pending_email IS NOT NULL
            """,
            logger: logger
        )
    }

    public enum EmailConfirmation: Sendable {
        case confirmed(UserResource)
        /// Unknown, used or expired.
        case invalid
        /// Another user holds the address by now; the request is withdrawn.
        case taken
    }

    /// Makes the pending address the user's, once, with an unexpired token; every earlier token of the user stops
    /// working (as with any change of email).
    public func confirmEmail(tokenHash: Data) async throws -> EmailConfirmation {
        do {
            let rows = try await client.query(
                """
                UPDATE users SET email = pending_email, pending_email = NULL, email_verification_hash = NULL,
                    email_verification_expires_at = NULL, token_version = token_version + 1, updated_at = now()
                WHERE email_verification_hash = \(tokenHash) AND email_verification_expires_at > now() AND pending_email IS NOT NULL
                RETURNING \(unescaped: Self.columnList)
                """,
                logger: logger
            )
            for try await row in rows.decode(Row.self) { return .confirmed(Self.resource(row)) }
            return .invalid
        } catch  where error.isUniqueViolation {
            _ = try await client.query(
                """
                UPDATE users SET pending_email = NULL, email_verification_hash = NULL, email_verification_expires_at = NULL
                WHERE email_verification_hash = \(tokenHash)
                """,
                logger: logger
            )
            return .taken
        }
    }

    /// Deletes the user and, by cascade, every device and preference: no personal data remains.
    public func delete(id: UUID) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query("DELETE FROM users WHERE id = \(id) RETURNING id", logger: logger).decode(UUID.self) {
                return true
            }
            return false
        }
    }

    public func preferences(id: UUID) async throws -> PreferencesResource? {
        var channels: (Bool, Bool, Bool)?
        for try await row in try await client.query("SELECT email_enabled, push_enabled, sms_enabled FROM users WHERE id = \(id)", logger: logger)
            .decode((Bool, Bool, Bool).self)
        { channels = row }
        guard let channels else { return nil }
        var categories: [String: [String: Bool]] = [:]
        for try await (category, channel, enabled) in try await client.query(
            "SELECT category, channel, enabled FROM category_preferences WHERE user_id = \(id)",
            logger: logger
        ).decode((String, String, Bool).self) {
            categories[category, default: [:]][channel] = enabled
        }
        return PreferencesResource(email: channels.0, push: channels.1, sms: channels.2, categories: categories)
    }

    /// Sets the given preferences; categories given replace that category's settings.
    public func setPreferences(
        id: UUID,
        email: Bool?,
        push: Bool?,
        sms: Bool? = nil,
        categories: [String: [String: Bool]]?
    ) async throws -> PreferencesResource? {
        let found: Bool = try await client.withTransaction(logger: logger) { connection in
            var exists = false
            for try await _ in try await connection.query(
                """
                UPDATE users SET email_enabled = COALESCE(\(email), email_enabled), push_enabled = COALESCE(\(push), push_enabled),
                    sms_enabled = COALESCE(\(sms), sms_enabled), updated_at = now()
                WHERE id = \(id) RETURNING id
                """,
                logger: logger
            ).decode(UUID.self) { exists = true }
            guard exists else { return false }
            for (category, channels) in categories ?? [:] {
                _ = try await connection.query(
                    "DELETE FROM category_preferences WHERE user_id = \(id) AND category = \(category)",
                    logger: logger
                )
                for (channel, enabled) in channels {
                    _ = try await connection.query(
                        "INSERT INTO category_preferences (user_id, category, channel, enabled) VALUES (\(id), \(category), \(channel), \(enabled))",
                        logger: logger
                    )
                }
            }
            return true
        }
        return found ? try await preferences(id: id) : nil
    }

    /// Turns one category of one channel off for a user (an unsubscribe link); false when there is no such user.
    public func optOut(id: UUID, category: String, channel: String) async throws -> Bool {
        var found = false
        for try await _ in try await client.query(
            """
            INSERT INTO category_preferences (user_id, category, channel, enabled)
            SELECT id, \(category), \(channel), false FROM users WHERE id = \(id)
            ON CONFLICT (user_id, category, channel) DO UPDATE SET enabled = false
            RETURNING user_id
            """,
            logger: logger
        ).decode(UUID.self) { found = true }
        return found
    }

    typealias DeviceRow = (UUID, String, String, String?, String?, Bool, String?, Date)

    static func device(_ row: DeviceRow) -> DeviceResource {
        DeviceResource(
            deviceID: row.0.lowercased,
            platform: row.1,
            token: row.2,
            p256dh: row.3,
            auth: row.4,
            active: row.5,
            deactivationReason: row.6,
            createdAt: row.7
        )
    }

    public func devices(userID: UUID, activeOnly: Bool) async throws -> [DeviceResource] {
        var devices: [DeviceResource] = []
        let rows = try await client.query(
            """
            SELECT id, platform, token, p256dh, auth, active, deactivation_reason, created_at
            FROM devices WHERE user_id = \(userID) AND (active OR NOT \(activeOnly)) ORDER BY created_at, id
            """,
            logger: logger
        )
        for try await row in rows.decode(DeviceRow.self) { devices.append(Self.device(row)) }
        return devices
    }

    /// Adds a device; the same token again returns the existing device (reactivated). Nil when the user is unknown.
    /// Registers (or reactivates) a device. `limit`: at most this many active devices per user; a device beyond it
    /// is refused with `DeviceLimitReached` (re-registering an active one is always fine). The user's row is locked
    /// so that concurrent registrations cannot pass the limit together.
    public func addDevice(
        userID: UUID,
        platform: String,
        token: String,
        p256dh: String?,
        auth: String?,
        limit: Int
    ) async throws -> (DeviceResource, Bool)? {
        do {
            return try await client.withTransaction(logger: logger) { connection in
                var exists = false
                for try await _ in try await connection.query("SELECT 1 FROM users WHERE id = \(userID) FOR UPDATE", logger: logger).decode(Int.self)
                {
                    exists = true
                }
                guard exists else { return nil }
                for try await (active, already) in try await connection.query(
                    """
                    SELECT count(*) FILTER (WHERE active)::int,
                           bool_or(active AND platform = \(platform) AND token = \(token)) IS TRUE
                    FROM devices WHERE user_id = \(userID)
                    """,
                    logger: logger
                ).decode((Int, Bool).self) where active >= limit && !already {
                    throw DeviceLimitReached(limit: limit)
                }
                let rows = try await connection.query(
                    """
                    INSERT INTO devices (user_id, platform, token, p256dh, auth) VALUES (\(userID), \(platform), \(token), \(p256dh), \(auth))
                    ON CONFLICT (user_id, platform, token) DO UPDATE
                        SET active = true, deactivated_at = NULL, deactivation_reason = NULL, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth,
                            updated_at = now()
                    RETURNING id, platform, token, p256dh, auth, active, deactivation_reason, created_at, (xmax = 0)
                    """,
                    logger: logger
                )
                for try await row in rows.decode((UUID, String, String, String?, String?, Bool, String?, Date, Bool).self) {
                    return (Self.device((row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7)), row.8)
                }
                return nil
            }
        } catch  where error.sqlState == "23503" {
            return nil
        }
    }

    public struct DeviceLimitReached: Error {
        public var limit: Int
    }

    public func deleteDevice(userID: UUID, deviceID: UUID) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query(
                "DELETE FROM devices WHERE id = \(deviceID) AND user_id = \(userID) RETURNING id",
                logger: logger
            ).decode(UUID.self) { return true }
            return false
        }
    }

    /// Marks a device the provider rejected: it gets no more pushes.
    public func deactivateDevice(userID: UUID, deviceID: UUID, reason: String) async throws -> DeviceResource? {
        try await client.withTransaction(logger: logger) { connection in
            let rows = try await connection.query(
                """
                UPDATE devices SET active = false, deactivated_at = now(), deactivation_reason = \(reason), updated_at = now()
                WHERE id = \(deviceID) AND user_id = \(userID)
                RETURNING id, platform, token, p256dh, auth, active, deactivation_reason, created_at
                """,
                logger: logger
            )
            for try await row in rows.decode(DeviceRow.self) { return Self.device(row) }
            return nil
        }
    }

    /// The contact data of many users at once (three queries whatever their number); unknown ids are left out.
    public func contacts(ids: [UUID]) async throws -> [UUID: ContactResource] {
        guard !ids.isEmpty else { return [:] }
        var users: [UUID: Row] = [:]
        for try await row in try await client.query(
            "SELECT \(unescaped: Self.columnList) FROM users WHERE id = ANY(\(ids))",
            logger: logger
        ).decode(Row.self) { users[row.0] = row }
        guard !users.isEmpty else { return [:] }
        let found = Array(users.keys)
        var categories: [UUID: [String: [String: Bool]]] = [:]
        for try await (userID, category, channel, enabled) in try await client.query(
            "SELECT user_id, category, channel, enabled FROM category_preferences WHERE user_id = ANY(\(found))",
            logger: logger
        ).decode((UUID, String, String, Bool).self) {
            categories[userID, default: [:]][category, default: [:]][channel] = enabled
        }
        var devices: [UUID: [DeviceResource]] = [:]
        for try await row in try await client.query(
            """
            SELECT user_id, id, platform, token, p256dh, auth, active, deactivation_reason, created_at
            FROM devices WHERE user_id = ANY(\(found)) AND active ORDER BY created_at, id
            """,
            logger: logger
        ).decode((UUID, UUID, String, String, String?, String?, Bool, String?, Date).self) {
            devices[row.0, default: []].append(Self.device((row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8)))
        }
        var contacts: [UUID: ContactResource] = [:]
        for (id, row) in users {
            contacts[id] = ContactResource(
                userID: id.lowercased,
                name: row.1,
                email: row.2,
                pushToken: row.3,
                phone: row.9,
                phoneVerified: row.10,
                preferences: PreferencesResource(email: row.4, push: row.5, sms: row.11, categories: categories[id] ?? [:]),
                devices: devices[id] ?? [],
                timeZone: row.12,
                quietHours: Self.quietHours(row.13),
                disabled: row.14
            )
        }
        return contacts
    }

    public func contact(id: UUID) async throws -> ContactResource? {
        guard let user = try await find(id: id), let preferences = try await preferences(id: id) else { return nil }
        let devices = try await devices(userID: id, activeOnly: true)
        return ContactResource(
            userID: user.userID,
            name: user.name,
            email: user.email,
            pushToken: user.pushToken,
            phone: user.phone,
            phoneVerified: user.phoneVerified,
            preferences: preferences,
            devices: devices,
            timeZone: user.timeZone,
            quietHours: user.quietHours,
            disabled: user.disabled
        )
    }
}
