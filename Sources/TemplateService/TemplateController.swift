import Foundation
import Hummingbird
import NotificationModel
import NotifyHTTP
import RedisCache

/// The templates API: create and fetch. Fetches read through the Redis cache; writes invalidate it.
struct TemplateController: Sendable {
    let repository: TemplateRepository
    let cache: RedisCache

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.post("/api/v1/templates", use: create)
        router.get("/api/v1/templates/:code", use: show)
        router.get("/templates/:code", use: show)
    }

    @Sendable func create(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        var fields = FieldValidator(try await request.jsonObject())
        let code = fields.string("code", maxLength: 100)
        if let code, !code.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "_-.".contains($0)) }) {
            fields.fail("code", "may hold only letters, digits, '_', '-' and '.'")
        }
        let name = fields.string("name", maxLength: 200)
        let channel = fields.oneOf("channel", ["email", "push"])
        let category = fields.string("category", required: false, maxLength: 64)
        let language = fields.string("language", required: false, maxLength: 35) ?? "en"
        let subject = fields.string("subject", required: channel == "email", maxLength: 998)
        let body = fields.string("body", maxLength: 100_000)
        let htmlBody = fields.string("html_body", required: false, maxLength: 500_000)
        let title = fields.string("title", required: channel == "push", maxLength: 500)
        let imageURL = fields.string("image_url", required: false, maxLength: 2048)
        let link = fields.string("link", required: false, maxLength: 2048)
        try fields.check()
        guard let code, let name, let channel, let body else { throw APIError.internalError }
        do {
            let template = try await repository.create(
                NewTemplate(
                    code: code,
                    name: name,
                    channel: channel,
                    category: category,
                    language: language,
                    subject: subject,
                    body: body,
                    htmlBody: htmlBody,
                    title: title,
                    imageURL: imageURL,
                    link: link
                )
            )
            await cache.invalidate(["template:\(code):"])
            return .envelope(.created, data: template, message: "Template created")
        } catch TemplateRepositoryError.codeTaken {
            throw APIError(.conflict, code: "TEMPLATE_EXISTS", message: "A template with this code already exists")
        }
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let code = context.parameters.get("code") else { throw APIError.notFound("TEMPLATE_NOT_FOUND", "No template with this code") }
        let language = request.uri.queryParameters.get("language")
        guard
            let template = try await cache.fetch(
                "template:\(code):\(language ?? "")",
                as: TemplateResource.self,
                load: { try await repository.find(code: code, language: language) }
            )
        else { throw APIError.notFound("TEMPLATE_NOT_FOUND", "No template with this code") }
        return .envelope(data: template, message: "Template retrieved successfully")
    }
}
