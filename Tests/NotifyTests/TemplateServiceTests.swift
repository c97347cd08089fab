import Foundation
import NIOHTTP1
import Testing

/// The template service against real PostgreSQL and Redis.
@Suite("Template service", .serialized)
struct TemplateServiceTests {
    @Test("create returns version 1 with its variables; a second template with the same code is 409; bad input 400; unknown 404")
    func createAndFetch() async throws {
        try await Stack.with(services: [.templates]) { stack in
            let url = "\(stack.url(.templates))/api/v1/templates/"
            let body: [String: Any] = [
                "code": "welcome", "name": "Welcome", "channel": "email", "category": "transactional", "subject": "Hi {{name}}",
                "body": "Hello {{name}}, see {{ link }}", "html_body": "<p>{{{name}}}</p>",
            ]
            let created = try await stack.call(.POST, url, json: body, headers: stack.serviceAuth)
            #expect(created.status == 201)
            #expect(created.data["version"] as? Int == 1)
            #expect(created.data["variables"] as? [String] == ["name", "link"])
            #expect(created.data["category"] as? String == "transactional")

            let duplicate = try await stack.call(.POST, url, json: body, headers: stack.serviceAuth)
            #expect(duplicate.status == 409)
            #expect(duplicate.error == "TEMPLATE_EXISTS")

            let bad = try await stack.call(.POST, url, json: ["code": "a b", "channel": "fax"], headers: stack.serviceAuth)
            #expect(bad.status == 400)
            #expect(Set(bad.details.compactMap { $0["field"] }).isSuperset(of: ["code", "name", "channel", "body"]))

            let fetched = try await stack.call(.GET, "\(url)welcome/", headers: stack.serviceAuth)
            #expect(fetched.data["subject"] as? String == "Hi {{name}}")
            let short = try await stack.call(.GET, "\(stack.url(.templates))/templates/welcome", headers: stack.serviceAuth)
            #expect(short.status == 200)
            let unknown = try await stack.call(.GET, "\(url)nope/", headers: stack.serviceAuth)
            #expect(unknown.status == 404)
            #expect(unknown.error == "TEMPLATE_NOT_FOUND")
            #expect(try await stack.call(.GET, "\(url)welcome/").status == 401)
        }
    }
}
