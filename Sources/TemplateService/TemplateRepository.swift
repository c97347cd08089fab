import Foundation
import Logging
import NotificationModel
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Rendering

/// One version of a template in one language, as the API shows it.
public struct TemplateResource: Codable, Sendable, Equatable {
    public var code: String
    public var name: String
    public var channel: String
    public var category: String?
    public var version: Int
    public var activeVersion: Int
    public var language: String
    public var defaultLanguage: String
    public var subject: String?
    public var body: String
    public var htmlBody: String?
    public var title: String?
    public var imageURL: String?
    public var link: String?
    public var data: [String: String]?
    public var variables: [String]
    public var archived: Bool
    public var createdAt: Date
    /// Email only: the template's own sender and reply address (nil: the platform's defaults).
    public var fromEmail: String?
    public var fromName: String?
    public var replyTo: String?

    enum CodingKeys: String, CodingKey {
        case fromEmail = "from_email"
        case fromName = "from_name"
        case replyTo = "reply_to"
        case code, name, channel, category, version
        case activeVersion = "active_version"
        case language
        case defaultLanguage = "default_language"
        case subject, body
        case htmlBody = "html_body"
        case title
        case imageURL = "image_url"
        case link, data, variables, archived
        case createdAt = "created_at"
    }

    /// Every text part, for variable extraction and rendering.
    var parts: [String] { [subject, body, htmlBody, title, imageURL, link].compactMap { $0 } + (data.map { Array($0.values) } ?? []) }
}

/// An email template's sender, as created.
public struct TemplateSender: Sendable {
    public var fromEmail: String?
    public var fromName: String?
    public var replyTo: String?
}

/// Changes to a template's sender: `.none` keeps a field, `.some(nil)` clears it.
public struct SenderUpdate: Sendable {
    public var fromEmail: String??
    public var fromName: String??
    public var replyTo: String??
}

/// The content of one language variant, as created or edited.
public struct TemplateVariant: Sendable {
    public var language: String
    public var subject: String?
    public var body: String
    public var htmlBody: String?
    public var title: String?
    public var imageURL: String?
    public var link: String?
    public var data: [String: String]?
}

public struct VersionSummary: Codable, Sendable, Equatable {
    public var version: Int
    public var language: String
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case version, language
        case createdAt = "created_at"
    }
}

public enum TemplateRepositoryError: Error {
    case codeTaken
}

/// All SQL of the templates database.
public struct TemplateRepository: Sendable {
    let client: Database
    let logger: Logger

