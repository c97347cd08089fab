import Foundation
import Logging
import NotifyConfig
import PostgresNIO

/// One version of a template in one language, as the API shows it.
public struct TemplateResource: Codable, Sendable, Equatable {
    public var code: String
    public var name: String
    public var channel: String
    public var category: String?
    public var version: Int
    public var language: String
    public var subject: String?
    public var body: String
    public var htmlBody: String?
    public var title: String?
    public var imageURL: String?
    public var link: String?
    public var variables: [String]
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case code, name, channel, category, version, language, subject, body
        case htmlBody = "html_body"
        case title
        case imageURL = "image_url"
        case link, variables
        case createdAt = "created_at"
    }
}

public struct NewTemplate: Sendable {
    public var code: String
    public var name: String
    public var channel: String
    public var category: String?
    public var language: String
    public var subject: String?
    public var body: String
    public var htmlBody: String?
    public var title: String?
    public var imageURL: String?
    public var link: String?
}

public enum TemplateRepositoryError: Error {
    case codeTaken
}

/// All SQL of the templates database.
public struct TemplateRepository: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func create(_ template: NewTemplate) async throws -> TemplateResource {
        do {
            try await client.withTransaction(logger: logger) { connection in
                let rows = try await connection.query(
                    """
                    INSERT INTO templates (code, name, channel, default_language, category)
                    VALUES (\(template.code), \(template.name), \(template.channel), \(template.language), \(template.category))
                    RETURNING id
                    """,
                    logger: logger
                )
                var templateID: UUID?
                for try await id in rows.decode(UUID.self) { templateID = id }
                guard let templateID else { throw TemplateRepositoryError.codeTaken }
                _ = try await connection.query(
                    """
                    INSERT INTO template_versions (template_id, version, language, subject, body, html_body, title, image_url, link)
                    VALUES (\(templateID), 1, \(template.language), \(template.subject), \(template.body), \(template.htmlBody),
                            \(template.title), \(template.imageURL), \(template.link))
                    """,
                    logger: logger
                )
            }
        } catch  where error.isUniqueViolation {
            throw TemplateRepositoryError.codeTaken
        }
        guard let created = try await find(code: template.code, language: nil) else { throw TemplateRepositoryError.codeTaken }
        return created
    }

    /// The active version of a template in the wanted language, else in its default language.
    public func find(code: String, language: String?) async throws -> TemplateResource? {
        let rows = try await client.query(
            """
            SELECT t.code, t.name, t.channel, v.version, v.language, v.subject, v.body, v.html_body, v.title, v.image_url, v.link, v.created_at,
                   t.category
            FROM templates t
            JOIN template_versions v ON v.template_id = t.id AND v.version = t.active_version
            WHERE t.code = \(code) AND v.language IN (\(language ?? ""), t.default_language)
            ORDER BY (v.language = \(language ?? "")) DESC
            LIMIT 1
            """,
            logger: logger
        )
        for try await row in rows.decode(
            (String, String, String, Int, String, String?, String, String?, String?, String?, String?, Date, String?).self
        ) {
            let parts = [row.5, row.6, row.7, row.8, row.9, row.10].compactMap { $0 }
            return TemplateResource(
                code: row.0,
                name: row.1,
                channel: row.2,
                category: row.12,
                version: row.3,
                language: row.4,
                subject: row.5,
                body: row.6,
                htmlBody: row.7,
                title: row.8,
                imageURL: row.9,
                link: row.10,
                variables: TemplateVariables.names(in: parts),
                createdAt: row.11
            )
        }
        return nil
    }
}

/// The `{{variable}}` names a template uses, in order of first appearance.
public enum TemplateVariables {
    public static func names(in texts: [String]) -> [String] {
        var names: [String] = []
        for text in texts {
            var rest = Substring(text)
            while let open = rest.range(of: "{{") {
                rest = rest[open.upperBound...]
                guard let close = rest.range(of: "}}") else { break }
                var name = rest[..<close.lowerBound].trimmingCharacters(in: .whitespaces)
                rest = rest[close.upperBound...]
                if name.hasPrefix("{") { name = String(name.dropFirst()).trimmingCharacters(in: .whitespaces) }
                if name.hasPrefix("&") { name = String(name.dropFirst()).trimmingCharacters(in: .whitespaces) }
                if rest.hasPrefix("}") { rest = rest.dropFirst() }
                guard !name.isEmpty, let first = name.first, first.isLetter || first == "_" else { continue }
                if !names.contains(name) { names.append(name) }
            }
        }
        return names
    }
}
