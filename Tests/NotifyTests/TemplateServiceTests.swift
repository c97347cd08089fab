import Foundation
import NIOHTTP1
import NotifyConfig
import RedisCache
import Testing

/// The template service in this process (its router through `app.test(.router)`), against real PostgreSQL and Redis.
@Suite("Template service", .serialized)
struct TemplateServiceTests {
    @Test("create returns version 1 with its variables; a second template with the same code is 409; bad input 400; unknown 404")
    func createAndFetch() async throws {
        try await RouterHarness.templates { stack in
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

    func url(_ stack: RouterHarness) -> String { "\(stack.url(.templates))/api/v1/templates/" }

    @Test("a template whose generation key is gone from Redis (flushed, or never bumped) is cached under generation 0")
    func cacheWithoutGeneration() async throws {
        try await RouterHarness.templates { stack in
            try await stack.createTemplate(["code": "nogen", "name": "No gen", "channel": "email", "subject": "S", "body": "B"])
            let redis = RedisClient(host: stack.infra.redis.host, port: stack.infra.redis.port, timeoutMilliseconds: 5000)
            _ = try await redis.command(["DEL", "\(stack.infra.redis.keyPrefix)template:nogen:gen"])
            // A missing key is generation 0, not an unknown generation: lookups keep using the cache.
            let cached = try await eventually("the lookup cached under generation 0") { () -> [String]? in
                let fetched = try await stack.call(.GET, "\(url(stack))nogen/", headers: stack.serviceAuth)
                #expect(fetched.data["subject"] as? String == "S")
                let keys = try await stack.redisKeys(matching: "template:nogen:0:*")
                return keys.isEmpty ? nil : keys
            }
            #expect(cached.count == 1)
        }
    }

    @Test("every edit is a new immutable version; history lists them; an older version is still readable")
    func versioning() async throws {
        try await RouterHarness.templates { stack in
            let created = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "news", "name": "News", "channel": "email", "subject": "v1 {{a}}", "body": "one"],
                headers: stack.serviceAuth
            )
            #expect(created.data["version"] as? Int == 1)
            _ = try await stack.call(.GET, "\(url(stack))news/", headers: stack.serviceAuth)  // now cached
            let edited = try await stack.call(.PUT, "\(url(stack))news/", json: ["subject": "v2 {{b}}", "body": "two"], headers: stack.serviceAuth)
            #expect(edited.status == 200)
            #expect(edited.data["version"] as? Int == 2)
            let latest = try await stack.call(.GET, "\(url(stack))news/", headers: stack.serviceAuth)
            #expect(latest.data["subject"] as? String == "v2 {{b}}", "the edit is visible at once, through the cache")
            #expect(latest.data["variables"] as? [String] == ["b"])
            let first = try await stack.call(.GET, "\(url(stack))news/?version=1", headers: stack.serviceAuth)
            #expect(first.data["subject"] as? String == "v1 {{a}}")
            let history = try await stack.call(.GET, "\(url(stack))news/versions/", headers: stack.serviceAuth)
            #expect((history.json["data"] as? [[String: Any]])?.compactMap { $0["version"] as? Int } == [2, 1])
            let missing = try await stack.call(.PUT, "\(url(stack))nope/", json: ["subject": "x", "body": "y"], headers: stack.serviceAuth)
            #expect(missing.status == 404)
        }
    }

