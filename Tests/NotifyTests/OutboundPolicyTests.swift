import Foundation
import NIOCore
import NotifyConfig
import OutboundPolicy
import PostgresNIO
import Testing

@testable import NotifyHTTP
@testable import PushTransport
@testable import RedisCache
@testable import Telemetry

@Suite("Outbound policy: user-supplied endpoints never reach internal addresses")
struct OutboundPolicyTests {
    static let refusedAddresses = [
        "127.0.0.1", "127.1.2.3", "10.0.0.1", "172.16.5.4", "172.31.255.255", "192.168.1.1", "169.254.169.254", "100.64.0.1",
        "100.100.100.200", "0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1", "192.0.2.10", "198.18.0.1",
        "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "2001:db8::1", "::7f00:1",
    ]
    static let publicAddresses = ["8.8.8.8", "142.250.74.10", "172.32.0.1", "100.128.0.1", "2a00:1450:4001:82b::200a", "::ffff:8.8.8.8"]

    @Test("every internal, reserved and special range is refused, also inside IPv6; public addresses pass")
    func addressRanges() throws {
        for text in Self.refusedAddresses {
            let address = try #require(IPAddress(text), "\(text) parses")
            #expect(AddressPolicy.refusal(address) != nil, "\(text) must be refused")
        }
        for text in Self.publicAddresses {
            let address = try #require(IPAddress(text))
            #expect(AddressPolicy.refusal(address) == nil, "\(text) is public")
        }
        #expect(IPAddress("2130706433") == nil, "not a literal: a resolver's reading of it is checked after resolution")
        #expect(IPAddress("[::1]").map { AddressPolicy.isLoopback($0) } == true)
    }

    @Test("endpoints: https on 443 to an allowed push-service host; internal addresses, numeric tricks, other ports and hosts refused")
    func endpoints() {
        let policy = EndpointPolicy()
        #expect(policy.refusal(endpoint: "https://fcm.googleapis.com/fcm/send/abc") == nil)
        #expect(policy.refusal(endpoint: "https://updates.push.services.mozilla.com/wpush/v2/gAAA") == nil)
        #expect(policy.refusal(endpoint: "https://db5p.notify.windows.com/w/?token=x") == nil)
        #expect(policy.refusal(endpoint: "https://web.push.apple.com/QGx") == nil)
        let refused = [
            "https://169.254.169.254/latest/meta-data", "https://10.0.0.1/", "https://127.0.0.1:15672/", "https://[::1]:6379/",
            "http://fcm.googleapis.com/fcm/send/abc", "https://fcm.googleapis.com:8443/x", "https://user:pw@fcm.googleapis.com/x",
            "https://evil.example.com/x", "https://fcm.googleapis.com.evil.example/x", "https://localhost/x", "https://push.localhost/x",
            "https://metadata.google.internal/x", "https://2130706433/", "https://0x7f.1/", "https://127.1/", "https://intranet/x",
            "ftp://fcm.googleapis.com/x", "not a url", "https:///x",
        ]
        for endpoint in refused {
            #expect(policy.refusal(endpoint: endpoint) != nil, "\(endpoint) must be refused")
        }
        // Any public host when the list is "*", still never an internal one.
        let open = EndpointPolicy(environment: { $0 == "NOTIFY_WEBPUSH_ALLOWED_HOSTS" ? "*" : nil })
        #expect(open.refusal(endpoint: "https://push.example.com/x") == nil)
        #expect(open.refusal(endpoint: "https://8.8.8.8/x") == nil)
        #expect(open.refusal(endpoint: "https://192.168.0.1/x") != nil)
        #expect(open.refusal(endpoint: "https://printer.local/x") != nil)
        // The development switch admits loopback only.
        let development = EndpointPolicy(environment: { $0 == "NOTIFY_WEBPUSH_ALLOW_LOOPBACK" ? "true" : nil })
        #expect(development.refusal(endpoint: "http://127.0.0.1:9999/webpush/1") == nil)
        #expect(development.refusal(endpoint: "https://[::1]:9999/webpush/1") == nil)
        #expect(development.refusal(endpoint: "https://10.0.0.1/x") != nil)
    }

