import AsyncHTTPClient
import Broker
import Foundation
import Logging
import NIOHTTP1
import NotifyConfig
import PostgresAccess
import PostgresNIO
import Testing

/// One notification travels the whole path: gateway → Postgres (notification + job + outbox) → relay → RabbitMQ →
/// worker → users/templates → SMTP sink or push provider, each process a real `notify` subprocess.
@Suite("End to end", .serialized)
struct EndToEndTests {
    @Test("an email notification arrives at the SMTP sink rendered, with its Message-ID, and its status becomes sent")
    func emailArrives() async throws {
        try await Stack.with { stack in
            let email = "grace.\(stack.infra.runID)@example.com"
            let userID = try await stack.createUser(name: "Grace Hopper", email: email)
            try await stack.createTemplate([
                "code": "welcome", "name": "Welcome", "channel": "email", "subject": "Welcome, {{name}} ✓",
                "body": "Hello {{name}}, confirm at {{link}}. Note: {{note}}", "html_body": "<p>Hello {{name}}</p><p>{{note}}</p>",
            ])
            let correlationID = "corr-\(UUID().uuidString.lowercased())"
            let accepted = try await stack.send(
                [
                    "notification_type": "email", "user_id": userID, "template_code": "welcome",
                    "variables": ["name": "Grace", "link": "https://example.com/confirm?t=1", "note": "<script>x</script>"],
                    "request_id": "req-\(UUID().uuidString)", "priority": 5, "metadata": ["campaign": "launch"],
                ],
                headers: ["X-Correlation-ID": correlationID]
            )
            #expect(accepted.status == 202)
            #expect(accepted.json["success"] as? Bool == true)
            #expect(accepted.data["status"] as? String == "pending")
            #expect(accepted.headers.first(name: "X-Correlation-ID") == correlationID)
            let id = try #require(accepted.data["notification_id"] as? String)

            let mail = try await stack.waitForEmail(id)
            #expect(mail.subject == "Welcome, Grace ✓")
            #expect(mail.text == "Hello Grace, confirm at https://example.com/confirm?t=1. Note: <script>x</script>")
            #expect(mail.html == "<p>Hello Grace</p><p>&lt;script&gt;x&lt;/script&gt;</p>")
            #expect(mail.messageID == "<\(id)@notify.local>")
            #expect(mail.header("X-Correlation-ID") == correlationID)
            #expect(mail.header("To")?.contains(email) == true)
            #expect(mail.header("From")?.contains("notifications@notify.local") == true)
            #expect(mail.header("Date") != nil)

            let status = try await stack.waitForStatus(id, "sent")
            #expect(status["attempts"] as? Int == 1)
            #expect(status["job_state"] as? String == "completed")
            #expect(status["sent_at"] is String)

            // The correlation id follows the notification into every process's log lines.
            // The worker logs "notification sent" after the completion is committed: wait for the line.
            for service in [Stack.Service.gateway, .emailWorker] {
                _ = try await eventually("a log line of \(service.rawValue) with the correlation id") { () -> Bool? in
                    stack.process(service)?.log.contains(correlationID) == true ? true : nil
                }
            }
        }
    }

