import AsyncHTTPClient
import Broker
import Credentials
import Foundation
import Hummingbird
import Logging
import Migrations
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotifyConfig
import PostgresAccess
import PostgresNIO
import RedisCache
import Testing

/// The processes of the platform, each a real `notify` subprocess, against the real infrastructure, isolated in the
/// test's own databases and vhost. `Stack.with` tears everything down, whatever the test did.
final class Stack: ServiceClient, @unchecked Sendable {
    enum Service: String, CaseIterable, Sendable {
        case users, templates, gateway, relay
        case emailWorker = "email-worker"
        case pushWorker = "push-worker"
        case smsWorker = "sms-worker"
        case admin

        /// Every process that carries notifications (the admin service only when a test asks for it).
        static let core: [Service] = [.users, .templates, .gateway, .relay, .emailWorker, .pushWorker]

        var portKey: String {
            switch self {
            case .users: return "NOTIFY_USERS_PORT"
            case .templates: return "NOTIFY_TEMPLATES_PORT"
            case .gateway: return "NOTIFY_GATEWAY_PORT"
            case .relay: return "NOTIFY_RELAY_PORT"
            case .emailWorker: return "NOTIFY_EMAIL_WORKER_PORT"
            case .pushWorker: return "NOTIFY_PUSH_WORKER_PORT"
            case .smsWorker: return "NOTIFY_SMS_WORKER_PORT"
            case .admin: return "NOTIFY_ADMIN_PORT"
            }
        }
    }

    let infra: TestInfrastructure
    let http: HTTPClient
    let fcm: FakeFCM
    /// Twilio and Vonage stand-ins; every stack's processes are configured for them.
    let sms = FakeSMSProviders()
    let ports: [Service: Int]
    private(set) var processes: [Service: NotifyProcess] = [:]
    private(set) var apiKey = ""

    private init(infra: TestInfrastructure, http: HTTPClient, fcm: FakeFCM) {
        self.infra = infra
        self.http = http
        self.fcm = fcm
        var ports: [Service: Int] = [:]
        for service in Service.allCases { ports[service] = freePort() }
        self.ports = ports
    }

    /// The push worker's VAPID key (base64url raw P-256 scalar) and subject.
    static let vapidPrivateKey = "Gxd7P1xZ4vR8Q6vHn7hJm0Yk2oVqf9xGdWc3sB5tA1E"
    static let vapidSubject = "mailto:ops@notify.test"

    /// Settings every process of this stack gets on top of the defaults.
    private(set) var extra: [String: String] = [:]

    static func with<T: Sendable>(
        services: [Service] = Service.core,
        extra: [String: String] = [:],
        _ body: @Sendable (Stack) async throws -> T
    ) async throws -> T {
        let infra = try TestInfrastructure()
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let fcm = FakeFCM()
        let stack = Stack(infra: infra, http: http, fcm: fcm)
        stack.extra = extra
        let fcmApp = fcm.makeApplication()
        let smsApp = stack.sms.makeApplication()
        do {
            let result = try await withThrowingTaskGroup(of: Void.self) { group -> T in
                group.addTask { try await fcmApp.run() }
                group.addTask { try await smsApp.run() }
                defer { group.cancelAll() }
                _ = try await eventually("fake FCM listening") { fcm.port.withLockedValue { $0 } > 0 ? true : nil }
                _ = try await eventually("fake SMS providers listening") { stack.sms.port.withLockedValue { $0 } > 0 ? true : nil }
                try await stack.prepare()
                for service in services { try stack.start(service) }
                for service in services { try await stack.waitHealthy(service) }
                return try await body(stack)
            }
            await stack.teardown()
            return result
        } catch {
            for (service, process) in stack.processes where !process.log.isEmpty {
                print("---- log of \(service.rawValue) ----\n" + String(process.log.suffix(4000)))
            }
            await stack.teardown()
            throw error
        }
    }

    private func prepare() async throws {
        // CI once saw this PUT outlast its deadline while 20 tests started at once on two cores; it is idempotent,
        // so it is retried until the vhost is there.
        let management = infra.management(http)
        _ = try await eventually("RabbitMQ vhost \(infra.rabbit.vhost)", timeout: .seconds(120)) { () -> Bool? in
            try await management.ensureVhost(user: self.infra.rabbit.user)
            return true
        }
        try await TemplateDatabases.clone(into: infra)
        apiKey = try await createKey(scopes: ["notifications:write", "notifications:read"])
    }

