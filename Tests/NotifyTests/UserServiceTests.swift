import Foundation
import NIOHTTP1
import NotifyConfig
import PostgresAccess
import PostgresNIO
import RedisCache
import Testing

@testable import Credentials

/// The user service against real PostgreSQL and Redis: every endpoint, with its error paths.
@Suite("User service", .serialized)
struct UserServiceTests {
    func users(_ stack: some ServiceClient) -> String { "\(stack.url(.users))/api/v1/users" }

    func login(_ stack: some ServiceClient, _ email: String, _ password: String = "correct horse battery") async throws -> Stack.Reply {
        try await stack.call(.POST, "\(users(stack))/login/", json: ["email": email, "password": password])
    }

    @Test("registration: 201 without the password; duplicate email 409; bad fields 400 with details; no credential 401")
    func registration() async throws {
        try await RouterHarness.with(.users) { stack in
            let body: [String: Any] = [
                "name": "Ada", "email": "Ada@Example.com", "password": "correct horse battery", "push_token": "fcm-token-123456",
                "preferences": ["email": true, "push": false],
            ]
            let created = try await stack.call(.POST, "\(users(stack))/", json: body, headers: stack.serviceAuth)
            #expect(created.status == 201)
            #expect(created.data["password"] == nil && created.data["password_hash"] == nil)
            #expect((created.data["preferences"] as? [String: Bool]) == ["email": true, "push": false, "sms": true])
            #expect(created.data["push_token"] as? String == "fcm-token-123456")

            var duplicate = body
            duplicate["email"] = "ada@example.com"
            let conflict = try await stack.call(.POST, "\(users(stack))/", json: duplicate, headers: stack.serviceAuth)
            #expect(conflict.status == 409)
            #expect(conflict.error == "EMAIL_TAKEN")

            let bad = try await stack.call(
                .POST,
                "\(users(stack))/",
                json: ["name": "", "email": "not-an-email", "password": "short", "preferences": ["email": "yes"]],
                headers: stack.serviceAuth
            )
            #expect(bad.status == 400)
            #expect(Set(bad.details.compactMap { $0["field"] }) == ["name", "email", "password", "preferences.email"])
            let weak = try await stack.call(
                .POST,
                "\(users(stack))/",
                json: ["name": "B", "email": "b@example.com", "password": "onlyletters"],
                headers: stack.serviceAuth
            )
            #expect(weak.details.first?["field"] == "password")

            let anonymous = try await stack.call(.POST, "\(users(stack))/", json: body)
            #expect(anonymous.status == 401)
            #expect(anonymous.error == "UNAUTHORIZED")
        }
    }

    @Test("login issues a bearer JWT that reaches only the user's own record; refresh gives a new one; wrong password 401")
    func loginAndTokens() async throws {
        try await RouterHarness.with(.users) { stack in
            let ada = try await stack.createUser(email: "ada@example.com")
            let bob = try await stack.createUser(email: "bob@example.com")
            let wrong = try await login(stack, "ada@example.com", "wrong password 1")
            #expect(wrong.status == 401)
            #expect(wrong.error == "INVALID_CREDENTIALS")
            let nobody = try await login(stack, "nobody@example.com")
            #expect(nobody.status == 401)

            let ok = try await login(stack, "ADA@example.com")
            #expect(ok.status == 200)
            #expect(ok.data["token_type"] as? String == "bearer")
            #expect(ok.data["expires_in"] as? Int == 3600)
            let token = try #require(ok.data["access_token"] as? String)
            let auth = ["Authorization": "Bearer \(token)"]
            #expect(try await stack.call(.GET, "\(users(stack))/\(ada)/", headers: auth).status == 200)
            let other = try await stack.call(.GET, "\(users(stack))/\(bob)/", headers: auth)
            #expect(other.status == 403)
            #expect(other.error == "FORBIDDEN")
            #expect(try await stack.call(.GET, "\(users(stack))/", headers: auth).status == 403, "a user cannot list users")

            let refreshed = try await stack.call(.POST, "\(users(stack))/token/refresh/", headers: auth)
            #expect(refreshed.status == 200)
            #expect(refreshed.data["access_token"] is String)
            let forged = try await stack.call(.GET, "\(users(stack))/\(ada)/", headers: ["Authorization": "Bearer \(token.dropLast(2))xx"])
            #expect(forged.status == 401)
        }
    }