    public init(client: Database, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static func json(_ data: [String: String]?) -> String? {
        data.flatMap { try? JSONEncoder.canonical.encode($0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    public func create(
        code: String,
        name: String,
        channel: String,
        category: String?,
        sender: TemplateSender,
        content: TemplateVariant
    ) async throws -> TemplateResource {
        do {
            try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO templates (code, name, channel, default_language, category, from_email, from_name, reply_to)
                    VALUES (\(code), \(name), \(channel), \(content.language), \(category), \(sender.fromEmail), \(sender.fromName),
                            \(sender.replyTo))
                    RETURNING id
                    """,
                    logger: logger
                )
                var templateID: UUID?
                for try await id in rows.decode(UUID.self) { templateID = id }
                guard let templateID else { throw TemplateRepositoryError.codeTaken }
                try await insert(on: connection, templateID: templateID, version: 1, content: content)
            }
        } catch  where error.isUniqueViolation {
            throw TemplateRepositoryError.codeTaken
        }
        guard let created = try await find(code: code, channel: channel, language: nil, version: nil) else {
            throw TemplateRepositoryError.codeTaken
        }
        return created
    }

    func insert(on connection: PostgresConnection, templateID: UUID, version: Int, content: TemplateVariant) async throws {
        _ = try await connection.query(
            """
            INSERT INTO template_versions (template_id, version, language, subject, body, html_body, title, image_url, link, data)
            VALUES (\(templateID), \(version), \(content.language), \(content.subject), \(content.body), \(content.htmlBody),
                    \(content.title), \(content.imageURL), \(content.link), \(Self.json(content.data))::jsonb)
            """,
            logger: logger
        )
    }

    /// A new immutable version holding this language's content; it becomes the active version. Nil if unknown/archived.
    public func update(
        code: String,
        channel: String,
        name: String?,
        category: String??,
        sender: SenderUpdate,
        content: TemplateVariant
    ) async throws
        -> TemplateResource?
    {
        let updated: Bool = try await client.withTransaction(logger: logger) { connection in
            let setCategory = category != nil
            let rows = try await connection.query(
                """
                UPDATE templates SET active_version = active_version + 1, name = COALESCE(\(name), name),
                    category = CASE WHEN \(setCategory) THEN \(category ?? nil) ELSE category END,
                    from_email = CASE WHEN \(sender.fromEmail != nil) THEN \(sender.fromEmail ?? nil) ELSE from_email END,
                    from_name = CASE WHEN \(sender.fromName != nil) THEN \(sender.fromName ?? nil) ELSE from_name END,
                    reply_to = CASE WHEN \(sender.replyTo != nil) THEN \(sender.replyTo ?? nil) ELSE reply_to END,
                    updated_at = now()
                WHERE code = \(code) AND channel = \(channel) AND archived_at IS NULL
                RETURNING id, active_version
                """,
                logger: logger
            )
            var found: (UUID, Int)?
            for try await row in rows.decode((UUID, Int).self) { found = row }
            guard let (templateID, version) = found else { return false }
            try await insert(on: connection, templateID: templateID, version: version, content: content)
            return true
        }
        return updated ? try await find(code: code, channel: channel, language: content.language, version: nil) : nil
    }

    /// Version `version` (default: the active one) in the best language: `fr-CA` → `fr` → the template's default.
    /// Archived templates answer only when a version is named (pinned notifications still render).
    public func find(code: String, channel: String, language: String?, version: Int?) async throws -> TemplateResource? {
        let candidates = Self.languageChain(language)
        let rows = try await client.query(
            """
            SELECT t.code, t.name, t.channel, t.category, v.version, t.active_version, v.language, t.default_language,
                   v.subject, v.body, v.html_body, v.title, v.image_url, v.link, v.data::text, t.archived_at IS NOT NULL, v.created_at,
                   t.from_email, t.from_name, t.reply_to
            FROM templates t
            JOIN LATERAL (
                SELECT * FROM template_versions v
                WHERE v.template_id = t.id AND v.version <= COALESCE(\(version)::int, t.active_version)
                  AND v.language = ANY(array_append(\(candidates)::text[], t.default_language))
                ORDER BY array_position(array_append(\(candidates)::text[], t.default_language), v.language), v.version DESC
                LIMIT 1
            ) v ON true
            WHERE t.code = \(code) AND t.channel = \(channel) AND (t.archived_at IS NULL OR \(version)::int IS NOT NULL)
            """,
            logger: logger
        )
        for try await row in rows.decode(
            (
                String, String, String, String?, Int, Int, String, String, String?, String, String?, String?, String?, String?, String?, Bool, Date,
                String?, String?, String?
            ).self
        ) {
            let data = row.14.flatMap { try? JSONDecoder().decode([String: String].self, from: Data($0.utf8)) }
            var resource = TemplateResource(
                code: row.0,
                name: row.1,
                channel: row.2,
                category: row.3,
                version: row.4,
                activeVersion: row.5,
                language: row.6,
                defaultLanguage: row.7,
                subject: row.8,
                body: row.9,
                htmlBody: row.10,
                title: row.11,
                imageURL: row.12,
                link: row.13,
                data: data,
                variables: [],
                archived: row.15,
                createdAt: row.16,
                fromEmail: row.17,
                fromName: row.18,
                replyTo: row.19
            )
            resource.variables = TemplateVariables.names(in: resource.parts)
            return resource
        }
        return nil
    }

    /// `fr-CA` → [`fr-CA`, `fr`]; the template's default language is appended in SQL.
    static func languageChain(_ language: String?) -> [String] {
        guard let language, !language.isEmpty else { return [] }
        var chain = [language]
        var current = language
        while let dash = current.lastIndex(of: "-") {
            current = String(current[..<dash])
            chain.append(current)
        }
        return chain
    }

    /// The channels a code exists on (archived ones included): a code may name an email and a push template.
    public func channels(code: String) async throws -> [String] {
        var channels: [String] = []
        for try await channel in try await client.query("SELECT channel FROM templates WHERE code = \(code) ORDER BY channel", logger: logger)
            .decode(String.self)
        { channels.append(channel) }
        return channels
    }

    public func versions(code: String, channel: String) async throws -> [VersionSummary]? {
        var summaries: [VersionSummary] = []
        var exists = false
        for try await _ in try await client.query(
            "SELECT 1 FROM templates WHERE code = \(code) AND channel = \(channel)",
            logger: logger
        ).decode(Int.self) { exists = true }
        guard exists else { return nil }
        let rows = try await client.query(
            """
            SELECT v.version, v.language, v.created_at FROM template_versions v JOIN templates t ON t.id = v.template_id
            WHERE t.code = \(code) AND t.channel = \(channel) ORDER BY v.version DESC, v.language
            """,
            logger: logger
        )
        for try await (version, language, createdAt) in rows.decode((Int, String, Date).self) {
            summaries.append(VersionSummary(version: version, language: language, createdAt: createdAt))
        }
        return summaries
    }

    public func archive(code: String, channel: String) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query(
                "UPDATE templates SET archived_at = COALESCE(archived_at, now()), updated_at = now() WHERE code = \(code) AND channel = \(channel) RETURNING id",
                logger: logger
            ).decode(UUID.self) { return true }
            return false
        }
    }

    /// Takes an archived template back into use (its versions as they were); false if there is no such template.
    public func restore(code: String, channel: String) async throws -> Bool {
        try await client.withTransaction(logger: logger) { connection in
            for try await _ in try await connection.query(
                "UPDATE templates SET archived_at = NULL, updated_at = now() WHERE code = \(code) AND channel = \(channel) RETURNING id",
                logger: logger
            ).decode(UUID.self) { return true }
            return false
        }
    }

    /// Active templates, newest first, in their default language.
    /// `archived`: the archived templates instead (to restore them), each with its last version.
    public func list(channel: String?, page: Int, limit: Int, archived: Bool = false) async throws -> ([TemplateResource], Int) {
        var codes: [(String, String)] = []
        for try await code in try await client.query(
            """
            SELECT code, channel FROM templates WHERE (archived_at IS NOT NULL) = \(archived) AND (\(channel)::text IS NULL OR channel = \(channel))
            ORDER BY created_at DESC, code LIMIT \(limit) OFFSET \((page - 1) * limit)
            """,
            logger: logger
        ).decode((String, String).self) { codes.append(code) }
        var total = 0
        for try await count in try await client.query(
            "SELECT count(*)::int FROM templates WHERE (archived_at IS NOT NULL) = \(archived) AND (\(channel)::text IS NULL OR channel = \(channel))",
            logger: logger
        ).decode(Int.self) { total = count }
        var templates: [TemplateResource] = []
        for (code, channel) in codes {
            // An archived template is found by version only: its last one.
            if let template = try await find(code: code, channel: channel, language: nil, version: archived ? Int(Int32.max) : nil) {
                templates.append(template)
            }
        }
        return (templates, total)
    }
}
