import AsyncHTTPClient
import Foundation
import NIOHTTP1
import NotifyConfig
import PostgresNIO
import Testing

/// Metrics, logs and the admin service, against the real stack.
@Suite("Operations", .serialized)
struct OperationsTests {
    /// One Prometheus sample: the value of `name` with exactly these labels (nil when absent).
    static func sample(_ text: String, _ name: String, _ labels: [String: String] = [:]) -> Double? {
        for line in text.split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " ") else { continue }
            let series = line[..<space]
            let value = Double(line[line.index(after: space)...])
            var seriesName = String(series)
            var seriesLabels: [String: String] = [:]
            if let brace = series.firstIndex(of: "{") {
                seriesName = String(series[..<brace])
                let inner = series[series.index(after: brace)..<series.index(before: series.endIndex)]
                for pair in inner.split(separator: ",") {
                    let parts = pair.split(separator: "=", maxSplits: 1)
                    if parts.count == 2 { seriesLabels[String(parts[0])] = String(parts[1]).trimmingCharacters(in: CharacterSet(charactersIn: "\"")) }
                }
            }
            if seriesName == name, seriesLabels == labels { return value }
        }
        return nil
    }

    static func metrics(_ stack: Stack, _ service: Stack.Service) async throws -> String {
        try await metrics(stack, url: stack.url(service))
    }

    static func metrics(_ stack: Stack, url: String) async throws -> String {
        var request = HTTPClientRequestShim(url: "\(url)/metrics")
        return try await request.text(stack)
    }

    @Test("after N notifications the counters say N: accepted, sent, published, jobs completed, provider latency, HTTP requests")
    func metricsCount() async throws {
        try await Stack.with { stack in
            try await stack.createTemplate(["code": "m", "name": "M", "channel": "email", "subject": "S", "body": "B"])
            let user = try await stack.createUser()
            let ids = try await stack.sendMany(7, concurrency: 3) { index in
                ["notification_type": "email", "user_id": user, "template_code": "m", "request_id": "m-\(index)"]
            }
            for id in ids { _ = try await stack.waitForStatus(id, "sent") }
            let gateway = try await Self.metrics(stack, .gateway)
            #expect(Self.sample(gateway, "notify_notifications_accepted_total", ["channel": "email"]) == 7)
            #expect(
                Self.sample(
                    gateway,
                    "hb_requests",
                    ["http_route": "/api/v1/notifications", "http_request_method": "POST", "http_response_status_code": "202"]
                )
                    == 7,
                "\(gateway.split(separator: "\n").filter { $0.contains("hb_requests") })"
            )
            #expect(gateway.contains("http_server_request_duration_bucket"))
            // The worker counts a send after committing its completion, and the relay computes its gauges at scrape
            // time under a deadline: scrape until the counts are in, then check every figure of that scrape.
            let worker = try await eventually("the worker counted 7 sends") { () -> String? in
                let text = try await Self.metrics(stack, .emailWorker)
                return Self.sample(text, "notify_notifications_sent_total", ["channel": "email"]) == 7 ? text : nil
            }
            #expect(Self.sample(worker, "notify_notifications_sent_total", ["channel": "email"]) == 7)
            #expect(Self.sample(worker, "notify_provider_request_duration_seconds_count", ["provider": "smtp", "outcome": "ok"]) == 7)
            #expect(Self.sample(worker, "notify_circuit_breaker_state", ["breaker": "smtp"]) == 0)
            let relay = try await eventually("the relay's gauges") { () -> String? in
                let text = try await Self.metrics(stack, .relay)
                let settled =
                    Self.sample(text, "notify_jobs", ["queue": "email", "state": "completed"]) == 7
                    && Self.sample(text, "notify_outbox_backlog") == 0
                    && Self.sample(text, "notify_rabbitmq_queue_messages", ["queue": "email.queue"]) != nil
                return settled ? text : nil
            }
            #expect(Self.sample(relay, "notify_outbox_published_total") == 7)
            #expect(Self.sample(relay, "notify_jobs", ["queue": "email", "state": "completed"]) == 7)
            #expect(Self.sample(relay, "notify_jobs", ["queue": "email", "state": "available"]) == 0)
            #expect(Self.sample(relay, "notify_outbox_backlog") == 0)
            #expect(Self.sample(relay, "notify_rabbitmq_queue_messages", ["queue": "email.queue"]) != nil)
            #expect(Self.sample(relay, "notify_queue_lag_seconds", ["queue": "email"]) == 0)
            // Template lookups: the gateway asks for the active version of every request; the worker renders the
            // pinned version, which it keeps for 30 s after the first lookup (versions are immutable; whether their
            // template is archived is asked again after that). A second round of seven right after the first
            // therefore costs the template service exactly the gateway's seven lookups.
            let route = ["http_route": "/api/v1/templates/{code}", "http_request_method": "GET", "http_response_status_code": "200"]
            let before = Self.sample(try await Self.metrics(stack, .templates), "hb_requests", route) ?? 0
            let more = try await stack.sendMany(7, concurrency: 3) { index in
                ["notification_type": "email", "user_id": user, "template_code": "m", "request_id": "m2-\(index)"]
            }
            for id in more { _ = try await stack.waitForStatus(id, "sent") }
            let after = Self.sample(try await Self.metrics(stack, .templates), "hb_requests", route) ?? 0
            #expect(before >= 8)
            #expect(after - before == 7)
            let users = try await Self.metrics(stack, .users)
            let hits = Self.sample(users, "notify_cache_requests_total", ["cache": "contact", "result": "hit"]) ?? 0
            let misses = Self.sample(users, "notify_cache_requests_total", ["cache": "contact", "result": "miss"]) ?? 0
            #expect(hits + misses >= 7, "the workers' and gateway's contact lookups went through the cache")
            #expect(misses >= 1)
        }
    }

    @Test("one grep of the correlation id reconstructs a notification's life, each line with notification_id and job_id")
    func logsCarryIDs() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay, .emailWorker]) { stack in
            try await stack.createTemplate(["code": "l", "name": "L", "channel": "email", "subject": "S", "body": "B"])
            let user = try await stack.createUser()
            let correlation = "trace-\(UUID().uuidString.lowercased())"
            let reply = try await stack.send(
                ["notification_type": "email", "user_id": user, "template_code": "l", "request_id": "log-1"],
                headers: ["X-Correlation-ID": correlation]
            )
            let id = try #require(reply.data["notification_id"] as? String)
            _ = try await stack.waitForStatus(id, "sent")
            let jobID = try #require(try await stack.scalar("SELECT id FROM jobs WHERE notification_id = \(UUID(uuidString: id)!)", as: Int.self))
            var messages: [String: [String]] = [:]
            // Each process writes its line after its part is done (the relay after RabbitMQ answered its publish,
            // which can come after the worker already sent the email): wait for all three.
            for (service, line) in [(Stack.Service.gateway, "notification accepted"), (.relay, "\"published\""), (.emailWorker, "notification sent")]
            {
                _ = try await eventually("the \(service.rawValue) line \(line)") { () -> Bool? in
                    (stack.process(service)?.log ?? "").split(separator: "\n").contains { $0.contains(correlation) && $0.contains(line) } ? true : nil
                }
            }
            for service in [Stack.Service.gateway, .relay, .emailWorker] {
                let lines = (stack.process(service)?.log ?? "").split(separator: "\n").filter { $0.contains(correlation) }
                for line in lines {
                    let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
                    #expect(object["correlation_id"] as? String == correlation)
                    #expect(object["notification_id"] as? String == id, "\(service.rawValue): \(line)")
                    #expect(object["job_id"] as? String == String(jobID), "\(service.rawValue): \(line)")
                    messages[service.rawValue, default: []].append(object["message"] as? String ?? "")
                }
            }
            #expect(messages["gateway"]?.contains("notification accepted") == true)
            #expect(messages["relay"]?.contains("published") == true)
            #expect(messages["email-worker"]?.contains("notification sent") == true)
        }
    }

    static func fetchWithoutRedirects(_ url: String, cookie: String?) async throws -> (status: HTTPResponseStatus, headers: HTTPHeaders) {
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
        do {
            var request = HTTPClientRequest(url: url)
            if let cookie { request.headers.add(name: "Cookie", value: cookie) }
            let response = try await client.execute(request, timeout: .seconds(10))
            _ = try await response.body.collect(upTo: 1 << 20)
            try await client.shutdown()
            return (response.status, response.headers)
        } catch {
            try? await client.shutdown()
            throw error
        }
    }

    /// An operator made with `notify admin create-admin`; returns (email, password).
    static func createOperator(_ stack: Stack) async throws -> (String, String) {
        let email = "ops-\(UUID().uuidString.prefix(8))@example.com"
        let password = "correct horse battery staple"
        let made = try await stack.runCommand(
            ["admin", "create-admin", "--email", email],
            environment: ["NOTIFY_ADMIN_PASSWORD": password],
            withErrors: true
        )
        guard made.status == 0 else { throw UnexpectedReply(reply: ["output": made.output], status: Int(made.status)) }
        return (email, password)
    }

    /// A push notification to a device whose token the provider refuses: a dead letter.
    static func deadLetter(_ stack: Stack) async throws -> String {
        try await stack.createTemplate(["code": "p", "name": "P", "channel": "push", "title": "T", "body": "B"])
        let user = try await stack.createUser(pushToken: "invalid-\(UUID().uuidString)")
        let reply = try await stack.send(["notification_type": "push", "user_id": user, "template_code": "p", "request_id": "dead-1"])
        let id = try #require(reply.data["notification_id"] as? String)
        _ = try await stack.waitForStatus(id, "failed")
        return id
    }

    @Test("operator logins are throttled: after N bad attempts the right password is 429 with Retry-After too")
    func adminLoginThrottling() async throws {
        try await Stack.with(services: [.admin], extra: ["NOTIFY_LOGIN_ATTEMPTS_PER_ACCOUNT": "2"]) { stack in
            let (email, password) = try await Self.createOperator(stack)
            let url = "\(stack.url(.admin))/api/v1/admin/login/"
            #expect(try await stack.call(.POST, url, json: ["email": email, "password": "nope nope nope"]).status == 401)
            #expect(try await stack.call(.POST, url, json: ["email": email, "password": "nope nope nope"]).status == 401)
            let right = try await stack.call(.POST, url, json: ["email": email, "password": password])
            #expect(right.status == 429)
            #expect(right.error == "RATE_LIMITED")
            #expect(Int(right.headers.first(name: "Retry-After") ?? "") ?? 0 >= 1)
            #expect(!right.headers.contains(name: "Set-Cookie"))
        }
    }

    @Test("admin API: operator login sets a strict HttpOnly cookie; overview, dead letters and replay; CSRF header required")
    func adminAPI() async throws {
        try await Stack.with(services: Stack.Service.core + [.smsWorker, .admin]) { stack in
            let (email, password) = try await Self.createOperator(stack)
            let admin = stack.url(.admin)
            let wrong = try await stack.call(.POST, "\(admin)/api/v1/admin/login/", json: ["email": email, "password": "nope nope nope"])
            #expect(wrong.status == 401)
            #expect(wrong.error == "INVALID_CREDENTIALS")
            // Login CSRF: a cross-site form can post text/plain; the login takes JSON only.
            var plain = HTTPClientRequest(url: "\(admin)/api/v1/admin/login/")
            plain.method = .POST
            plain.headers.add(name: "Content-Type", value: "text/plain")
            plain.body = .bytes(ByteBuffer(string: #"{"email": "\#(email)", "password": "\#(password)"}"#))
            let plainReply = try await stack.http.execute(plain, timeout: .seconds(30))
            #expect(plainReply.status == .unsupportedMediaType)
            #expect(!plainReply.headers.contains(name: "Set-Cookie"))
            plain.headers.replaceOrAdd(name: "Content-Type", value: "application/jsonx")
            #expect(try await stack.http.execute(plain, timeout: .seconds(30)).status == .unsupportedMediaType, "the media type, not a prefix")
            // The service key is no credential of the admin API.
            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/overview/", headers: stack.serviceAuth).status == 401)
            let login = try await stack.call(.POST, "\(admin)/api/v1/admin/login/", json: ["email": email, "password": password])
            #expect(login.status == 200)
            #expect(login.data["expires_in"] as? Int == 8 * 3600)
            let setCookie = try #require(login.headers.first(name: "Set-Cookie"))
            #expect(setCookie.hasPrefix("__Host-notify_admin="))
            #expect(setCookie.contains("HttpOnly"))
            #expect(setCookie.contains("SameSite=Strict"))
            #expect(setCookie.contains("; Secure"))
            #expect(setCookie.contains("Path=/"))
            let token = String(setCookie.dropFirst("__Host-notify_admin=".count).prefix { $0 != ";" })
            let body = String(decoding: try JSONSerialization.data(withJSONObject: login.json), as: UTF8.self)
            #expect(!body.contains(token), "the session token is only in the cookie")
            let cookie = ["Cookie": "__Host-notify_admin=\(token)"]
            // Not a bearer credential: sessions are cookies only.
            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/overview/", headers: ["Authorization": "Bearer \(token)"]).status == 401)

            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/overview/").status == 401)
            let dead = try await Self.deadLetter(stack)
            try await stack.createTemplate(["code": "o", "name": "O", "channel": "email", "subject": "S", "body": "B"])
            let user = try await stack.createUser()
            let sent = try await stack.send(["notification_type": "email", "user_id": user, "template_code": "o", "request_id": "o-1"])
            _ = try await stack.waitForStatus(try #require(sent.data["notification_id"] as? String), "sent")

            // RabbitMQ's management API reports a queue's figures as of its last statistics interval (every 5 s).
            let overview = try await eventually("overview with every service up and queue figures") { () -> [String: Any]? in
                let reply = try await stack.call(.GET, "\(admin)/api/v1/admin/overview/", headers: cookie)
                let services = reply.data["services"] as? [[String: Any]] ?? []
                let queues = reply.data["queues"] as? [[String: Any]] ?? []
                return services.count == 7 && services.allSatisfy({ $0["status"] as? String == "up" })
                    && queues.contains(where: { $0["name"] as? String == "email.queue" && $0["consumers"] as? Int == 1 })
                    && queues.contains(where: { $0["name"] as? String == "sms.queue" && $0["consumers"] as? Int == 1 }) ? reply.data : nil
            }
            let totals = try #require(overview["totals"] as? [String: Int])
            #expect(totals["sent"] == 1)
            #expect(totals["failed"] == 1)
            #expect(totals["accepted"] == 2)
            #expect(overview["dead_letters"] as? Int == 1)
            let minutes = try #require(overview["throughput"] as? [[String: Any]])
            #expect(minutes.count == 30)
            #expect(minutes.reduce(0) { $0 + ($1["sent"] as? Int ?? 0) } == 1)
            #expect(
                (overview["breakers"] as? [[String: Any]] ?? []).contains {
                    $0["service"] as? String == "email-worker" && $0["name"] as? String == "smtp"
                }
            )
            #expect(
                (overview["queues"] as? [[String: Any]] ?? []).contains { $0["name"] as? String == "email.queue" && $0["consumers"] as? Int == 1 },
                "\(overview["queues"] ?? "")"
            )
            #expect(
                (overview["job_states"] as? [[String: Any]] ?? []).contains {
                    $0["queue"] as? String == "push" && $0["state"] as? String == "discarded"
                }
            )

            let letters = try await stack.call(.GET, "\(admin)/api/v1/admin/dead-letters/", headers: cookie)
            #expect((letters.json["data"] as? [[String: Any]])?.first?["notification_id"] as? String == dead)
            let inspected = try await stack.call(.GET, "\(admin)/api/v1/admin/dead-letters/\(dead)/", headers: cookie)
            #expect(((inspected.data["errors"] as? [[String: Any]])?.first?["error"] as? String)?.contains("device_gone") == true)

            // With the cookie, a change needs the dashboard's header; with an admin API key it does not.
            let forged = try await stack.call(.POST, "\(admin)/api/v1/admin/dead-letters/\(dead)/replay/", headers: cookie)
            #expect(forged.status == 403)
            let replayed = try await stack.call(
                .POST,
                "\(admin)/api/v1/admin/dead-letters/\(dead)/replay/",
                headers: cookie.merging(["X-Requested-With": "notify-dashboard"]) { $1 }
            )
            #expect(replayed.status == 200)
            #expect(replayed.data["replayed"] as? Bool == true)
            // The replay put the job back (recorded with its cause), and a worker ran it again: a second error, since
            // the device stays invalid. (Its state alone races with that worker, which may discard it again at once.)
            let deadID = UUID(uuidString: dead)!
            #expect(
                try await stack.scalar(
                    "SELECT count(*)::int FROM notification_events WHERE notification_id = \(deadID) AND cause = 'replayed'",
                    as: Int.self
                ) == 1
            )
            _ = try await eventually("the replayed job attempted again") { () -> Int? in
                let errors = try await stack.scalar(
                    "SELECT jsonb_array_length(errors)::int FROM jobs WHERE notification_id = \(deadID)",
                    as: Int.self
                )
                return (errors ?? 0) >= 2 ? errors : nil
            }
            let adminKey = try await stack.createKey(scopes: ["admin"])
            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/dead-letters/", headers: ["Authorization": "Bearer \(adminKey)"]).status == 200)
            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/dead-letters/", headers: stack.clientAuth).status == 403)

            // The dashboard page needs the session; logout ends it.
            let page = try await Self.fetchWithoutRedirects("\(admin)/admin/", cookie: nil)
            #expect(page.status == .seeOther)
            #expect(page.headers.first(name: "Location") == "/admin/login")
            let dashboard = try await Self.fetchWithoutRedirects("\(admin)/admin/", cookie: "__Host-notify_admin=\(token)")
            #expect(dashboard.status == .ok)
            #expect(dashboard.headers.first(name: "Content-Security-Policy")?.contains("default-src 'none'") == true)
            let logout = try await stack.call(
                .POST,
                "\(admin)/api/v1/admin/logout/",
                headers: cookie.merging(["X-Requested-With": "notify-dashboard"]) { $1 }
            )
            #expect(logout.status == 200)
            #expect(logout.headers.first(name: "Set-Cookie")?.contains("Max-Age=0") == true)
            // Revoked on the server: the same cookie, replayed, is refused.
            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/overview/", headers: cookie).status == 401)
            #expect(try await Self.fetchWithoutRedirects("\(admin)/admin/", cookie: "__Host-notify_admin=\(token)").status == .seeOther)

            // An operator removed loses every session at once.
            let again = try await stack.call(.POST, "\(admin)/api/v1/admin/login/", json: ["email": email, "password": password])
            let fresh = String(try #require(again.headers.first(name: "Set-Cookie")).dropFirst("__Host-notify_admin=".count).prefix { $0 != ";" })
            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/overview/", headers: ["Cookie": "__Host-notify_admin=\(fresh)"]).status == 200)
            let removed = try await stack.runCommand(["admin", "remove-admin", "--email", email], withErrors: true)
            #expect(removed.status == 0, "\(removed.output)")
            #expect(try await stack.call(.GET, "\(admin)/api/v1/admin/overview/", headers: ["Cookie": "__Host-notify_admin=\(fresh)"]).status == 401)
        }
    }

    @Test("the dashboard in headless Chromium: live numbers after notifications, a dead letter replayed with its button, a screenshot")
    func dashboardInBrowser() async throws {
        // Plain http on loopback: the cookie cannot be Secure here (it is everywhere else).
        let extra = [
            "NOTIFY_ADMIN_COOKIE_SECURE": "false", "NOTIFY_WEBHOOK_SECRET_KEY": "webhook-sealing-key-for-tests-0123456789abcdef",
            "NOTIFY_WEBHOOK_ALLOW_LOOPBACK": "true",
        ]
        try await Stack.with(services: Stack.Service.core + [.smsWorker, .admin], extra: extra) { stack in
            let (email, password) = try await Self.createOperator(stack)
            // A dead letter whose cause is then fixed: the user gets a working device, so the replay delivers it.
            try await stack.createTemplate(["code": "p", "name": "P", "channel": "push", "title": "T", "body": "B"])
            let pushUser = try await stack.createUser(pushToken: "invalid-\(UUID().uuidString)")
            let failed = try await stack.send(["notification_type": "push", "user_id": pushUser, "template_code": "p", "request_id": "dead-1"])
            let dead = try #require(failed.data["notification_id"] as? String)
            _ = try await stack.waitForStatus(dead, "failed")
            let fixed = try await stack.call(
                .POST,
                "\(stack.url(.users))/api/v1/users/\(pushUser)/devices/",
                json: ["platform": "fcm", "token": "good-\(UUID().uuidString)"],
                headers: stack.serviceAuth
            )
            #expect(fixed.status == 201)
            try await stack.createTemplate(["code": "d", "name": "D", "channel": "email", "subject": "Hello {{name}}", "body": "B"])
            _ = try await stack.createUser(name: "Grace Hopper", pushToken: "grace-dashboard-token")
            let user = try await stack.createUser()
            let ids = try await stack.sendMany(5, concurrency: 2) { index in
                ["notification_type": "email", "user_id": user, "template_code": "d", "request_id": "d-\(index)", "variables": ["name": "Ada"]]
            }
            for id in ids { _ = try await stack.waitForStatus(id, "sent") }

            let directory = ProcessInfo.processInfo.environment["NOTIFY_SCREENSHOT_DIR"] ?? FileManager.default.temporaryDirectory.path
            let screenshot = "\(directory)/notify-dashboard-\(Int(Date().timeIntervalSince1970)).png"
            let python = NotifyProcess.repositoryRoot.appendingPathComponent(".local/venv/bin/python").path
            let process = Process()
            process.executableURL = URL(fileURLWithPath: python)
            process.arguments = [
                NotifyProcess.repositoryRoot.appendingPathComponent("Tests/NotifyTests/Support/dashboard_check.py").path,
                "--base", stack.url(.admin), "--email", email, "--password", password, "--expect-sent", "5", "--replay", dead,
                "--screenshot", screenshot, "--user-search", "Grace Hopper", "--template", "d", "--webhook-url", "http://127.0.0.1:9/hooks/dashboard",
            ]
            let stdout = Pipe()
            let stderr = Pipe()
            process.standardOutput = stdout
            process.standardError = stderr
            try process.run()
            // Chromium takes a while: waited for on a thread of its own.
            let (output, errors) = try await onOwnThread { () -> (Data, String) in
                let output = stdout.fileHandleForReading.readDataToEndOfFile()
                let errors = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
                process.waitUntilExit()
                return (output, errors)
            }
            #expect(process.terminationStatus == 0, "dashboard_check.py: \(errors.suffix(4000))")
            let observed = (try? JSONSerialization.jsonObject(with: output)) as? [String: Any] ?? [:]
            #expect(observed["logged_in"] as? Bool == true)
            #expect(observed["sent"] as? Int == 5)
            #expect((observed["chart_points"] as? Int ?? 0) >= 1)
            #expect(observed["replayed"] as? Bool == true)
            let selfService = observed["self_service"] as? [String: Any] ?? [:]
            #expect((selfService["webhook_secret_prefix"] as? String)?.hasPrefix("whsec_") == true, "\(observed)")
            #expect(selfService["template_restored"] as? Bool == true)
            #expect((selfService["preview"] as? String)?.contains("subject: Hello Ada") == true, "\(selfService)")
            // What the browser did reached the platform: the key is revoked, the endpoint disabled, the user enabled.
            let prefix = try #require(selfService["key_prefix"] as? String)
            #expect(try await stack.scalar("SELECT revoked_at IS NOT NULL FROM api_keys WHERE client = 'dashboard-client'", as: Bool.self) == true)
            let stored = try #require(try await stack.scalar("SELECT prefix FROM api_keys WHERE client = 'dashboard-client'", as: String.self))
            #expect(stored == prefix, "the key shown once is the one stored")
            #expect(try await stack.scalar("SELECT active FROM webhook_endpoints WHERE client = 'dashboard-client'", as: Bool.self) == false)
            let png = FileManager.default.contents(atPath: screenshot) ?? Data()
            #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a PNG screenshot at \(screenshot)")
            print("dashboard screenshot: \(screenshot)")
            // The button's replay reached the platform: the notification is delivered to the working device.
            _ = try await stack.waitForStatus(dead, "sent")
        }
    }
}

/// A GET that returns the body as text.
struct HTTPClientRequestShim {
    var url: String
    mutating func text(_ stack: Stack) async throws -> String {
        var request = HTTPClientRequest(url: url)
        request.method = .GET
        let response = try await stack.http.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 8 << 20)
        return String(buffer: body)
    }
}