    private func teardown() async {
        for process in processes.values { await process.stop() }
        for process in replicas { await process.stop() }
        try? await infra.management(http).deleteVhost()
        await infra.dropDatabases()
        try? await http.shutdown()
    }

    func url(_ service: Service) -> String { "http://127.0.0.1:\(ports[service]!)" }

    func start(_ service: Service, extra: [String: String] = [:]) throws {
        processes[service] = try NotifyProcess(
            name: service.rawValue,
            arguments: [service.rawValue],
            environment: infra.processEnvironment(environment(extra, for: service))
        )
    }

    /// Each service logs in to PostgreSQL as its own role, with only the rights `notify migrate` granted it: a
    /// query that needs more fails its test.
    private func role(of service: Service) -> ServiceRoles.Role {
        switch service {
        case .users: return infra.roles.users!
        case .templates: return infra.roles.templates!
        default: return infra.roles.notifications!
        }
    }

    private func environment(_ extra: [String: String], for service: Service) -> [String: String] {
        var environment: [String: String] = [
            "NOTIFY_USERS_URL": url(.users),
            "NOTIFY_TEMPLATES_URL": url(.templates),
            "NOTIFY_FCM_URL": fcm.url,
            "NOTIFY_FCM_SERVICE_ACCOUNT": fcm.serviceAccountJSON,
            "NOTIFY_VAPID_PRIVATE_KEY": Self.vapidPrivateKey,
            "NOTIFY_VAPID_SUBJECT": Self.vapidSubject,
            "NOTIFY_WEBPUSH_ALLOW_LOOPBACK": "true",
            "NOTIFY_RELAY_POLL_MS": "200",
        ]
        // Read only by a push worker whose NOTIFY_PUSH_PROVIDERS names onesignal.
        environment.merge(fcm.oneSignalSettings) { $1 }
        // The SMS worker's providers (Twilio first, Vonage when a test lists it) and the signed webhooks' settings.
        environment.merge([
            "NOTIFY_TWILIO_URL": sms.twilioURL, "NOTIFY_TWILIO_ACCOUNT_SID": FakeSMSProviders.accountSID,
            "NOTIFY_TWILIO_AUTH_TOKEN": FakeSMSProviders.authToken, "NOTIFY_TWILIO_FROM": FakeSMSProviders.from,
            "NOTIFY_VONAGE_URL": sms.vonageURL, "NOTIFY_VONAGE_API_KEY": FakeSMSProviders.vonageKey,
            "NOTIFY_VONAGE_API_SECRET": FakeSMSProviders.vonageSecret, "NOTIFY_VONAGE_FROM": "Notify",
            "NOTIFY_PUBLIC_GATEWAY_URL": url(.gateway),
            "NOTIFY_SMS_STATUS_CALLBACK_URL": "\(url(.gateway))/api/v1/webhooks/sms/twilio/status",
        ]) { $1 }
        for (other, port) in ports { environment[other.portKey] = String(port) }
        let role = role(of: service)
        environment["NOTIFY_PG_USER"] = role.name
        environment["NOTIFY_PG_PASSWORD"] = role.password
        for (key, value) in self.extra { environment[key] = value }
        for (key, value) in extra { environment[key] = value }
        return environment
    }

    /// More copies of a service (scale-out), each on its own port; stopped with the stack. Returns its base URL.
    private(set) var replicas: [NotifyProcess] = []

    func startReplica(_ service: Service, name: String, extra: [String: String] = [:]) async throws -> String {
        let port = freePort()
        var settings = extra
        settings[service.portKey] = String(port)
        settings["NOTIFY_WORKER_NAME"] = name
        let process = try NotifyProcess(
            name: name,
            arguments: [service.rawValue],
            environment: infra.processEnvironment(environment(settings, for: service))
        )
        replicas.append(process)
        let url = "http://127.0.0.1:\(port)"
        _ = try await eventually("\(name) healthy", timeout: .seconds(60)) { () -> Bool? in
            guard process.isRunning else { throw ProcessExited(service: name) }
            let response = try await self.call(.GET, "\(url)/health")
            return response.status == 200 && response.data["service"] as? String == service.rawValue ? true : nil
        }
        return url
    }