    @Test(
        "changing the email or password needs the current password; tokens issued before a change or a logout are 401; refresh has an absolute limit"
    )
    func reauthenticationAndRevocation() async throws {
        try await RouterHarness.with(.users, extra: ["NOTIFY_JWT_SESSION_MAX_SECONDS": "3"]) { stack in
            let ada = try await stack.createUser(email: "ada@example.com")
            func token(_ email: String, _ password: String = "correct horse battery") async throws -> [String: String] {
                let reply = try await login(stack, email, password)
                return ["Authorization": "Bearer \(try #require(reply.data["access_token"] as? String, "\(reply.json)"))"]
            }
            let me = "\(users(stack))/\(ada)/"
            let first = try await token("ada@example.com")
            // Without, or with a wrong, current password: refused, nothing changed.
            let bare = try await stack.call(.PATCH, me, json: ["email": "mallory@example.com"], headers: first)
            #expect(bare.status == 403)
            #expect(bare.error == "REAUTHENTICATION_REQUIRED")
            let wrong = try await stack.call(
                .PATCH,
                me,
                json: ["password": "new horse battery 2", "current_password": "guess guess 1"],
                headers: first
            )
            #expect(wrong.status == 401)
            #expect(try await stack.call(.GET, me, headers: first).data["email"] as? String == "ada@example.com")
            // Other fields need no password; the token keeps working.
            #expect(try await stack.call(.PATCH, me, json: ["name": "Ada L."], headers: first).status == 200)
            #expect(try await stack.call(.GET, me, headers: first).status == 200)

            let second = try await token("ada@example.com")
            let changed = try await stack.call(
                .PATCH,
                me,
                json: ["password": "new horse battery 2", "current_password": "correct horse battery"],
                headers: first
            )
            #expect(changed.status == 200)
            #expect(try await stack.call(.GET, me, headers: first).status == 401, "issued before the password change")
            #expect(try await stack.call(.GET, me, headers: second).status == 401, "every earlier token")
            #expect(try await login(stack, "ada@example.com").status == 401)
            let third = try await token("ada@example.com", "new horse battery 2")
            #expect(try await stack.call(.GET, me, headers: third).status == 200)

            // A service that has verified the new address changes it for the user (no password, no verification mail);
            // the user's tokens stop working.
            let vouched = try await stack.call(.PATCH, me, json: ["email": "ada2@example.com", "email_verified": true], headers: stack.serviceAuth)
            #expect(vouched.status == 200)
            #expect(vouched.data["email"] as? String == "ada2@example.com")
            #expect(try await stack.call(.GET, me, headers: third).status == 401, "issued before the email change")

            // Logout ends every session; refresh is refused with a revoked token.
            let fourth = try await token("ada2@example.com", "new horse battery 2")
            #expect(try await stack.call(.POST, "\(users(stack))/logout/", headers: fourth).status == 200)
            #expect(try await stack.call(.GET, me, headers: fourth).status == 401)
            #expect(try await stack.call(.POST, "\(users(stack))/token/refresh/", headers: fourth).status == 401)

            // Refresh works within the session's absolute limit (3 s here), then says to log in again.
            let fifth = try await token("ada2@example.com", "new horse battery 2")
            #expect(try await stack.call(.POST, "\(users(stack))/token/refresh/", headers: fifth).status == 200)
            let expired = try await eventually("the session passes its limit", timeout: .seconds(30)) { () -> Stack.Reply? in
                let reply = try await stack.call(.POST, "\(users(stack))/token/refresh/", headers: fifth)
                return reply.status == 401 ? reply : nil
            }
            #expect(expired.error == "SESSION_EXPIRED")
        }
    }

    @Test("a new email is used only once verified: the token goes to the new address through the platform, works once, expires; no enumeration")
    func emailVerification() async throws {
        try await Stack.with { stack in
            let old = "ada.\(stack.infra.runID)@example.com"
            let new = "ada.new.\(stack.infra.runID)@example.com"
            let ada = try await stack.createUser(email: old, emailEnabled: false)
            let me = "\(users(stack))/\(ada)/"
            let session = ["Authorization": "Bearer \(try #require(try await login(stack, old).data["access_token"] as? String))"]
            let contactEmail = { @Sendable () async throws -> String? in
                try await stack.call(.GET, "\(me)contact/", headers: stack.serviceAuth).data["email"] as? String
            }

            /// The verification mail sent to `address` (the newest), found through the notification that carries it.
            func verificationMail(to address: String, after earlier: Set<String> = []) async throws -> (id: String, token: String) {
                let id = try await eventually("a verification notification to \(address)") { () -> String? in
                    try await stack.infra.withDatabase(.notifications) { client in
                        for try await id in try await client.query(
                            "SELECT id::text FROM notifications WHERE deliver_to = \(address) ORDER BY created_at DESC LIMIT 1",
                            logger: TestInfrastructure.logger
                        ).decode(String.self) where !earlier.contains(id) { return id }
                        return nil
                    }
                }
                let mail = try await stack.waitForEmail(id)
                #expect(mail.header("To")?.contains(address) == true)
                #expect(mail.subject == "Confirm your new email address")
                let text = try #require(mail.text)
                let token = try #require(
                    text.split(whereSeparator: \.isWhitespace).map(String.init).first { word in
                        word.count == 43 && word.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }
                    },
                    "a token in: \(text)"
                )
                return (id, token)
            }

            // With the current password the change is accepted, but the address in use stays until it is confirmed.
            let asked = try await stack.call(.PATCH, me, json: ["email": new, "current_password": "correct horse battery"], headers: session)
            #expect(asked.status == 200, "\(asked.json)")
            #expect(asked.data["email"] as? String == old)
            #expect(asked.data["pending_email"] as? String == new)
            #expect(try await contactEmail() == old)
            // Sent although the user turned email off: the user asked for it. Delivered to the new address only.
            let (firstID, firstToken) = try await verificationMail(to: new)
            #expect(try await stack.call(.GET, me, headers: session).status == 200, "nothing changed yet")
            let verify = "\(users(stack))/verify-email/"