    @Test("at connect time every address a name resolves to is checked: a name for loopback is refused unless allowed")
    func resolution() async throws {
        let policy = EndpointPolicy(allowedHosts: [])
        await #expect(throws: EndpointRefused.self) { try await policy.resolve(host: "localhost.") }
        await #expect(throws: EndpointRefused.self) { try await policy.resolve(host: "127.0.0.1") }
        await #expect(throws: EndpointRefused.self) { try await policy.resolve(host: "[::ffff:127.0.0.1]") }
        // A public-looking name whose resolver answers with an internal address (rebinding) is refused, also when
        // the internal one is only among several.
        var rebinding = EndpointPolicy(allowedHosts: [])
        rebinding.lookup = { _ in [IPAddress("93.184.216.34")!, IPAddress("10.1.2.3")!] }
        await #expect(throws: EndpointRefused.self) { try await rebinding.resolve(host: "push.example.com") }
        rebinding.lookup = { _ in [IPAddress("::ffff:169.254.169.254")!] }
        await #expect(throws: EndpointRefused.self) { try await rebinding.resolve(host: "push.example.com") }
        rebinding.lookup = { _ in [IPAddress("93.184.216.34")!] }
        #expect(try await rebinding.resolve(host: "push.example.com").description == "93.184.216.34")
        // The system resolver: localhost is loopback.
        #expect(try EndpointPolicy.systemLookup("localhost").allSatisfy(AddressPolicy.isLoopback))
        let development = EndpointPolicy(allowedHosts: [], allowLoopback: true)
        #expect(try await development.resolve(host: "127.0.0.1").description == "127.0.0.1")
    }

    @Test("provider answers become stable codes; a Location off the endpoint's host is not handed out")
    func providerAnswers() throws {
        #expect(PushError.http("webpush", status: 307, detail: "", retryAfter: nil).code == .redirected)
        #expect(PushError.http("webpush", status: 307, detail: "", retryAfter: nil).permanent)
        #expect(PushError.http("webpush", status: 410, detail: "", retryAfter: nil, deviceGone: true).code == .deviceGone)
        #expect(PushError.http("webpush", status: 429, detail: "", retryAfter: "99999").retryAfterSeconds == 3600)
        #expect(PushError.http("fcm", status: 503, detail: "UNAVAILABLE", retryAfter: nil).code == .providerUnavailable)
        #expect(PushError.http("fcm", status: 403, detail: "", retryAfter: nil).code == .providerAuthFailed)
        #expect(PushError.http("fcm", status: 400, detail: "INVALID_ARGUMENT", retryAfter: nil).code == .rejectedByProvider)
        let endpoint = try #require(URL(string: "https://fcm.googleapis.com/fcm/send/abc"))
        #expect(WebPushTransport.messageLocation("https://fcm.googleapis.com/m/123", endpoint: endpoint) == "https://fcm.googleapis.com/m/123")
        #expect(WebPushTransport.messageLocation("http://169.254.169.254/latest/meta-data/iam", endpoint: endpoint) == "")
        #expect(WebPushTransport.messageLocation("https://fcm.googleapis.com/m/1\r\nSet-Cookie: x", endpoint: endpoint) == "")
        #expect(WebPushTransport.messageLocation(nil, endpoint: endpoint) == "")
        for code in PushErrorCode.allCases { #expect(!code.reason.isEmpty && !code.reason.contains("HTTP")) }
    }
}

@Suite("RESP: replies parsed whole, however the bytes arrive")
struct RESPTests {
    enum Outcome: Equatable {
        case reply(RedisClient.Reply)
        case error(String)
    }

    @Test("each kind of reply, nested arrays and nulls; a reply split anywhere waits for the rest; an error inside an array fails it")
    func replies() throws {
        let wire =
            "+OK\r\n-ERR wrong type\r\n:-42\r\n$5\r\na\r\nb\0\r\n$-1\r\n*-1\r\n*3\r\n$0\r\n\r\n*1\r\n:7\r\n$3\r\nkey\r\n"
            + "*2\r\n:1\r\n-NOSCRIPT gone\r\n$3\r\nhé\r\n"
        let expected: [Outcome] = [
            .reply(.status("OK")), .error("redis: ERR wrong type"), .reply(.integer(-42)), .reply(.string("a\r\nb\0")),
            .reply(.null), .reply(.null), .reply(.array([.string(""), .array([.integer(7)]), .string("key")])),
            .error("redis: NOSCRIPT gone"), .reply(.string("hé")),
        ]
        let bytes = Array(wire.utf8)
        // Whole, and then one byte at a time: the same replies, and nothing taken before a reply is complete.
        for step in [bytes.count, 1, 3] {
            var buffer = ByteBuffer()
            var replies: [Outcome] = []
            for start in stride(from: 0, to: bytes.count, by: step) {
                buffer.writeBytes(bytes[start..<min(start + step, bytes.count)])
                while let reply = try RESP.parse(&buffer) {
                    switch reply {
                    case .success(let value): replies.append(.reply(value))
                    case .failure(let error): replies.append(.error(error.message))
                    }
                }
            }
            #expect(replies == expected, "step \(step)")
            #expect(buffer.readableBytes == 0)
        }
        var garbage = ByteBuffer(string: "?what\r\n")
        #expect(throws: RedisError.self) { try RESP.parse(&garbage) }
    }