    func stop(_ service: Service) async {
        await processes[service]?.stop()
    }

    func process(_ service: Service) -> NotifyProcess? { processes[service] }

    func waitHealthy(_ service: Service) async throws {
        _ = try await eventually("\(service.rawValue) healthy", timeout: .seconds(60)) { () -> Bool? in
            guard self.processes[service]?.isRunning == true else { throw ProcessExited(service: service.rawValue) }
            let response = try await self.call(.GET, "\(self.url(service))/health")
            // The service name guards against another process answering on the port.
            return response.status == 200 && response.data["service"] as? String == service.rawValue ? true : nil
        }
    }

    // MARK: HTTP

    struct Reply: @unchecked Sendable {
        var status: Int
        var headers: HTTPHeaders
        var json: [String: Any]

        var data: [String: Any] { json["data"] as? [String: Any] ?? [:] }
        var error: String? { json["error"] as? String }
        var details: [[String: String]] { json["details"] as? [[String: String]] ?? [] }
    }

    func perform(_ method: HTTPMethod, _ url: String, json: Any?, headers: [String: String]) async throws -> Reply {
        var request = HTTPClientRequest(url: url)
        request.method = method
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: json)))
        }
        let response = try await http.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 8 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(buffer: body))) as? [String: Any] ?? [:]
        return Reply(status: Int(response.status.code), headers: response.headers, json: object)
    }

    /// Waits until a worker consumes from RabbitMQ (its health says so), rather than delivering from PostgreSQL.
    func waitConsuming(_ service: Service = .emailWorker, timeout: Duration = .seconds(30)) async throws {
        _ = try await eventually("\(service.rawValue) consuming", timeout: timeout) { () -> Bool? in
            let health = try await call(.GET, "\(url(service))/health")
            return ((health.data["checks"] as? [String: Any])?["rabbitmq"] as? [String: Any])?["status"] as? String == "up" ? true : nil
        }
    }

    /// Waits until the notification reaches `status`.
    func waitForStatus(_ id: String, _ status: String, timeout: Duration = .seconds(30)) async throws -> [String: Any] {
        try await eventually("notification \(id) \(status)", timeout: timeout) { () -> [String: Any]? in
            let reply = try await self.notification(id)
            return reply.data["status"] as? String == status ? reply.data : nil
        }
    }

    /// Waits for the email with this notification's Message-ID at the SMTP sink.
    func waitForEmail(_ notificationID: String, timeout: Duration = .seconds(30)) async throws -> ReceivedEmail {
        try await eventually("email for \(notificationID)", timeout: timeout) {
            ReceivedEmail.with(messageID: "\(notificationID)@notify.local", in: self.infra.maildir).first
        }
    }
}

