import AsyncHTTPClient
import Foundation
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import PostgresNIO
import Testing

/// One-click unsubscribe (RFC 8058) and the suppression list's admin API, on a running stack.
@Suite struct EmailComplianceTests {
    static let secret = "unsubscribe-secret-for-tests-0123456789abcdef"

    /// Text from a URL with an optional form body (what a mailbox provider or a browser sends).
    static func fetch(_ stack: Stack, _ method: HTTPMethod, _ url: String, form: String? = nil) async throws -> (status: Int, body: String) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let form {
            request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
            request.body = .bytes(ByteBuffer(string: form))
        }
        let response = try await stack.http.execute(request, timeout: .seconds(30))
        return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 20)))
    }

    @Test(
        "a newsletter carries a signed one-click List-Unsubscribe; POST turns the category off (idempotently), GET only asks; transactional mail has none"
    )
    func oneClickUnsubscribe() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay], extra: ["NOTIFY_UNSUBSCRIBE_SECRET": Self.secret]) { stack in
            try stack.start(
                .emailWorker,
                extra: ["NOTIFY_UNSUBSCRIBE_URL": "\(stack.url(.users))/api/v1/unsubscribe", "NOTIFY_TRANSACTIONAL_CATEGORIES": "security"]
            )
            try await stack.waitHealthy(.emailWorker)
            try await stack.createTemplate([
                "code": "news", "name": "News", "channel": "email", "category": "newsletter", "subject": "News", "body": "Hello {{name}}",
            ])
            try await stack.createTemplate([
                "code": "reset", "name": "Reset", "channel": "email", "category": "security", "subject": "Reset", "body": "Reset {{name}}",
            ])
            let user = try await stack.createUser()
            func send(_ code: String, _ requestID: String) async throws -> Stack.Reply {
                try await stack.send([
                    "notification_type": "email", "user_id": user, "template_code": code, "variables": ["name": "Ada"], "request_id": requestID,
                ])
            }
            let news = try #require(try await send("news", "news-1").data["notification_id"] as? String)
            let reset = try #require(try await send("reset", "reset-1").data["notification_id"] as? String)
            let newsletter = try await stack.waitForEmail(news)
            let transactional = try await stack.waitForEmail(reset)
            #expect(transactional.header("List-Unsubscribe") == nil)
            #expect(transactional.header("List-Unsubscribe-Post") == nil)
            #expect(newsletter.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click")
            let header = try #require(newsletter.header("List-Unsubscribe"))
            #expect(header.hasPrefix("<\(stack.url(.users))/api/v1/unsubscribe/") && header.hasSuffix(">"))
            let link = String(header.dropFirst().dropLast())

            // A link scanner's GET changes nothing: it shows a page whose button posts back.
            let page = try await Self.fetch(stack, .GET, link)
            #expect(page.status == 200)
            #expect(page.body.contains("newsletter") && page.body.contains("method=\"post\""))
            let before = try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(user)/preferences/", headers: stack.serviceAuth)
            #expect((before.data["categories"] as? [String: Any])?["newsletter"] == nil)

            // A forged or altered token does nothing.
            let token = String(link.split(separator: "/").last!)
            let forged = try await Self.fetch(
                stack,
                .POST,
                "\(stack.url(.users))/api/v1/unsubscribe/\(token.dropLast(2))xx",
                form: "List-Unsubscribe=One-Click"
            )
            #expect(forged.status == 404)

            for _ in 0..<2 {
                let done = try await Self.fetch(stack, .POST, link, form: "List-Unsubscribe=One-Click")
                #expect(done.status == 200)
                #expect(done.body.contains("unsubscribed"))
            }
            let after = try await stack.call(.GET, "\(stack.url(.users))/api/v1/users/\(user)/preferences/", headers: stack.serviceAuth)
            #expect(((after.data["categories"] as? [String: Any])?["newsletter"] as? [String: Any])?["email"] as? Bool == false)
            #expect(after.data["email"] as? Bool == true, "only the category is off")

            let refused = try await send("news", "news-2")
            #expect(refused.status == 422)
            #expect(refused.error == "CHANNEL_DISABLED")
            #expect(try await send("reset", "reset-2").status == 202)
        }
    }

    @Test("the admin API lists, adds and removes suppressions; the gateway refuses and the worker withdraws mail to a suppressed address")
    func suppressionAdmin() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay, .admin]) { stack in
            let admin = try await stack.createKey(scopes: ["admin"])
            let auth = ["Authorization": "Bearer \(admin)"]
            let base = "\(stack.url(.admin))/api/v1/admin/suppressions/"
            try await stack.createTemplate(["code": "hello", "name": "Hello", "channel": "email", "subject": "Hi", "body": "Hi {{name}}"])
            let email = "held-\(UUID().uuidString.prefix(8).lowercased())@example.test"
            let user = try await stack.createUser(email: email)
            func send(_ requestID: String) async throws -> Stack.Reply {
                try await stack.send([
                    "notification_type": "email", "user_id": user, "template_code": "hello", "variables": ["name": "Ada"], "request_id": requestID,
                ])
            }

            // Accepted while the address was fine; suppressed before any worker ran: the worker's own check withdraws it.
            let early = try #require(try await send("early").data["notification_id"] as? String)
            let added = try await stack.call(.POST, base, json: ["address": email.uppercased(), "detail": "asked by phone"], headers: auth)
            #expect(added.status == 201, "\(added.json)")
            #expect(added.data["address"] as? String == email)
            #expect(added.data["reason"] as? String == "manual")
            #expect(try await stack.call(.POST, base, json: ["address": email], headers: auth).status == 200)
            try stack.start(.emailWorker)
            try await stack.waitHealthy(.emailWorker)
            let withdrawn = try await stack.waitForStatus(early, "cancelled", timeout: .seconds(60))
            let causes = (withdrawn["history"] as? [[String: Any]] ?? []).compactMap { $0["cause"] as? String }
            #expect(causes.contains { $0.contains("suppression list (manual)") }, "\(causes)")
            #expect(ReceivedEmail.with(messageID: "\(early)@notify.local", in: stack.infra.maildir).isEmpty)

            let refused = try await send("refused")
            #expect(refused.status == 422 && refused.error == "RECIPIENT_SUPPRESSED")

            let listed = try await stack.call(.GET, "\(base)?address=HELD-&reason=manual", headers: auth)
            #expect(listed.status == 200)
            #expect((listed.json["data"] as? [[String: Any]] ?? []).map { $0["address"] as? String } == [email])
            #expect(try await stack.call(.GET, "\(base)?reason=bogus", headers: auth).status == 400)
            #expect(try await stack.call(.GET, base).status == 401)
            let client = try await stack.call(.GET, base, headers: stack.clientAuth)
            #expect(client.status == 401 || client.status == 403)

            let removed = try await stack.call(.DELETE, "\(base)\(email)", headers: auth)
            #expect(removed.status == 200)
            #expect(try await stack.call(.DELETE, "\(base)\(email)", headers: auth).error == "SUPPRESSION_NOT_FOUND")
            // A phone number (SMS) is an entry too, stored in E.164 whatever way it was written.
            let phone = try await stack.call(.POST, base, json: ["address": "+1 (415) 555-0142", "detail": "asked by phone"], headers: auth)
            #expect(phone.status == 201, "\(phone.json)")
            #expect(phone.data["address"] as? String == "+14155550142")
            #expect(try await stack.call(.GET, "\(base)+1-415-555-0142", headers: auth).data["reason"] as? String == "manual")
            let neither = try await stack.call(.POST, base, json: ["address": "call me maybe"], headers: auth)
            #expect(neither.status == 400 && neither.error == "VALIDATION_ERROR", "\(neither.json)")
            #expect(try await stack.call(.DELETE, "\(base)+14155550142", headers: auth).status == 200)
            #expect(try await stack.call(.GET, "\(base)+14155550142", headers: auth).error == "SUPPRESSION_NOT_FOUND")

            let again = try #require(try await send("after-removal").data["notification_id"] as? String)
            _ = try await stack.waitForEmail(again, timeout: .seconds(60))
        }
    }
}
