import Foundation
import NIOHTTP1
import PostgresNIO
import Testing

/// The dashboard's self-service through the admin API: users (search, details, disable) and templates (list, versions,
/// preview, archive, restore), each forwarded to its own service with the same checks as any caller's.
@Suite("Self-service admin")
struct SelfServiceAdminTests {
    @Test("users: search, details with preferences and devices, disable (nothing accepted, no login) and enable; checked ids and scopes")
    func users() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .admin]) { stack in
            let admin = ["Authorization": "Bearer \(try await stack.createKey(scopes: ["admin"]))"]
            let base = "\(stack.url(.admin))/api/v1/admin/users/"
            let grace = try await stack.createUser(
                name: "Grace Hopper",
                email: "grace.\(UUID().uuidString.prefix(6))@navy.example",
                pushToken: "grace-fcm-token-1"
            )
            _ = try await stack.createUser(name: "Ada Lovelace")
            let found = try await stack.call(.GET, "\(base)?search=HOPPER", headers: admin)
            #expect(found.status == 200, "\(found.json)")
            #expect((found.json["data"] as? [[String: Any]])?.map { $0["user_id"] as? String } == [grace])
            #expect((found.json["meta"] as? [String: Any])?["total"] as? Int == 1)
            let wildcard = try await stack.call(.GET, "\(base)?search=%25", headers: admin)
            #expect((wildcard.json["data"] as? [[String: Any]])?.isEmpty == true, "LIKE wildcards are taken literally")

            let details = try await stack.call(.GET, "\(base)\(grace)/", headers: admin)
            #expect(details.status == 200, "\(details.json)")
            #expect((details.data["user"] as? [String: Any])?["name"] as? String == "Grace Hopper")
            #expect((details.data["preferences"] as? [String: Any])?["email"] as? Bool == true)
            #expect((details.data["devices"] as? [[String: Any]])?.first?["token"] as? String == "grace-fcm-token-1")
            #expect(try await stack.call(.GET, "\(base)not-a-uuid/", headers: admin).status == 404)
            #expect(try await stack.call(.GET, "\(base)\(UUID().uuidString)/", headers: admin).status == 404)
            #expect(try await stack.call(.GET, base, headers: stack.clientAuth).status == 403)

            try await stack.createTemplate(["code": "hello", "name": "Hello", "channel": "email", "subject": "S", "body": "B"])
            let disabled = try await stack.call(.POST, "\(base)\(grace)/disable/", headers: admin)
            #expect(disabled.status == 200, "\(disabled.json)")
            #expect(disabled.data["disabled"] as? Bool == true)
            let refused = try await stack.send(["notification_type": "email", "user_id": grace, "template_code": "hello", "request_id": "d-1"])
            #expect(refused.status == 422)
            #expect(refused.json["error"] as? String == "USER_DISABLED")
            let email = try #require((details.data["user"] as? [String: Any])?["email"] as? String)
            let login = try await stack.call(
                .POST,
                "\(stack.url(.users))/api/v1/users/login/",
                json: ["email": email, "password": "correct horse battery"]
            )
            #expect(login.status == 401, "a disabled user cannot log in")
            let enabled = try await stack.call(.POST, "\(base)\(grace)/enable/", headers: admin)
            #expect(enabled.data["disabled"] as? Bool == false)
            let accepted = try await stack.send(["notification_type": "email", "user_id": grace, "template_code": "hello", "request_id": "d-2"])
            #expect(accepted.status == 202, "\(accepted.json)")
        }
    }

    @Test("templates: list, versions, preview with variables, archive and restore; bad codes and channels refused")
    func templates() async throws {
        try await Stack.with(services: [.users, .templates, .admin]) { stack in
            let admin = ["Authorization": "Bearer \(try await stack.createKey(scopes: ["admin"]))"]
            let base = "\(stack.url(.admin))/api/v1/admin/templates/"
            try await stack.createTemplate([
                "code": "promo", "name": "Promo", "channel": "email", "subject": "Hi {{name}}", "body": "Offer for {{name}}",
            ])
            let list = try await stack.call(.GET, "\(base)?channel=email", headers: admin)
            #expect(list.status == 200, "\(list.json)")
            #expect((list.json["data"] as? [[String: Any]])?.contains { $0["code"] as? String == "promo" } == true)
            let versions = try await stack.call(.GET, "\(base)promo/versions/?channel=email", headers: admin)
            #expect(versions.status == 200)
            #expect((versions.json["data"] as? [[String: Any]])?.count == 1)
            let preview = try await stack.call(.POST, "\(base)promo/render/?channel=email", json: ["variables": ["name": "Ada"]], headers: admin)
            #expect(preview.status == 200, "\(preview.json)")
            #expect(preview.data["subject"] as? String == "Hi Ada")
            let missing = try await stack.call(.POST, "\(base)promo/render/?channel=email", json: ["variables": [:] as [String: Any]], headers: admin)
            #expect(missing.status == 422, "the template service's own answer: \(missing.json)")

            #expect(try await stack.call(.POST, "\(base)promo/archive/?channel=email", headers: admin).status == 200)
            let archived = try await stack.call(.GET, "\(base)?archived=true", headers: admin)
            #expect((archived.json["data"] as? [[String: Any]])?.map { $0["code"] as? String } == ["promo"], "\(archived.json)")
            let active = try await stack.call(.GET, "\(base)?channel=email", headers: admin)
            #expect((active.json["data"] as? [[String: Any]])?.contains { $0["code"] as? String == "promo" } == false)
            #expect(try await stack.call(.POST, "\(base)promo/restore/?channel=email", headers: admin).status == 200)
            let back = try await stack.call(.GET, "\(base)?channel=email", headers: admin)
            #expect((back.json["data"] as? [[String: Any]])?.contains { $0["code"] as? String == "promo" } == true)

            #expect(try await stack.call(.POST, "\(base)..%2F..%2Fusers/archive/", headers: admin).status == 404)
            #expect(try await stack.call(.GET, "\(base)promo/versions/?channel=fax", headers: admin).status == 400)
            #expect(try await stack.call(.GET, "\(base)?archived=maybe", headers: admin).status == 400)
        }
    }
}