    @Test("a command is an array of bulk strings, each argument's exact bytes")
    func command() {
        var buffer = ByteBuffer()
        RESP.encode(["SET", "k\0y", "hé", ""], into: &buffer)
        #expect(String(buffer: buffer) == "*4\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$3\r\nhé\r\n$0\r\n\r\n")
    }
}

@Suite("Redis client: arguments are bytes with explicit lengths")
struct RedisArgumentTests {
    @Test("values with NUL bytes, multibyte UTF-8 and empty strings round-trip exactly through real Redis")
    func binarySafeArguments() async throws {
        let infra = try TestInfrastructure()
        let redis = RedisClient(host: infra.redis.host, port: infra.redis.port, timeoutMilliseconds: 5000)
        let key = "\(infra.redis.keyPrefix)argument-test:\(UUID().uuidString)"
        for value in ["a\u{0}b\u{0}\u{0}c", "Grüße, 世界 🚀", "", String(repeating: "x", count: 100_000)] {
            try await redis.set(key, value, ttlSeconds: 60)
            #expect(try await redis.get(key) == value)
        }
        try await redis.delete([key])
    }

    @Test("concurrent commands go as pipelines: each caller gets its own reply, an error reply fails only its own command")
    func pipelinedCommands() async throws {
        let infra = try TestInfrastructure()
        let redis = RedisClient(host: infra.redis.host, port: infra.redis.port, timeoutMilliseconds: 5000)
        let prefix = "\(infra.redis.keyPrefix)pipeline-test:\(UUID().uuidString):"
        // 300 callers at once: INCRBY on a key of its own by its own index (so a reply given to the wrong caller
        // shows), and every 25th a command Redis refuses (INCR of a non-integer value).
        try await redis.set(prefix + "text", "not a number", ttlSeconds: 60)
        let outcomes = await withTaskGroup(of: (Int, Result<RedisClient.Reply, any Error>).self) { group in
            for index in 0..<300 {
                group.addTask {
                    let command = index % 25 == 0 ? ["INCR", prefix + "text"] : ["INCRBY", prefix + String(index), String(index + 1)]
                    do { return (index, .success(try await redis.command(command))) } catch { return (index, .failure(error)) }
                }
            }
            var outcomes: [Int: Result<RedisClient.Reply, any Error>] = [:]
            for await (index, outcome) in group { outcomes[index] = outcome }
            return outcomes
        }
        #expect(outcomes.count == 300)
        for (index, outcome) in outcomes {
            if index % 25 == 0 {
                guard case .failure(let error) = outcome else {
                    Issue.record("command \(index) should have been refused")
                    continue
                }
                #expect("\(error)".contains("not an integer"), "\(error)")
            } else {
                #expect(try outcome.get() == .integer(index + 1), "command \(index)")
            }
        }
        // The connection is still good after the refusals.
        #expect(try await redis.command(["INCRBY", prefix + "1", "10"]) == .integer(12))
        try await redis.delete([prefix + "text"] + (0..<300).map { prefix + String($0) })
    }

    @Test("a Redis with a password: AUTH on every connection; a wrong or missing password is refused without echoing it")
    func passwordProtectedRedis() async throws {
        let port = freePort()
        let server = Process()
        server.executableURL = URL(fileURLWithPath: "/usr/bin/redis-server")
        server.arguments = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--requirepass", "s3cret-redis-pass"]
        server.standardOutput = FileHandle.nullDevice
        server.standardError = FileHandle.nullDevice
        try server.run()
        do {
            try await Self.exercise(port: port)
        } catch {
            kill(server.processIdentifier, SIGKILL)
            throw error
        }
        // SIGKILL: the test runner's blocked SIGTERM is inherited by its children, so this throwaway server would not
        // hear a SIGTERM. (Foundation's waitUntilExit spins a CPU off the main thread: poll instead.)
        kill(server.processIdentifier, SIGKILL)
        _ = try await eventually("redis-server exits", timeout: .seconds(30)) { () -> Bool? in server.isRunning ? nil : true }
    }