    @Test(
        "the message really passes through RabbitMQ, persistent, with message_id = job id and the correlation id (management HTTP and AMQP publishers)",
        arguments: ["http", "amqp"]
    )
    func messagePassesThroughRabbitMQ(publisher: String) async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay], extra: ["NOTIFY_RELAY_PUBLISHER": publisher]) { stack in
            let userID = try await stack.createUser()
            try await stack.createTemplate(["code": "ping", "name": "Ping", "channel": "email", "subject": "Ping", "body": "Hi {{name}}"])
            let accepted = try await stack.send([
                "notification_type": "email", "user_id": userID, "template_code": "ping", "variables": ["name": "Ada"],
                "request_id": "via-broker",
            ])
            let id = try #require(accepted.data["notification_id"] as? String)
            let correlationID = try #require(accepted.headers.first(name: "X-Correlation-ID"))
            let jobID = try await stack.infra.withDatabase(.notifications) { client in
                var jobID = 0
                for try await id in try await client.query(
                    "SELECT id FROM jobs WHERE notification_id = \(UUID(uuidString: id)!)",
                    logger: TestInfrastructure.logger
                ).decode(Int.self) { jobID = id }
                return jobID
            }

            let management = stack.infra.management(stack.http)
            let message = try await eventually("the message on email.queue") { () -> [String: Any]? in
                try await management.peek(queue: "email.queue", count: 1).first
            }
            let properties = try #require(message["properties"] as? [String: Any])
            #expect(properties["message_id"] as? String == String(jobID))
            #expect(properties["correlation_id"] as? String == correlationID)
            #expect(properties["delivery_mode"] as? Int == 2)
            let payload = try #require(
                (message["payload"] as? String).flatMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) } as? [String: Any]
            )
            #expect(payload["notification_id"] as? String == id)
            #expect(payload["user_id"] as? String == userID)
            #expect(payload["template_code"] as? String == "ping")
            #expect((payload["variables"] as? [String: Any])?["name"] as? String == "Ada")
            #expect(payload["request_id"] as? String == "via-broker")
            #expect(payload["attempt"] as? Int == 0)
            // The outbox row is deleted because RabbitMQ routed it. The message can be on the queue a moment before
            // the relay has the confirm (AMQP) or the answer (HTTP) and deletes the row: wait for the delete.
            let left = try await eventually("the outbox row deleted as published") { () -> Int? in
                try await stack.infra.withDatabase(.notifications) { client in
                    var count = -1
                    for try await n in try await client.query(
                        "SELECT count(*)::int FROM outbox WHERE message_id = \(String(jobID))",
                        logger: TestInfrastructure.logger
                    ).decode(Int.self) { count = n }
                    return count == 0 ? count : nil
                }
            }
            #expect(left == 0)
            // Exactly one copy was published: a late confirm must not make the relay publish the row again.
            let queued = try await management.peek(queue: "email.queue", count: 10)
            #expect(queued.count == 1)

            // A worker started now consumes it from the queue and the email goes out.
            try stack.start(.emailWorker)
            try await stack.waitHealthy(.emailWorker)
            let mail = try await stack.waitForEmail(id)
            #expect(mail.text == "Hi Ada")
            _ = try await stack.waitForStatus(id, "sent")
            _ = try await eventually("email.queue empty") { () -> Bool? in
                try await management.peek(queue: "email.queue", count: 1).isEmpty ? true : nil
            }
        }
    }

    @Test("over AMQP with confirms, a message no queue takes stays unpublished in the outbox, and goes out once the binding is back")
    func amqpUnroutableStaysInOutbox() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay, .emailWorker], extra: ["NOTIFY_RELAY_PUBLISHER": "amqp"]) { stack in
            let userID = try await stack.createUser()
            try await stack.createTemplate(["code": "ret", "name": "Ret", "channel": "email", "subject": "Ret", "body": "Back, {{name}}"])
            // The relay declares the topology once, when it starts: wait for that, then take email.queue's binding away.
            _ = try await eventually("the relay declared the topology") { () -> Bool? in
                let health = try await stack.call(.GET, "\(stack.url(.relay))/health")
                return ((health.data["checks"] as? [String: Any])?["topology"] as? [String: Any])?["status"] as? String == "up" ? true : nil
            }
            let rabbit = stack.infra.rabbit
            var unbind = HTTPClientRequest(url: "\(rabbit.managementURL)/api/bindings/\(rabbit.vhost)/e/notifications.direct/q/email.queue/email")
            unbind.method = .DELETE
            unbind.headers.add(name: "Authorization", value: "Basic " + Data("\(rabbit.user):\(rabbit.password)".utf8).base64EncodedString())
            let response = try await stack.http.execute(unbind, timeout: .seconds(10))
            #expect(response.status == .noContent)

            let accepted = try await stack.send([
                "notification_type": "email", "user_id": userID, "template_code": "ret", "variables": ["name": "Ada"], "request_id": "unroutable",
            ])
            let id = try #require(accepted.data["notification_id"] as? String)
            // The row either gets refused (last_error set) or, wrongly, published (deleted): wait for one of the two.
            // It exists from the moment the gateway answered 202.
            let (error, published) = try await eventually("the outbox row refused as not routed") { () -> (String?, Bool)? in
                try await stack.infra.withDatabase(.notifications) { client in
                    var found: (String?, Bool) = (nil, true)
                    for try await error in try await client.query(
                        "SELECT last_error FROM outbox WHERE payload->>'notification_id' = \(id)",
                        logger: TestInfrastructure.logger
                    ).decode(String?.self) {
                        found = (error, false)
                    }
                    return found.0 != nil || found.1 ? found : nil
                }
            }
            #expect(!published, "a message no queue takes was deleted as published")
            #expect(error == "not routed")

            try await stack.infra.management(stack.http).declareTopology()
            let mail = try await stack.waitForEmail(id)
            #expect(mail.text == "Back, Ada")
            // The delete follows the confirm, which can come after the worker already sent the email.
            _ = try await eventually("the outbox row deleted as published") { () -> Bool? in
                let left: Int? = try await stack.scalar("SELECT count(*)::int FROM outbox WHERE payload->>'notification_id' = \(id)")
                return left == 0 ? true : nil
            }
        }
    }

    @Test(
        "checked again at send time: notifications whose user was deleted, turned email off, or whose template was archived after they were accepted are cancelled with the reason; the others are sent"
    )
    func checkedAgainAtSendTime() async throws {
        // No worker yet: the notifications wait while things change.
        try await Stack.with(services: [.users, .templates, .gateway, .relay]) { stack in
            for code in ["kept", "retired"] {
                try await stack.createTemplate(["code": code, "name": code, "channel": "email", "subject": "S", "body": "B"])
            }
            let deleted = try await stack.createUser()
            let optedOut = try await stack.createUser()
            let plain = try await stack.createUser()
            func schedule(_ user: String, _ template: String) async throws -> String {
                let reply = try await stack.send([
                    "notification_type": "email", "user_id": user, "template_code": template, "request_id": UUID().uuidString,
                ])
                #expect(reply.status == 202)
                return try #require(reply.data["notification_id"] as? String)
            }
            let toDeleted = try await schedule(deleted, "kept")
            let toOptedOut = try await schedule(optedOut, "kept")
            let archived = try await schedule(plain, "retired")
            let sent = try await schedule(plain, "kept")
            // All four were accepted; now, before a worker takes them, things change.
            #expect(try await stack.call(.DELETE, "\(stack.url(.users))/api/v1/users/\(deleted)/", headers: stack.serviceAuth).status == 200)
            #expect(try await stack.setPreferences(optedOut, ["email": false, "push": true]).status == 200)
            let archive = try await stack.call(.POST, "\(stack.url(.templates))/api/v1/templates/retired/archive/", headers: stack.serviceAuth)
            #expect(archive.status == 200)
            try stack.start(.emailWorker)

            _ = try await stack.waitForEmail(sent)
            for (id, reason) in [
                (toDeleted, "not sent: the user no longer exists"), (toOptedOut, "not sent: the user turned email notifications off"),
                (archived, "not sent: the template was archived"),
            ] {
                let cancelled = try await stack.waitForStatus(id, "cancelled")
                #expect(cancelled["job_state"] as? String == "cancelled")
                #expect(cancelled["last_error"] as? String == reason)
                let history = cancelled["history"] as? [[String: Any]] ?? []
                #expect(history.last?["cause"] as? String == reason)
                #expect(cancelled["attempts"] as? Int == 1, "withdrawn, not retried")
            }
            #expect(stack.emailCounts(for: [toDeleted, toOptedOut, archived]).isEmpty)
        }
    }

    @Test("the same request_id twice is accepted once and sends exactly one email")
    func sameRequestIDSendsOneEmail() async throws {
        try await Stack.with { stack in
            let userID = try await stack.createUser()
            try await stack.createTemplate(["code": "once", "name": "Once", "channel": "email", "subject": "Once", "body": "Only once, {{name}}"])
            let body: [String: Any] = [
                "notification_type": "email", "user_id": userID, "template_code": "once", "variables": ["name": "Ada"], "request_id": "dup-1",
            ]
            let first = try await stack.send(body)
            let second = try await stack.send(body)
            #expect(first.status == 202)
            #expect(second.status == 200)
            #expect(second.headers.first(name: "Idempotent-Replayed") == "true")
            let id = try #require(first.data["notification_id"] as? String)
            #expect(second.data["notification_id"] as? String == id)

            var changed = body
            changed["variables"] = ["name": "Someone else"]
            let conflict = try await stack.send(changed)
            #expect(conflict.status == 422)
            #expect(conflict.error == "IDEMPOTENCY_CONFLICT")

            // A later notification through the same worker: once it has arrived, a duplicate of the first would have too.
            let sentinel = try await stack.send([
                "notification_type": "email", "user_id": userID, "template_code": "once", "variables": ["name": "Bob"], "request_id": "dup-2",
            ])
            let sentinelID = try #require(sentinel.data["notification_id"] as? String)
            _ = try await stack.waitForEmail(id)
            _ = try await stack.waitForEmail(sentinelID)
            _ = try await stack.waitForStatus(sentinelID, "sent")
            #expect(ReceivedEmail.with(messageID: "\(id)@notify.local", in: stack.infra.maildir).count == 1)

            let rows = try await stack.infra.withDatabase(.notifications) { client in
                var counts: [Int] = []
                for try await row in try await client.query(
                    """
                    SELECT (SELECT count(*)::int FROM notifications WHERE request_id = 'dup-1'),
                           (SELECT count(*)::int FROM jobs j JOIN notifications n ON n.id = j.notification_id WHERE n.request_id = 'dup-1'),
                           (SELECT max(j.attempt)::int FROM jobs j JOIN notifications n ON n.id = j.notification_id
                              WHERE n.request_id = 'dup-1')
                    """,
                    logger: TestInfrastructure.logger
                ).decode((Int, Int, Int).self) { counts = [row.0, row.1, row.2] }
                return counts
            }
            #expect(rows == [1, 1, 1], "notifications, jobs, attempts of the job")
        }
    }

    @Test("a notification pins the template version accepted with it: an edit while it is queued does not change the email")
    func templateVersionIsPinned() async throws {
        try await Stack.with(services: [.users, .templates, .gateway, .relay]) { stack in
            let userID = try await stack.createUser()
            try await stack.createTemplate(["code": "pinned", "name": "Pinned", "channel": "email", "subject": "Old {{n}}", "body": "old body"])
            let accepted = try await stack.send([
                "notification_type": "email", "user_id": userID, "template_code": "pinned", "variables": ["n": 1], "request_id": "pin-1",
            ])
            let id = try #require(accepted.data["notification_id"] as? String)
            let edit = try await stack.call(
                .PUT,
                "\(stack.url(.templates))/api/v1/templates/pinned/",
                json: ["subject": "New {{n}}", "body": "new body"],
                headers: stack.serviceAuth
            )
            #expect(edit.data["version"] as? Int == 2)
            try stack.start(.emailWorker)
            let mail = try await stack.waitForEmail(id)
            #expect(mail.subject == "Old 1")
            #expect(mail.text == "old body")
            let later = try await stack.send([
                "notification_type": "email", "user_id": userID, "template_code": "pinned", "variables": ["n": 2], "request_id": "pin-2",
            ])
            let laterMail = try await stack.waitForEmail(try #require(later.data["notification_id"] as? String))
            #expect(laterMail.subject == "New 2")
        }
    }

    @Test("a delivery whose outcome cannot be recorded is still acked: the worker's prefetch slots are not used up")
    func unrecordedOutcomeIsAcked() async throws {
        try await Stack.with(extra: ["NOTIFY_WORKER_PREFETCH": "2"]) { stack in
            let userID = try await stack.createUser()
            try await stack.createTemplate(["code": "unrecorded", "name": "U", "channel": "email", "subject": "S {{n}}", "body": "B {{n}}"])
            // PostgreSQL refuses every job's move to `completed`, as it would while it is restarting.
            try await stack.infra.withDatabase(.notifications) { client in
                _ = try await client.query(
                    """
                    CREATE FUNCTION refuse_completion() RETURNS trigger LANGUAGE plpgsql AS $$
                    BEGIN
                        IF NEW.state = 'completed' THEN RAISE EXCEPTION 'completion refused'; END IF;
                        RETURN NEW;
                    END $$
                    """,
                    logger: TestInfrastructure.logger
                )
                _ = try await client.query(
                    "CREATE TRIGGER refuse_completion BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION refuse_completion()",
                    logger: TestInfrastructure.logger
                )
            }
            // Through the broker, where a delivery holds a prefetch slot until it is acked (the PostgreSQL path has none).
            _ = try await eventually("the worker consuming from RabbitMQ") { () -> Bool? in
                let health = try await stack.call(.GET, "\(stack.url(.emailWorker))/health")
                let circuit = (health.data["checks"] as? [String: Any])?["circuit:rabbitmq"] as? [String: Any]
                return circuit?["status"] as? String == "up" ? true : nil
            }
            var ids: [String] = []
            for index in 0..<5 {
                let reply = try await stack.send([
                    "notification_type": "email", "user_id": userID, "template_code": "unrecorded", "variables": ["n": index],
                    "request_id": "unrecorded-\(index)",
                ])
                #expect(reply.status == 202)
                ids.append(try #require(reply.data["notification_id"] as? String))
            }
            // Two slots, five messages: each delivery must give its slot back although its completion failed.
            _ = try await eventually("all 5 emails", timeout: .seconds(60)) { () -> Bool? in
                stack.emailCounts(for: ids).count == 5 ? true : nil
            }
            _ = try await eventually("email.queue empty, nothing unacked", timeout: .seconds(60)) { () -> Bool? in
                let queue = try await stack.infra.management(stack.http).queue("email.queue")
                return queue["messages"] as? Int == 0 && queue["messages_unacknowledged"] as? Int == 0 ? true : nil
            }
            // The jobs stay `running` for the rescuer (their lease is a minute long): nothing was recorded as done.
            let running = try await stack.scalar("SELECT count(*)::int FROM jobs WHERE state = 'running' AND attempted_via = 'broker'", as: Int.self)
            #expect(running == 5)
            _ = try await eventually("the worker logged the unrecorded completions") { () -> Bool? in
                stack.process(.emailWorker)?.log.contains("completion not recorded") == true ? true : nil
            }
        }
    }

    @Test("a push to a user with two devices reaches both")
    func pushFansOut() async throws {
        try await Stack.with { stack in
            let first = "device-one-\(UUID().uuidString)"
            let second = "device-two-\(UUID().uuidString)"
            let userID = try await stack.createUser(pushToken: first)
            let added = try await stack.call(
                .POST,
                "\(stack.url(.users))/api/v1/users/\(userID)/devices/",
                json: ["platform": "fcm", "token": second],
                headers: stack.serviceAuth
            )
            #expect(added.status == 201)
            try await stack.createTemplate(["code": "two", "name": "Two", "channel": "push", "title": "Hi {{name}}", "body": "Both devices"])
            let accepted = try await stack.send([
                "notification_type": "push", "user_id": userID, "template_code": "two", "variables": ["name": "Ada"], "request_id": "fan-out",
            ])
            let id = try #require(accepted.data["notification_id"] as? String)
            let tokens = try await eventually("pushes to both devices") { () -> Set<String>? in
                let tokens = Set(stack.fcm.messages().compactMap { ($0["message"] as? [String: Any])?["token"] as? String })
                return tokens.isSuperset(of: [first, second]) ? tokens : nil
            }
            #expect(tokens.isSuperset(of: [first, second]))
            _ = try await stack.waitForStatus(id, "sent")
        }
    }

    @Test("a push notification reaches the FCM-style provider with the rendered title and body, and becomes sent")
    func pushArrives() async throws {
        try await Stack.with { stack in
            let token = "fcm-token-\(UUID().uuidString)"
            let userID = try await stack.createUser(pushToken: token)
            try await stack.createTemplate([
                "code": "order_shipped", "name": "Order shipped", "channel": "push", "title": "Order {{order}} shipped",
                "body": "Hi {{name}}, it is on its way", "link": "https://example.com/orders/{{order}}",
                "data": ["order_id": "{{order}}", "screen": "orders"],
            ])
            let accepted = try await stack.send([
                "notification_type": "push", "user_id": userID, "template_code": "order_shipped",
                "variables": ["name": "Ada", "order": "A-17"], "request_id": "push-1",
            ])
            #expect(accepted.status == 202)
            let id = try #require(accepted.data["notification_id"] as? String)
            let message = try await eventually("push at the provider") { () -> [String: Any]? in
                stack.fcm.messages().compactMap { $0["message"] as? [String: Any] }.first { $0["token"] as? String == token }
            }
            let notification = try #require(message["notification"] as? [String: Any])
            #expect(notification["title"] as? String == "Order A-17 shipped")
            #expect(notification["body"] as? String == "Hi Ada, it is on its way")
            let data = try #require(message["data"] as? [String: Any])
            #expect(data["notification_id"] as? String == id)
            #expect(data["link"] as? String == "https://example.com/orders/A-17")
            #expect(data["order_id"] as? String == "A-17", "the template's custom data, rendered")
            #expect(data["screen"] as? String == "orders")
            _ = try await stack.waitForStatus(id, "sent")
        }
    }
}