            // A newer request replaces the token; the replaced one no longer works.
            _ = try await stack.call(.PATCH, me, json: ["email": new, "current_password": "correct horse battery"], headers: session)
            let (_, token) = try await verificationMail(to: new, after: [firstID])
            #expect(token != firstToken)
            let replaced = try await stack.call(.POST, verify, json: ["token": firstToken])
            #expect(replaced.status == 400)
            #expect(replaced.error == "INVALID_VERIFICATION_TOKEN")
            #expect(try await stack.call(.POST, verify, json: ["token": "not-a-token"]).error == "INVALID_VERIFICATION_TOKEN")

            let confirmed = try await stack.call(.POST, verify, json: ["token": token])
            #expect(confirmed.status == 200, "\(confirmed.json)")
            #expect(confirmed.data["email"] as? String == new)
            #expect(confirmed.data["pending_email"] == nil)
            #expect(try await contactEmail() == new)
            #expect(try await stack.call(.POST, verify, json: ["token": token]).status == 400, "single use")
            #expect(try await stack.call(.GET, me, headers: session).status == 401, "tokens from before the change stop working")
            #expect(try await login(stack, new).status == 200)

            // Another user asking for an address that is taken learns nothing from the answer; the mailbox's owner
            // gets the token, and confirming is refused without changing anything.
            let bobEmail = "bob.\(stack.infra.runID)@example.com"
            let bob = try await stack.createUser(email: bobEmail)
            let bobSession = ["Authorization": "Bearer \(try #require(try await login(stack, bobEmail).data["access_token"] as? String))"]
            let grab = try await stack.call(
                .PATCH,
                "\(users(stack))/\(bob)/",
                json: ["email": new.uppercased(), "current_password": "correct horse battery"],
                headers: bobSession
            )
            #expect(grab.status == 200, "no EMAIL_TAKEN to a user's token: \(grab.json)")
            let (_, grabToken) = try await verificationMail(to: new.uppercased())
            let taken = try await stack.call(.POST, verify, json: ["token": grabToken])
            #expect(taken.status == 409)
            #expect(taken.error == "EMAIL_TAKEN")
            #expect(try await stack.call(.GET, "\(users(stack))/\(bob)/", headers: stack.serviceAuth).data["email"] as? String == bobEmail)

            // An expired token does not work (the clock is moved in the database rather than waited for).
            _ = try await stack.call(
                .PATCH,
                "\(users(stack))/\(bob)/",
                json: ["email": "bob2.\(stack.infra.runID)@example.com"],
                headers: stack.serviceAuth
            )
            let (_, expiring) = try await verificationMail(to: "bob2.\(stack.infra.runID)@example.com")
            try await stack.infra.withDatabase(.users) { client in
                _ = try await client.query(
                    "UPDATE users SET email_verification_expires_at = now() - interval '1 second' WHERE id = \(UUID(uuidString: bob)!)",
                    logger: TestInfrastructure.logger
                )
            }
            #expect(try await stack.call(.POST, verify, json: ["token": expiring]).error == "INVALID_VERIFICATION_TOKEN")