    static func exercise(port: Int) async throws {
        let good = RedisClient(host: "127.0.0.1", port: port, timeoutMilliseconds: 2000, password: "s3cret-redis-pass")
        _ = try await eventually("redis-server answers", timeout: .seconds(30)) { () -> Bool? in
            (try? await good.ping()) != nil ? true : nil
        }
        try await good.set("k", "v", ttlSeconds: 60)
        #expect(try await good.get("k") == "v")
        let none = RedisClient(host: "127.0.0.1", port: port, timeoutMilliseconds: 2000)
        await #expect(throws: RedisError.self) { try await none.get("k") }
        let wrong = RedisClient(host: "127.0.0.1", port: port, timeoutMilliseconds: 2000, password: "guessed-password")
        do {
            _ = try await wrong.get("k")
            Issue.record("a wrong password was accepted")
        } catch let error as RedisError {
            #expect(error.message.contains("authentication refused"))
            #expect(!error.message.contains("guessed-password"))
        }
    }
}

@Suite("Metrics exposure")
struct MetricsAccessTests {
    @Test("/metrics: loopback callers, or the metrics token; anyone only when NOTIFY_METRICS_ACCESS=public")
    func access() {
        #expect(MetricsRoute.allows(peer: "127.0.0.1", authorization: nil, access: .loopback, token: nil))
        #expect(MetricsRoute.allows(peer: "::1", authorization: nil, access: .loopback, token: nil))
        #expect(!MetricsRoute.allows(peer: "10.1.2.3", authorization: nil, access: .loopback, token: nil))
        #expect(!MetricsRoute.allows(peer: nil, authorization: nil, access: .loopback, token: nil))
        #expect(MetricsRoute.allows(peer: "10.1.2.3", authorization: "Bearer scrape-token-1", access: .loopback, token: "scrape-token-1"))
        #expect(!MetricsRoute.allows(peer: "10.1.2.3", authorization: "Bearer scrape-token-2", access: .loopback, token: "scrape-token-1"))
        #expect(!MetricsRoute.allows(peer: "10.1.2.3", authorization: "Bearer scrape-token-12", access: .loopback, token: "scrape-token-1"))
        #expect(!MetricsRoute.allows(peer: "10.1.2.3", authorization: "Bearer ", access: .loopback, token: "scrape-token-1"))
        #expect(MetricsRoute.allows(peer: "10.1.2.3", authorization: nil, access: .public, token: nil))
        let route = MetricsRoute(environment: ["NOTIFY_METRICS_ACCESS": "public"])
        #expect(route.access == .public)
        #expect(MetricsRoute(environment: [:]).access == .loopback)
    }
}

@Suite("TLS to PostgreSQL")
struct PostgresTLSTests {
    /// Connects with these settings to the `postgres` database and asks whether the session is encrypted.
    static func encrypted(_ settings: PostgresSettings) async throws -> Bool {
        let connection = try await PostgresConnection.connect(
            configuration: try settings.connectionConfiguration(database: "postgres"),
            id: 1,
            logger: TestInfrastructure.logger
        )
        defer { Task { try? await connection.close() } }
        for try await ssl in try await connection.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", logger: TestInfrastructure.logger)
            .decode(Bool.self)
        { return ssl }
        return false
    }

    @Test(
        "NOTIFY_PG_SSLMODE: disable is plain, require and verify-full are encrypted; verify-full refuses a server its CA did not sign; a service runs over TLS"
    )
    func modes() async throws {
        let infra = try TestInfrastructure()
        let caFile = try #require(ProcessInfo.processInfo.environment["NOTIFY_PG_CA_FILE"], "deploy/local/infra.sh exports the local CA")
        var settings = infra.postgres
        #expect(try await Self.encrypted(settings) == false)
        settings.sslMode = .require
        #expect(try await Self.encrypted(settings))
        settings.sslMode = .verifyFull
        settings.sslRootCert = caFile
        #expect(try await Self.encrypted(settings))

        // Another CA: the server's certificate does not chain to it.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("notify-ca-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let openssl = Process()
        openssl.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        openssl.arguments = [
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=someone-else",
            "-keyout", directory.appendingPathComponent("other.key").path, "-out", directory.appendingPathComponent("other.crt").path,
        ]
        openssl.standardError = FileHandle.nullDevice
        openssl.standardOutput = FileHandle.nullDevice
        try openssl.run()
        _ = try await eventually("openssl made a certificate", timeout: .seconds(60)) { () -> Bool? in openssl.isRunning ? nil : true }
        #expect(openssl.terminationStatus == 0)
        settings.sslRootCert = directory.appendingPathComponent("other.crt").path
        await #expect(throws: (any Error).self) { _ = try await Self.encrypted(settings) }

        // A whole service over verified TLS: the user service starts, serves, and its sessions are encrypted.
        try await Stack.with(services: [.users], extra: ["NOTIFY_PG_SSLMODE": "verify-full", "NOTIFY_PG_SSLROOTCERT": caFile]) { stack in
            _ = try await stack.createUser()
            let encryptedSessions: Int? = try await stack.scalar(
                """
                SELECT count(*)::int FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                WHERE a.application_name = 'notify-users' AND s.ssl AND a.datname = \(stack.infra.postgres.databaseName(.users))
                """
            )
            #expect((encryptedSessions ?? 0) >= 1)
        }
    }
}