extension Stack {
    /// Runs `deploy/local/infra.sh <command> <component>` on the test infrastructure (kill, start, stop, restart).
    func infraControl(_ command: String, _ component: String) throws {
        guard let script = infra.env["NOTIFY_INFRA_SCRIPT"] else { throw MissingInfrastructure() }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script, command, component]
        process.environment = infra.env
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw InfraCommandFailed(command: "\(command) \(component)", status: process.terminationStatus) }
    }

    /// The PID the infrastructure script recorded for a component.
    func infraPID(_ component: String) throws -> Int32 {
        guard let directory = infra.env["NOTIFY_LOCAL_DIR"] else { throw MissingInfrastructure() }
        let text = try String(contentsOfFile: "\(directory)/pids/\(component).pid", encoding: .utf8)
        guard let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) else { throw MissingInfrastructure() }
        return pid
    }

    /// Tells the SMTP sink how to answer DATA: "ok", "451", "550".
    func smtpMode(_ mode: String) async throws {
        var request = HTTPClientRequest(url: "\(infra.smtpControl)/mode")
        request.method = .PUT
        request.body = .bytes(ByteBuffer(string: mode))
        let response = try await http.execute(request, timeout: .seconds(5))
        guard response.status == .ok || response.status == .noContent else { throw InfraCommandFailed(command: "smtp mode \(mode)", status: 1) }
    }

    /// Sends `count` notifications with `concurrency` requests in flight; returns the ids of the accepted ones.
    /// Requests refused with 503 (the database away) are tried again, as a client would.
    func sendMany(
        _ count: Int,
        concurrency: Int = 8,
        body: @escaping @Sendable (Int) -> [String: Any],
        onAccepted: @escaping @Sendable (Int) -> Void = { _ in }
    ) async throws -> [String] {
        let accepted = NIOLockedValueBox<[String]>([])
        let next = NIOLockedValueBox(0)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<concurrency {
                group.addTask {
                    while true {
                        let index = next.withLockedValue { value -> Int in
                            defer { value += 1 }
                            return value
                        }
                        guard index < count else { return }
                        let deadline = ContinuousClock.now + .seconds(120)
                        while true {
                            let reply = try? await self.send(body(index))
                            if let reply, reply.status == 202 || reply.status == 200, let id = reply.data["notification_id"] as? String {
                                let total = accepted.withLockedValue { ids -> Int in
                                    ids.append(id)
                                    return ids.count
                                }
                                onAccepted(total)
                                break
                            }
                            if let reply, reply.status != 503 { throw UnexpectedReply(reply: reply.json, status: reply.status) }
                            guard ContinuousClock.now < deadline else { throw TimedOut(what: "notification \(index) accepted") }
                            try await Task.sleep(for: .milliseconds(100))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        return accepted.withLockedValue { $0 }
    }

    /// How many emails the sink holds for each of these notification ids (reads only each file's headers).
    func emailCounts(for ids: [String]) -> [String: Int] {
        let wanted = Set(ids.map { "<\($0)@notify.local>" })
        var counts: [String: Int] = [:]
        for folder in ["new", "cur"] {
            let directory = infra.maildir.appendingPathComponent(folder)
            for file in (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? [] {
                guard let messageID = ReceivedEmail.messageID(atPath: directory.appendingPathComponent(file).path) else { continue }
                if wanted.contains(messageID) { counts[messageID, default: 0] += 1 }
            }
        }
        return counts
    }

    /// A notification's job id and the body of its first queue message, to publish by hand as a relay would: from its
    /// outbox row while that waits, and once the row is gone (published or claimed from PostgreSQL) built from the rows
    /// as `dispatch_jobs` built it.
    func queueMessage(of notificationID: UUID) async throws -> (jobID: Int, payload: String)? {
        try await infra.withDatabase(.notifications) { client in
            for try await row in try await client.query(
                """
                SELECT j.id, COALESCE(
                    (SELECT o.payload::text FROM outbox o WHERE o.message_id = j.id::text ORDER BY o.id LIMIT 1),
                    jsonb_build_object('notification_id', n.id, 'job_id', j.id, 'user_id', n.user_id, 'template_code', n.template_code,
                                       'variables', n.variables, 'request_id', n.request_id, 'priority', n.priority,
                                       'metadata', n.metadata, 'attempt', 0)::text)
                FROM jobs j JOIN notifications n ON n.id = j.notification_id WHERE j.notification_id = \(notificationID)
                """,
                logger: TestInfrastructure.logger
            ).decode((Int, String).self) { return row }
            return nil
        }
    }
}

struct InfraCommandFailed: Error, CustomStringConvertible {
    var command: String
    var status: Int32
    var description: String { "infra \(command) exited \(status)" }
}

struct ProcessExited: Error, CustomStringConvertible {
    var service: String
    var description: String { "\(service) exited" }
}

struct UnexpectedReply: Error, @unchecked Sendable, CustomStringConvertible {
    var reply: [String: Any]
    var status: Int
    var description: String { "unexpected reply \(status): \(reply)" }
}

extension Stack {
    /// Runs a one-shot `notify` command (e.g. `admin create-key`) with this stack's environment, on a thread of its
    /// own (`onOwnThread`); its stdout and status.
    func runCommand(
        _ arguments: [String],
        executable: URL = NotifyProcess.binary,
        environment: [String: String] = [:],
        withErrors: Bool = false
    ) async throws -> (status: Int32, output: String) {
        try await onOwnThread { try self.runCommandBlocking(arguments, executable: executable, environment: environment, withErrors: withErrors) }
    }

    private func runCommandBlocking(
        _ arguments: [String],
        executable: URL,
        environment: [String: String],
        withErrors: Bool
    ) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = infra.processEnvironment(environment)
        process.currentDirectoryURL = NotifyProcess.repositoryRoot
        let output = Pipe()
        process.standardOutput = output
        process.standardError = withErrors ? output : FileHandle.nullDevice
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }
}