            // Only a service vouches for an address; only the platform's services name where a notification goes.
            let selfVouched = try await stack.call(
                .PATCH,
                "\(users(stack))/\(bob)/",
                json: ["email": "bob3@example.com", "email_verified": true, "current_password": "correct horse battery"],
                headers: bobSession
            )
            #expect(selfVouched.status == 400)
            try await stack.createTemplate(["code": "plain", "name": "Plain", "channel": "email", "subject": "S", "body": "B"])
            let redirected = try await stack.send([
                "notification_type": "email", "user_id": bob, "template_code": "plain", "request_id": "redirect-\(bob)",
                "deliver_to": ["email": "mallory@example.com"],
            ])
            #expect(redirected.status == 403, "a client key cannot redirect mail: \(redirected.json)")
            // Even the service key names an address only for one email, never in bulk.
            let gateway = "\(stack.url(.gateway))/api/v1/notifications/"
            let pushTo = try await stack.call(
                .POST,
                gateway,
                json: [
                    "notification_type": "push", "user_id": bob, "template_code": "plain", "request_id": "redirect-push-\(bob)",
                    "deliver_to": ["email": "mallory@example.com"],
                ],
                headers: stack.serviceAuth
            )
            #expect(pushTo.status == 400)
            #expect(pushTo.details.contains { $0["field"] == "deliver_to" })
            let bulk = try await stack.call(
                .POST,
                "\(gateway)bulk/",
                json: [
                    "notifications": [
                        [
                            "notification_type": "email", "user_id": bob, "template_code": "plain", "request_id": "redirect-bulk-\(bob)",
                            "deliver_to": ["email": "mallory@example.com"],
                        ]
                    ]
                ],
                headers: stack.serviceAuth
            )
            let item = try #require((bulk.data["results"] as? [[String: Any]])?.first, "\(bulk.json)")
            #expect(item["error"] as? String == "VALIDATION_ERROR", "\(bulk.json)")
        }
    }

    @Test("email changes past the gateway's per-user limit: 429 with Retry-After, nothing changed (not a 503)")
    func emailChangeRateLimited() async throws {
        try await Stack.with(
            services: [.users, .templates, .gateway],
            extra: ["NOTIFY_RATE_LIMIT_PER_USER": "2/m", "NOTIFY_RATE_LIMIT_USER_BURST": "2"]
        ) { stack in
            let old = "eve.\(stack.infra.runID)@example.com"
            let eve = try await stack.createUser(email: old)
            let me = "\(users(stack))/\(eve)/"
            let session = ["Authorization": "Bearer \(try #require(try await login(stack, old).data["access_token"] as? String))"]
            func change(_ n: Int) async throws -> Stack.Reply {
                try await stack.call(
                    .PATCH,
                    me,
                    json: ["email": "eve.\(n).\(stack.infra.runID)@example.com", "current_password": "correct horse battery"],
                    headers: session
                )
            }
            #expect(try await change(1).status == 200)
            #expect(try await change(2).status == 200)
            let refused = try await change(3)
            #expect(refused.status == 429, "\(refused.json)")
            #expect(refused.json["error"] as? String == "RATE_LIMITED")
            #expect(Int(refused.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
            let shown = try await stack.call(.GET, me, headers: stack.serviceAuth)
            #expect(shown.data["email"] as? String == old)
            #expect(shown.data["pending_email"] as? String == "eve.2.\(stack.infra.runID)@example.com", "the refused change left no trace")
        }
    }

    @Test("list is paginated with meta; get, the short form, update and delete work, and delete leaves no personal data")
    func crud() async throws {
        try await RouterHarness.with(.users) { stack in
            var ids: [String] = []
            for index in 0..<5 { ids.append(try await stack.createUser(name: "User \(index)")) }
            let page = try await stack.call(.GET, "\(users(stack))/?page=2&limit=2", headers: stack.serviceAuth)
            #expect(page.status == 200)
            let meta = try #require(page.json["meta"] as? [String: Any])
            #expect(meta["total"] as? Int == 5)
            #expect(meta["total_pages"] as? Int == 3)
            #expect(meta["has_next"] as? Bool == true)
            #expect(meta["has_previous"] as? Bool == true)
            #expect((page.json["data"] as? [[String: Any]])?.count == 2)
            let badPage = try await stack.call(.GET, "\(users(stack))/?limit=1000", headers: stack.serviceAuth)
            #expect(badPage.status == 400)
            // Deep OFFSET pages are refused instead of scanned.
            #expect(try await stack.call(.GET, "\(users(stack))/?page=100&limit=100", headers: stack.serviceAuth).status == 200)
            let deep = try await stack.call(.GET, "\(users(stack))/?page=101&limit=100", headers: stack.serviceAuth)
            #expect(deep.status == 400)
            #expect(deep.details.first?["field"] == "page")
            #expect(try await stack.call(.GET, "\(users(stack))/?page=1000000&limit=20", headers: stack.serviceAuth).status == 400)

            let short = try await stack.call(.GET, "\(stack.url(.users))/users/\(ids[0])", headers: stack.serviceAuth)
            #expect(short.status == 200)
            #expect(short.data["name"] as? String == "User 0")

            let patched = try await stack.call(
                .PATCH,
                "\(users(stack))/\(ids[0])/",
                json: ["name": "Renamed", "preferences": ["email": false]],
                headers: stack.serviceAuth
            )
            #expect(patched.status == 200)
            #expect(patched.data["name"] as? String == "Renamed")
            let read = try await stack.call(.GET, "\(users(stack))/\(ids[0])/", headers: stack.serviceAuth)
            #expect(read.data["name"] as? String == "Renamed", "the write is visible through the cache")
            #expect((read.data["preferences"] as? [String: Bool])?["email"] == false)
            let unknownField = try await stack.call(.PATCH, "\(users(stack))/\(ids[0])/", json: ["role": "admin"], headers: stack.serviceAuth)
            #expect(unknownField.status == 400)

            #expect(try await stack.call(.DELETE, "\(users(stack))/\(ids[0])/", headers: stack.serviceAuth).status == 200)
            let gone = try await stack.call(.GET, "\(users(stack))/\(ids[0])/", headers: stack.serviceAuth)
            #expect(gone.status == 404)
            #expect(gone.error == "USER_NOT_FOUND")
            let deleted = try #require(UUID(uuidString: ids[0]))
            let rows = try await stack.infra.withDatabase(.users) { client in
                var count = 0
                for try await n in try await client.query(
                    "SELECT (SELECT count(*) FROM users WHERE id = \(deleted))::int + (SELECT count(*) FROM devices WHERE user_id = \(deleted))::int",
                    logger: TestInfrastructure.logger
                ).decode(Int.self) { count = n }
                return count
            }
            #expect(rows == 0)
            #expect(try await stack.call(.GET, "\(users(stack))/\(UUID())/", headers: stack.serviceAuth).status == 404)
        }
    }

    @Test("preferences per channel and per category round-trip")
    func preferences() async throws {
        try await RouterHarness.with(.users) { stack in
            let id = try await stack.createUser()
            let put = try await stack.call(
                .PUT,
                "\(users(stack))/\(id)/preferences/",
                json: ["push": false, "categories": ["marketing": ["email": false]]],
                headers: stack.serviceAuth
            )
            #expect(put.status == 200)
            let got = try await stack.call(.GET, "\(users(stack))/\(id)/preferences/", headers: stack.serviceAuth)
            #expect(got.data["email"] as? Bool == true)
            #expect(got.data["push"] as? Bool == false)
            #expect((got.data["categories"] as? [String: [String: Bool]]) == ["marketing": ["email": false]])
            let bad = try await stack.call(
                .PUT,
                "\(users(stack))/\(id)/preferences/",
                json: ["categories": ["marketing": ["fax": true]]],
                headers: stack.serviceAuth
            )
            #expect(bad.status == 400)
        }
    }

    @Test("devices: several per user, validated per platform, deduplicated, removable, deactivatable; contact lists the active ones")
    func devices() async throws {
        try await RouterHarness.with(.users) { stack in
            let id = try await stack.createUser(pushToken: "first-fcm-token-0001")
            let url = "\(users(stack))/\(id)/devices/"
            let apns = try await stack.call(
                .POST,
                url,
                json: ["platform": "apns", "token": String(repeating: "ab", count: 32)],
                headers: stack.serviceAuth
            )
            #expect(apns.status == 201)
            let p256dh = "BN" + String(repeating: "A", count: 85)  // 87 base64url chars = 65 bytes starting 0x04
            let web = try await stack.call(
                .POST,
                url,
                json: [
                    "platform": "webpush", "endpoint": "https://fcm.googleapis.com/fcm/send/abc",
                    "keys": ["p256dh": p256dh, "auth": "AAAAAAAAAAAAAAAAAAAAAA"],
                ],
                headers: stack.serviceAuth
            )
            #expect(web.status == 201, "\(web.json)")
            let again = try await stack.call(
                .POST,
                url,
                json: ["platform": "apns", "token": String(repeating: "ab", count: 32)],
                headers: stack.serviceAuth
            )
            #expect(again.status == 200)
            #expect(again.data["device_id"] as? String == apns.data["device_id"] as? String)

            let badAPNs = try await stack.call(.POST, url, json: ["platform": "apns", "token": "xyz"], headers: stack.serviceAuth)
            #expect(badAPNs.status == 400)
            #expect(badAPNs.details.first?["field"] == "token")
            let badWeb = try await stack.call(
                .POST,
                url,
                json: ["platform": "webpush", "endpoint": "http://insecure.example.com", "keys": ["p256dh": "x", "auth": "y"]],
                headers: stack.serviceAuth
            )
            #expect(Set(badWeb.details.compactMap { $0["field"] }) == ["endpoint", "keys.p256dh", "keys.auth"])
            let badPlatform = try await stack.call(.POST, url, json: ["platform": "sms", "token": "abc"], headers: stack.serviceAuth)
            #expect(badPlatform.status == 400)

            let list = try await stack.call(.GET, url, headers: stack.serviceAuth)
            #expect((list.json["data"] as? [[String: Any]])?.count == 3)

            let webID = try #require(web.data["device_id"] as? String)
            let deactivated = try await stack.call(.POST, "\(url)\(webID)/deactivate/", json: ["reason": "410 Gone"], headers: stack.serviceAuth)
            #expect(deactivated.status == 200)
            #expect(deactivated.data["active"] as? Bool == false)
            let apnsID = try #require(apns.data["device_id"] as? String)
            #expect(try await stack.call(.DELETE, "\(url)\(apnsID)/", headers: stack.serviceAuth).status == 200)
            #expect(try await stack.call(.DELETE, "\(url)\(apnsID)/", headers: stack.serviceAuth).status == 404)

            let contact = try await stack.call(.GET, "\(users(stack))/\(id)/contact/", headers: stack.serviceAuth)
            #expect(contact.status == 200)
            let devices = try #require(contact.data["devices"] as? [[String: Any]])
            #expect(devices.map { $0["token"] as? String } == ["first-fcm-token-0001"], "only the active devices")
            #expect((contact.data["preferences"] as? [String: Any])?["email"] as? Bool == true)
        }
    }

    @Test("push_token is the most recent active FCM device: a newer one replaces it, a rejected one is never shown, null withdraws them")
    func pushTokenIsTheLatestActiveDevice() async throws {
        try await RouterHarness.with(.users) { stack in
            let id = try await stack.createUser(pushToken: "first-fcm-token-0001")
            let user = "\(users(stack))/\(id)/"
            func shown() async throws -> Any? {
                let reply = try await stack.call(.GET, user, headers: stack.serviceAuth)
                #expect(reply.status == 200)
                return reply.data["push_token"]
            }
            #expect(try await shown() as? String == "first-fcm-token-0001")
            let newer = try await stack.call(
                .POST,
                "\(user)devices/",
                json: ["platform": "fcm", "token": "second-fcm-token-0002"],
                headers: stack.serviceAuth
            )
            #expect(newer.status == 201)
            // An APNs device is not an FCM token: it does not change push_token.
            let apns = try await stack.call(
                .POST,
                "\(user)devices/",
                json: ["platform": "apns", "token": String(repeating: "cd", count: 32)],
                headers: stack.serviceAuth
            )
            #expect(apns.status == 201)
            #expect(try await shown() as? String == "second-fcm-token-0002", "the newer registration, read through the cache")
            let newerID = try #require(newer.data["device_id"] as? String)
            let rejected = try await stack.call(
                .POST,
                "\(user)devices/\(newerID)/deactivate/",
                json: ["reason": "UNREGISTERED"],
                headers: stack.serviceAuth
            )
            #expect(rejected.status == 200)
            #expect(try await shown() as? String == "first-fcm-token-0001", "the provider rejected the newer one")
            let withdrawn = try await stack.call(.PATCH, user, json: ["push_token": NSNull()], headers: stack.serviceAuth)
            #expect(withdrawn.status == 200)
            #expect(withdrawn.data["push_token"] is NSNull)
            #expect(try await shown() is NSNull)
            let devices = try await stack.call(.GET, "\(user)devices/", headers: stack.serviceAuth)
            let active = (devices.json["data"] as? [[String: Any]] ?? []).filter { $0["active"] as? Bool == true }
            #expect(active.map { $0["platform"] as? String } == ["apns"], "null withdrew the FCM tokens only")
            let patched = try await stack.call(.PATCH, user, json: ["push_token": "third-fcm-token-0003"], headers: stack.serviceAuth)
            #expect(patched.data["push_token"] as? String == "third-fcm-token-0003")
            #expect(try await shown() as? String == "third-fcm-token-0003")
        }
    }

    @Test(
        "Web Push endpoints at internal addresses, on other ports or off the push-service allow-list are 400; a user holds at most N active devices"
    )
    func hostileDevices() async throws {
        try await RouterHarness.with(.users, extra: ["NOTIFY_WEBPUSH_ALLOW_LOOPBACK": "false", "NOTIFY_MAX_DEVICES_PER_USER": "3"]) { stack in
            let id = try await stack.createUser()
            let url = "\(users(stack))/\(id)/devices/"
            let keys = ["p256dh": "BN" + String(repeating: "A", count: 85), "auth": "AAAAAAAAAAAAAAAAAAAAAA"]
            for endpoint in [
                "https://169.254.169.254/latest/meta-data/", "https://10.0.0.1/", "https://172.16.0.1/", "https://192.168.0.10/",
                "https://100.64.0.1/", "https://127.0.0.1:15672/", "https://[::1]:6379/", "https://[fd00::1]/", "https://[fe80::1]/",
                "https://224.0.0.1/", "https://0.0.0.0/", "https://[::ffff:127.0.0.1]/", "https://2130706433/", "https://localhost/",
                "https://metadata.google.internal/computeMetadata/v1/", "http://127.0.0.1:8080/", "https://fcm.googleapis.com:444/x",
                "https://attacker.example.com/x",
            ] {
                let reply = try await stack.call(
                    .POST,
                    url,
                    json: ["platform": "webpush", "endpoint": endpoint, "keys": keys],
                    headers: stack.serviceAuth
                )
                #expect(reply.status == 400, "\(endpoint): \(reply.json)")
                #expect(reply.json["error"] as? String == "VALIDATION_ERROR")
                #expect(reply.details.first?["field"] == "endpoint", "\(endpoint)")
            }
            #expect((try await stack.call(.GET, url, headers: stack.serviceAuth).json["data"] as? [[String: Any]])?.isEmpty == true)

            // The cap: three active devices; re-registering one of them is fine; a fourth is 409; after removing one, it fits.
            var ids: [String] = []
            for index in 0..<3 {
                let reply = try await stack.call(
                    .POST,
                    url,
                    json: ["platform": "webpush", "endpoint": "https://fcm.googleapis.com/fcm/send/device-\(index)", "keys": keys],
                    headers: stack.serviceAuth
                )
                #expect(reply.status == 201, "\(reply.json)")
                ids.append(try #require(reply.data["device_id"] as? String))
            }
            let again = try await stack.call(
                .POST,
                url,
                json: ["platform": "webpush", "endpoint": "https://fcm.googleapis.com/fcm/send/device-0", "keys": keys],
                headers: stack.serviceAuth
            )
            #expect(again.status == 200)
            let fourth = try await stack.call(.POST, url, json: ["platform": "fcm", "token": "fourth-device-token"], headers: stack.serviceAuth)
            #expect(fourth.status == 409)
            #expect(fourth.json["error"] as? String == "DEVICE_LIMIT_REACHED")
            #expect(try await stack.call(.DELETE, "\(url)\(ids[1])/", headers: stack.serviceAuth).status == 200)
            #expect(
                try await stack.call(.POST, url, json: ["platform": "fcm", "token": "fourth-device-token"], headers: stack.serviceAuth).status == 201
            )
        }
    }

    @Test("contact lookups are cached in Redis and a write is visible to the next read")
    func contactCache() async throws {
        try await RouterHarness.with(.users) { stack in
            let id = try await stack.createUser(pushToken: "cache-fcm-token-01")
            let contactURL = "\(users(stack))/\(id)/contact/"
            let key = "\(stack.infra.redis.keyPrefix)contact:\(id)"
            let redis = RedisClient(host: stack.infra.redis.host, port: stack.infra.redis.port, timeoutMilliseconds: 5000)
            // A read fills the cache (on a loaded machine a read whose write to Redis timed out leaves it to the next).
            let cached = try await eventually("the contact cached") { () -> String? in
                #expect(try await stack.call(.GET, contactURL, headers: stack.serviceAuth).status == 200)
                return try await redis.get(key)
            }
            #expect(cached.contains("cache-fcm-token-01"))
            let put = try await stack.call(.PUT, "\(users(stack))/\(id)/preferences/", json: ["email": false], headers: stack.serviceAuth)
            #expect(put.status == 200)
            let second = try await stack.call(.GET, contactURL, headers: stack.serviceAuth)
            #expect((second.data["preferences"] as? [String: Any])?["email"] as? Bool == false, "the write is visible to the next read")
            // The write's invalidation removes the old entry: Redis then holds nothing or the new contact. (A DEL that
            // timed out on a loaded machine is retried in the background, and reads skip Redis until it lands.)
            _ = try await eventually("the old entry gone from Redis") { () -> Bool? in
                guard let entry = try await redis.get(key) else { return true }
                let object = try JSONSerialization.jsonObject(with: Data(entry.utf8)) as? [String: Any]
                return (object?["preferences"] as? [String: Any])?["email"] as? Bool == false ? true : nil
            }
        }
    }

    @Test("contacts of many users in one call: the same data as one by one, unknown ids listed, cached, writes visible, validated")
    func contactsInOneCall() async throws {
        try await RouterHarness.with(.users) { stack in
            let ada = try await stack.createUser(name: "Ada", email: "ada@example.com", pushToken: "many-fcm-token-0001")
            let bob = try await stack.createUser(name: "Bob")
            let categories: [String: Any] = ["categories": ["marketing": ["email": false]]]
            #expect(try await stack.setPreferences(bob, categories).status == 200)
            let unknown = UUID().uuidString.lowercased()
            let contactsURL = "\(users(stack))/contacts/"
            let reply = try await stack.call(.POST, contactsURL, json: ["user_ids": [ada, unknown, bob, ada]], headers: stack.serviceAuth)
            #expect(reply.status == 200)
            let contacts = try #require(reply.data["contacts"] as? [[String: Any]])
            #expect(contacts.map { $0["user_id"] as? String } == [ada, bob], "in the order asked, each once")
            #expect(reply.data["missing"] as? [String] == [unknown])
            // Each is what the single lookup answers.
            for (id, contact) in zip([ada, bob], contacts) {
                let one = try await stack.call(.GET, "\(users(stack))/\(id)/contact/", headers: stack.serviceAuth)
                // Compared as canonical JSON (NSDictionary equality of parsed booleans is unreliable on Linux).
                func canonical(_ object: [String: Any]) throws -> String {
                    String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self)
                }
                #expect(try canonical(one.data) == canonical(contact), "\(id)")
            }
            #expect((contacts[0]["devices"] as? [[String: Any]])?.map { $0["token"] as? String } == ["many-fcm-token-0001"])
            let bobCategories = (contacts[1]["preferences"] as? [String: Any])?["categories"] as? [String: [String: Bool]]
            #expect(bobCategories == ["marketing": ["email": false]])

            // Both were cached in Redis; a write is visible to the next call.
            let redis = RedisClient(host: stack.infra.redis.host, port: stack.infra.redis.port, timeoutMilliseconds: 5000)
            _ = try await eventually("both contacts cached") { () -> Bool? in
                let keys = try await stack.redisKeys(matching: "contact:*")
                if keys.count == 2 { return true }
                _ = try await stack.call(.POST, contactsURL, json: ["user_ids": [ada, bob]], headers: stack.serviceAuth)
                return nil
            }
            #expect(try await redis.get("\(stack.infra.redis.keyPrefix)contact:\(ada)")?.contains("many-fcm-token-0001") == true)
            #expect(try await stack.setPreferences(ada, ["email": false]).status == 200)
            let after = try await stack.call(.POST, contactsURL, json: ["user_ids": [ada]], headers: stack.serviceAuth)
            let adaAfter = try #require((after.data["contacts"] as? [[String: Any]])?.first)
            #expect((adaAfter["preferences"] as? [String: Any])?["email"] as? Bool == false)

            // Bad input: every bad id named; empty, too many, or no list at all.
            let bad = try await stack.call(.POST, contactsURL, json: ["user_ids": [ada, "nope", 7]], headers: stack.serviceAuth)
            #expect(bad.status == 400)
            #expect(bad.error == "VALIDATION_ERROR")
            #expect(bad.details.map { $0["field"] } == ["user_ids[1]", "user_ids[2]"])
            for body: [String: Any] in [["user_ids": []], ["user_ids": Array(repeating: ada, count: 1001)], ["ids": [ada]]] {
                let refused = try await stack.call(.POST, contactsURL, json: body, headers: stack.serviceAuth)
                #expect(refused.status == 400)
                #expect(refused.error == "VALIDATION_ERROR")
            }

            // Who may ask: a users:read key yes; no credential 401; other scopes and a user's own token 403.
            let reader = try await stack.createKey(scopes: ["users:read"])
            let notifier = try await stack.createKey(scopes: ["notifications:write"])
            #expect(try await stack.call(.POST, contactsURL, json: ["user_ids": [ada]], headers: ["X-API-Key": reader]).status == 200)
            #expect(try await stack.call(.POST, contactsURL, json: ["user_ids": [ada]]).status == 401)
            #expect(try await stack.call(.POST, contactsURL, json: ["user_ids": [ada]], headers: ["X-API-Key": notifier]).status == 403)
            let token = try #require(try await login(stack, "ada@example.com").data["access_token"] as? String)
            let own = try await stack.call(.POST, contactsURL, json: ["user_ids": [ada]], headers: ["Authorization": "Bearer \(token)"])
            #expect(own.status == 403)
        }
    }

    @Test("passwords are hashed on threads of their own at a lower priority; a hash verifies, a wrong password does not")
    func passwordHashing() async throws {
        let hasher = PasswordHasher()
        let callerNiceness = currentNiceness()
        let hash = try await hasher.hash("correct horse battery", cost: 4)
        #expect(hash.hasPrefix("$2"))
        #expect(try await hasher.verify("correct horse battery", hash: hash))
        #expect(try await hasher.verify("correct horse battery!", hash: hash) == false)
        // Contact lookups must not wait behind a burst of sign-ups (deploy/local/lookup_bench.py measures it).
        #expect(try await hasher.onHashingThread { currentNiceness() } == PasswordHasher.background)
        #expect(currentNiceness() == callerNiceness, "the caller's thread keeps its priority")
        // The admin's hasher keeps the default priority: an operator's login must get through on a saturated machine.
        let admin = PasswordHasher(niceness: 0)
        #expect(try await admin.onHashingThread { currentNiceness() } == 0)
    }

    @Test("the hashing queue is bounded: beyond it a call is refused at once (Busy) instead of waiting; capacity frees as hashes finish")
    func boundedHashing() async throws {
        let hasher = PasswordHasher(threads: 1, maxPending: 2)
        // Cost 13: each check takes a good fraction of a second, so the admitted two are still running while the
        // other four are tried, however slowly the machine starts them.
        let hash = try await hasher.hash("correct horse battery", cost: 13)
        let results = await withTaskGroup(of: Result<Bool, any Error>.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    do { return .success(try await hasher.verify("correct horse battery", hash: hash)) } catch { return .failure(error) }
                }
            }
            var results: [Result<Bool, any Error>] = []
            for await result in group { results.append(result) }
            return results
        }
        let busy = results.filter { if case .failure(let error) = $0 { return error is PasswordHasher.Busy } else { return false } }.count
        let verified = results.filter { (try? $0.get()) == true }.count
        #expect(busy >= 1, "six checks at once on a queue of two: some must be refused")
        #expect(verified >= 2)
        #expect(busy + verified == 6)
        #expect(try await hasher.verify("correct horse battery", hash: hash), "once they finished, there is room again")
    }

    @Test("logins are throttled per account and per address: the N+1th attempt is 429 with Retry-After, the right password then waits too")
    func loginThrottling() async throws {
        let limits = ["NOTIFY_LOGIN_ATTEMPTS_PER_ACCOUNT": "3", "NOTIFY_LOGIN_ATTEMPTS_PER_ADDRESS": "8", "NOTIFY_LOGIN_WINDOW_SECONDS": "900"]
        // A whole process: throttling per client address needs a real connection (the router test has no address).
        try await Stack.with(services: [.users], extra: limits) { stack in
            _ = try await stack.createUser(email: "ada@example.com")
            _ = try await stack.createUser(email: "bob@example.com")
            // A success refills the account's attempts.
            #expect(try await login(stack, "ada@example.com", "wrong password 1").status == 401)
            #expect(try await login(stack, "ada@example.com", "wrong password 2").status == 401)
            #expect(try await login(stack, "ada@example.com").status == 200)
            for attempt in 1...3 {
                #expect(try await login(stack, "ada@example.com", "wrong password \(attempt)").status == 401)
            }
            let throttled = try await login(stack, "ada@example.com", "wrong password 4")
            #expect(throttled.status == 429)
            #expect(throttled.error == "RATE_LIMITED")
            let wait = Int(throttled.headers.first(name: "Retry-After") ?? "") ?? 0
            #expect(wait >= 1 && wait <= 900, "Retry-After \(wait)")
            let right = try await login(stack, "ada@example.com")
            #expect(right.status == 429, "the right password waits too")
            #expect(right.data["access_token"] == nil)
            // Eight attempts came from this address: another account is refused here as well.
            let other = try await login(stack, "bob@example.com")
            #expect(other.status == 429)
            #expect(other.error == "RATE_LIMITED")
        }
    }

    @Test("client API keys with users scopes are accepted; without them 403")
    func apiKeyScopes() async throws {
        try await RouterHarness.with(.users) { stack in
            let id = try await stack.createUser()
            let reader = try await stack.createKey(scopes: ["users:read"])
            let notifier = try await stack.createKey(scopes: ["notifications:write"])
            #expect(try await stack.call(.GET, "\(users(stack))/\(id)/", headers: ["X-API-Key": reader]).status == 200)
            #expect(try await stack.call(.PATCH, "\(users(stack))/\(id)/", json: ["name": "X"], headers: ["X-API-Key": reader]).status == 403)
            #expect(try await stack.call(.GET, "\(users(stack))/\(id)/", headers: ["X-API-Key": notifier]).status == 403)
        }
    }
}
