import Foundation
import Hummingbird
import NotificationModel
import NotifyHTTP
import RedisCache
import Rendering

/// The templates API. Lookups read through the Redis cache under a per-template generation that every write bumps.
struct TemplateController: Sendable {
    let repository: TemplateRepository
    let cache: RedisCache
    let senders: SenderPolicy

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/templates", use: create)
        router.get("/api/v1/templates", use: list)
        router.get("/api/v1/templates/:code", use: show)
        router.get("/templates/:code", use: show)
        router.put("/api/v1/templates/:code", use: update)
        router.get("/api/v1/templates/:code/versions", use: versions)
        router.post("/api/v1/templates/:code/archive", use: archive)
        router.post("/api/v1/templates/:code/restore", use: restore)
        router.post("/api/v1/templates/:code/render", use: render)
    }

    static let notFound = APIError.notFound(.templateNotFound, "No template with this code")

    /// An email template's own sender: `from_email` (on the allow-list), `from_name`, `reply_to`. On an update only the
    /// fields present change (null clears one); on a create, absent is unset.
    func sender(_ fields: inout FieldValidator, channel: String?) -> SenderUpdate {
        let object = fields.object
        func present(_ key: String) -> Bool { object[key] != nil }
        func isNull(_ key: String) -> Bool {
            if case .null? = object[key] { return true }
            return false
        }
        var update = SenderUpdate()
        let keys = ["from_email", "from_name", "reply_to"]
        if channel == "push" || channel == "sms" {
            for key in keys where present(key) && !isNull(key) { fields.fail(key, "is for email templates only") }
            return update
        }
        if present("from_email") {
            let address = isNull("from_email") ? nil : fields.email("from_email")
            if let address, !senders.allows(address) {
                fields.fail(
                    "from_email",
                    senders.isEmpty
                        ? "no sender addresses are allowed on this platform (NOTIFY_MAIL_FROM_ALLOWED is empty)"
                        : "is not an allowed sender address (NOTIFY_MAIL_FROM_ALLOWED)"
                )
            }
            update.fromEmail = .some(address)
        }
        if present("from_name") {
            let name = isNull("from_name") ? nil : fields.string("from_name", maxLength: 100)
            if let name, name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                fields.fail("from_name", "must not contain control characters")
            }
            update.fromName = .some(name)
        }
        if present("reply_to") { update.replyTo = .some(isNull("reply_to") ? nil : fields.email("reply_to")) }
        return update
    }

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        var fields = FieldValidator(try await request.jsonObject())
        let code = fields.string("code", maxLength: 100)
        if let code, !code.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }) {
            fields.fail("code", "may hold only letters, digits, '_', '-' and '.'")
        } else if let code, Self.isPlatformTemplate(code) {
            fields.fail("code", "codes starting with 'notify.' are reserved for the platform's own templates")
        }
        let name = fields.string("name", maxLength: 200)
        let channel = fields.oneOf("channel", ["email", "push", "sms"])
        let category = fields.string("category", required: false, maxLength: 64)
        let sender = sender(&fields, channel: channel)
        let content = Self.content(&fields, channel: channel)
        try fields.check()
        guard let code, let name, let channel, let content else { throw APIError.internalError }
        do {
            let template = try await repository.create(
                code: code,
                name: name,
                channel: channel,
                category: category,
                sender: TemplateSender(fromEmail: sender.fromEmail ?? nil, fromName: sender.fromName ?? nil, replyTo: sender.replyTo ?? nil),
                content: content
            )
            await cache.bump("template:\(code):gen")
            return .envelope(.created, data: template, message: "Template created")
        } catch TemplateRepositoryError.codeTaken {
            throw APIError(.conflict, code: .templateExists, message: "A template with this code already exists for this channel")
        }
    }

    /// A new immutable version of one language variant (the default language unless `language` says otherwise).
    @Sendable func update(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let (code, channel) = try await identify(request, context: context)
        guard let current = try await repository.find(code: code, channel: channel, language: nil, version: nil) else { throw Self.notFound }
        let body = try await request.jsonObject()
        var fields = FieldValidator(body)
        let name = fields.string("name", required: false, maxLength: 200)
        let category = body.keys.contains("category") ? .some(fields.string("category", required: false, maxLength: 64)) : String??.none
        let sender = sender(&fields, channel: current.channel)
        var content = Self.content(&fields, channel: current.channel)
        if body["language"] == nil { content?.language = current.defaultLanguage }
        try fields.check()
        guard let content,
            let updated = try await repository.update(code: code, channel: channel, name: name, category: category, sender: sender, content: content)
        else {
            throw Self.notFound
        }
        await cache.bump("template:\(code):gen")
        return .envelope(data: updated, message: "Template version \(updated.version) created")
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let template = try await lookup(request, context: context) else { throw Self.notFound }
        return .envelope(data: template, message: "Template retrieved successfully")
    }

    func lookup(_ request: Request, context: NotifyRequestContext, language: String? = nil, version: Int? = nil) async throws -> TemplateResource? {
        let (code, channel) = try await identify(request, context: context)
        let query = request.uri.queryParameters
        let language = language ?? query.get("language")
        if let language, !FieldValidator.isLanguageTag(language) {
            throw APIError.validation([FieldError(field: "language", message: "must be a language tag such as en or fr-CA")])
        }
        var version = version
        if version == nil, let raw = query.get("version") {
            guard let value = Int(raw), (1...Int(Int32.max)).contains(value) else {
                throw APIError.validation([FieldError(field: "version", message: "must be a positive integer")])
            }
            version = value
        }
        let load = { try await repository.find(code: code, channel: channel, language: language, version: version) }
        // Without the current generation any cached entry could be an old one: the source answers.
        guard let generation = await cache.generation("template:\(code):gen") else { return try await load() }
        return try await cache.fetch(
            "template:\(code):\(generation):\(channel):\(language ?? ""):\(version.map(String.init) ?? "")",
            as: TemplateResource.self,
            load: load
        )
    }

    @Sendable func list(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let query = request.uri.queryParameters
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        let channel = query.get("channel")
        if let channel, !["email", "push", "sms"].contains(channel) {
            errors.append(FieldError(field: "channel", message: "must be email, push or sms"))
        }
        let archived: Bool
        switch query.get("archived") {
        case nil, "false"?: archived = false
        case "true"?: archived = true
        default:
            archived = false
            errors.append(FieldError(field: "archived", message: "must be true or false"))
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let (templates, total) = try await repository.list(channel: channel, page: page, limit: limit, archived: archived)
        return .envelope(data: templates, message: "Templates retrieved successfully", meta: PageMeta(total: total, limit: limit, page: page))
    }

    @Sendable func versions(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let (code, channel) = try await identify(request, context: context)
        guard let versions = try await repository.versions(code: code, channel: channel) else { throw Self.notFound }
        return .envelope(
            data: versions,
            message: "Versions retrieved successfully",
            meta: .whole(versions.count)
        )
    }

    /// The platform's own templates (`notify.…`, such as the verification of a new email address) are seeded by the
    /// migrations: they may be edited (the text is the operator's) but neither created by clients nor archived.
    static func isPlatformTemplate(_ code: String) -> Bool { code.lowercased().hasPrefix("notify.") }

    @Sendable func archive(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let (code, channel) = try await identify(request, context: context)
        if Self.isPlatformTemplate(code) {
            throw APIError(
                .conflict,
                code: .templateReserved,
                message: "The platform's own templates can be edited but not archived: the platform sends them itself"
            )
        }
        guard try await repository.archive(code: code, channel: channel) else { throw Self.notFound }
        await cache.bump("template:\(code):gen")
        return .envelope(data: EmptyPayload(), message: "Template archived: it takes no new notifications")
    }

    /// `POST /api/v1/templates/{code}/restore/`: an archived template takes notifications again.
    @Sendable func restore(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        let (code, channel) = try await identify(request, context: context)
        guard try await repository.restore(code: code, channel: channel) else { throw Self.notFound }
        await cache.bump("template:\(code):gen")
        return .envelope(data: EmptyPayload(), message: "Template restored: it takes notifications again")
    }

    struct Rendered: Encodable, Sendable {
        var code: String
        var version: Int
        var language: String
        var subject: String?
        var body: String
        var htmlBody: String?
        var title: String?
        var imageURL: String?
        var link: String?
        var data: [String: String]?
        /// SMS only: how the rendered body travels.
        var sms: SMSInfo?
    }

    struct SMSInfo: Encodable, Sendable {
        var encoding: String
        var characters: Int
        var segments: Int
        /// Whether the rendered body fits the platform's limit (at most SMSText.maxSegments segments).
        var sendable: Bool

        init(_ body: String) {
            let text = SMSText(body)
            encoding = text.encoding.rawValue
            characters = text.characters
            segments = text.segments
            sendable = text.segments <= SMSText.maxSegments
        }
    }

    /// Preview: renders a version with the given variables; 422 lists the variables it needs and did not get.
    @Sendable func render(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        var fields = FieldValidator(try await request.jsonObject())
        let variables = fields.object("variables") ?? [:]
        let language = fields.languageTag("language")
        let version = fields.int("version", range: 1...1_000_000)
        try fields.check()
        guard let template = try await lookup(request, context: context, language: language, version: version) else { throw Self.notFound }
        let missing = TemplateVariables.missing(in: template.parts, variables: variables)
        guard missing.isEmpty else {
            throw APIError(
                .unprocessableContent,
                code: .missingVariables,
                message: "The template needs variables that were not given",
                details: missing.map { FieldError(field: "variables.\($0)", message: "is required by the template") }
            )
        }
        func text(_ source: String?) throws -> String? { try source.map { try TemplateRenderer.render($0, variables: variables, as: .text) } }
        let rendered = Rendered(
            code: template.code,
            version: template.version,
            language: template.language,
            subject: try text(template.subject),
            body: try TemplateRenderer.render(template.body, variables: variables, as: .text),
            htmlBody: try template.htmlBody.map { try TemplateRenderer.render($0, variables: variables, as: .html) },
            title: try text(template.title),
            imageURL: try text(template.imageURL),
            link: try text(template.link),
            data: try template.data?.mapValues { try TemplateRenderer.render($0, variables: variables, as: .text) }
        )
        var shown = rendered
        if template.channel == "sms" { shown.sms = SMSInfo(rendered.body) }
        return .envelope(data: shown, message: "Template rendered")
    }

    /// The template a path names: its code, and its channel from `?channel=`, or the only channel the code exists on.
    func identify(_ request: Request, context: NotifyRequestContext) async throws -> (String, String) {
        guard let code = context.parameters.get("code") else { throw Self.notFound }
        if let channel = request.uri.queryParameters.get("channel") {
            guard ["email", "push", "sms"].contains(channel) else {
                throw APIError.validation([FieldError(field: "channel", message: "must be email, push or sms")])
            }
            return (code, channel)
        }
        let channels = try await repository.channels(code: code)
        switch channels.count {
        case 0: throw Self.notFound
        case 1: return (code, channels[0])
        default:
            throw APIError.validation(
                [
                    FieldError(
                        field: "channel",
                        message: "this code names templates of \(channels.sorted().joined(separator: ", ")): add ?channel=\(channels.sorted()[0])"
                    )
                ])
        }
    }

    /// The content fields of a create or an edit, validated for the channel (and as Mustache).
    static func content(_ fields: inout FieldValidator, channel: String?) -> TemplateVariant? {
        let language = fields.languageTag("language") ?? "en"
        let subject = fields.string("subject", required: channel == "email", maxLength: 998)
        let body = fields.string("body", maxLength: channel == "sms" ? 1600 : 100_000)
        if channel == "sms" {
            // A text message is its body alone.
            for field in ["subject", "html_body", "title", "image_url", "link"] {
                if let value = fields.object[field], case .null = value { continue }
                if fields.object[field] != nil { fields.fail(field, "an sms template has a body only") }
            }
        }
        let htmlBody = fields.string("html_body", required: false, maxLength: 500_000)
        let title = fields.string("title", required: channel == "push", maxLength: 500)
        let imageURL = fields.string("image_url", required: false, maxLength: 2048)
        let link = fields.string("link", required: false, maxLength: 2048)
        var data: [String: String]?
        if let object = fields.object("data") {
            data = [:]
            for (key, value) in object {
                guard case .string(let text) = value else {
                    fields.fail("data.\(key)", "must be a string")
                    continue
                }
                // (NUL is refused by `fields.object` already.)
                if !TemplateRenderer.validate(text) { fields.fail("data.\(key)", "is not a valid Mustache template") }
                data?[key] = text
            }
        }
        let parts = [("subject", subject), ("body", body), ("html_body", htmlBody), ("title", title), ("image_url", imageURL), ("link", link)]
        for (field, text) in parts {
            if let text, !TemplateRenderer.validate(text) { fields.fail(field, "is not a valid Mustache template") }
        }
        guard let body else { return nil }
        return TemplateVariant(
            language: language,
            subject: subject,
            body: body,
            htmlBody: htmlBody,
            title: title,
            imageURL: imageURL,
            link: link,
            data: data
        )
    }
}