    @Test("languages fall back fr-CA → fr → the template's default, at the version asked for")
    func languageFallback() async throws {
        try await RouterHarness.templates { stack in
            _ = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "hello", "name": "Hello", "channel": "push", "title": "Hello", "body": "Hello {{name}}"],
                headers: stack.serviceAuth
            )
            let french = try await stack.call(
                .PUT,
                "\(url(stack))hello/",
                json: ["language": "fr", "title": "Bonjour", "body": "Bonjour {{name}}"],
                headers: stack.serviceAuth
            )
            #expect(french.data["version"] as? Int == 2)
            #expect(french.data["language"] as? String == "fr")
            let canada = try await stack.call(.GET, "\(url(stack))hello/?language=fr-CA", headers: stack.serviceAuth)
            #expect(canada.data["language"] as? String == "fr")
            #expect(canada.data["title"] as? String == "Bonjour")
            let german = try await stack.call(.GET, "\(url(stack))hello/?language=de", headers: stack.serviceAuth)
            #expect(german.data["language"] as? String == "en")
            let before = try await stack.call(.GET, "\(url(stack))hello/?language=fr&version=1", headers: stack.serviceAuth)
            #expect(before.data["title"] as? String == "Hello", "French did not exist at version 1")
        }
    }

    @Test("render: HTML escaped in the HTML part and intact in text, sections and lists; missing variables 422; unknown 404")
    func renderPreview() async throws {
        try await RouterHarness.templates { stack in
            _ = try await stack.call(
                .POST,
                url(stack),
                json: [
                    "code": "order", "name": "Order", "channel": "email", "subject": "Order for {{name}}",
                    "body": "Hi {{name}}{{#items}}\n- {{title}}{{/items}}",
                    "html_body": "<p>Hi {{name}}</p><ul>{{#items}}<li>{{title}}</li>{{/items}}</ul>",
                ],
                headers: stack.serviceAuth
            )
            let rendered = try await stack.call(
                .POST,
                "\(url(stack))order/render/",
                json: ["variables": ["name": "<script>alert(1)</script>", "items": [["title": "Tea"], ["title": "Cake & Co"]]]],
                headers: stack.serviceAuth
            )
            #expect(rendered.status == 200)
            #expect(rendered.data["subject"] as? String == "Order for <script>alert(1)</script>")
            #expect(rendered.data["body"] as? String == "Hi <script>alert(1)</script>\n- Tea\n- Cake & Co")
            #expect(
                rendered.data["html_body"] as? String
                    == "<p>Hi &lt;script&gt;alert(1)&lt;/script&gt;</p><ul><li>Tea</li><li>Cake &amp; Co</li></ul>"
            )
            let missing = try await stack.call(.POST, "\(url(stack))order/render/", json: ["variables": ["name": "Ada"]], headers: stack.serviceAuth)
            #expect(missing.status == 422)
            #expect(missing.error == "MISSING_VARIABLES")
            #expect(missing.details.compactMap { $0["field"] } == ["variables.items"])
            let unknown = try await stack.call(.POST, "\(url(stack))nope/render/", json: ["variables": [:]], headers: stack.serviceAuth)
            #expect(unknown.status == 404)
            let broken = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "bad", "name": "Bad", "channel": "email", "subject": "{{#open}}", "body": "x"],
                headers: stack.serviceAuth
            )
            #expect(broken.status == 400)
            #expect(broken.details.first?["field"] == "subject")
        }
    }

    @Test("a code can name an email and a push template; lookups pick by channel and ask for it when ambiguous")
    func codeAndChannel() async throws {
        try await RouterHarness.templates { stack in
            let email = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "welcome", "name": "W", "channel": "email", "subject": "Mail", "body": "mail body"],
                headers: stack.serviceAuth
            )
            #expect(email.status == 201)
            #expect(try await stack.call(.GET, "\(url(stack))welcome/", headers: stack.serviceAuth).data["channel"] as? String == "email")
            let push = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "welcome", "name": "W", "channel": "push", "title": "Push", "body": "push body"],
                headers: stack.serviceAuth
            )
            #expect(push.status == 201)
            let ambiguous = try await stack.call(.GET, "\(url(stack))welcome/", headers: stack.serviceAuth)
            #expect(ambiguous.status == 400)
            #expect(ambiguous.details.first?["field"] == "channel")
            let pushOne = try await stack.call(.GET, "\(url(stack))welcome/?channel=push", headers: stack.serviceAuth)
            #expect(pushOne.data["title"] as? String == "Push")
            let again = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "welcome", "name": "W", "channel": "push", "title": "P", "body": "p"],
                headers: stack.serviceAuth
            )
            #expect(again.status == 409)
        }
    }

    @Test("list is paginated and filtered by channel; an archived template is gone from lookups but its versions still render; restored, it is back")
    func listAndArchive() async throws {
        try await RouterHarness.templates { stack in
            for index in 0..<3 {
                _ = try await stack.call(
                    .POST,
                    url(stack),
                    json: ["code": "mail\(index)", "name": "M", "channel": "email", "subject": "S", "body": "B"],
                    headers: stack.serviceAuth
                )
            }
            _ = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "push0", "name": "P", "channel": "push", "title": "T", "body": "B"],
                headers: stack.serviceAuth
            )
            // Three and the platform's own notify.email_verification.
            let page = try await stack.call(.GET, "\(url(stack))?channel=email&limit=2", headers: stack.serviceAuth)
            #expect((page.json["meta"] as? [String: Any])?["total"] as? Int == 4)
            #expect((page.json["data"] as? [[String: Any]])?.count == 2)
            #expect(try await stack.call(.POST, "\(url(stack))mail0/archive/", headers: stack.serviceAuth).status == 200)
            #expect(try await stack.call(.GET, "\(url(stack))mail0/", headers: stack.serviceAuth).status == 404)
            #expect(try await stack.call(.GET, "\(url(stack))mail0/?version=1", headers: stack.serviceAuth).status == 200)
            let after = try await stack.call(.GET, "\(url(stack))?channel=email", headers: stack.serviceAuth)
            #expect((after.json["meta"] as? [String: Any])?["total"] as? Int == 3)
            // Restored, it is in use again, as it was.
            #expect(try await stack.call(.POST, "\(url(stack))mail0/restore/", headers: stack.serviceAuth).status == 200)
            #expect(try await stack.call(.GET, "\(url(stack))mail0/", headers: stack.serviceAuth).status == 200)
            let restored = try await stack.call(.GET, "\(url(stack))?channel=email", headers: stack.serviceAuth)
            #expect((restored.json["meta"] as? [String: Any])?["total"] as? Int == 4)
            #expect(try await stack.call(.POST, "\(url(stack))nothing-here/restore/", headers: stack.serviceAuth).status == 404)
            // The platform's own template (the verification of a new address) is edited like any, never archived or
            // made by a client.
            let reserved = try await stack.call(.POST, "\(url(stack))notify.email_verification/archive/", headers: stack.serviceAuth)
            #expect(reserved.status == 409)
            #expect(reserved.error == "TEMPLATE_RESERVED")
            #expect(try await stack.call(.GET, "\(url(stack))notify.email_verification/", headers: stack.serviceAuth).status == 200)
            let squatted = try await stack.call(
                .POST,
                url(stack),
                json: ["code": "Notify.lookalike", "name": "N", "channel": "email", "subject": "S", "body": "B"],
                headers: stack.serviceAuth
            )
            #expect(squatted.status == 400)
            #expect(squatted.details.contains { $0["field"] == "code" })
        }
    }
}
