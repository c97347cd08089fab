import EmailProviders
import Foundation
import SMTPTransport
import Testing

/// SMTP over TLS against a real local server (aiosmtpd with a certificate made here and AUTH): STARTTLS and implicit
/// TLS deliver and authenticate inside TLS; a certificate from another CA is refused before any credential is sent; a
/// server that offers AUTH but no STARTTLS never sees the credentials.
@Suite(.serialized) struct SMTPTLSTests {
    static let user = "mailer@notify.test"
    static let password = "smtp-secret-\(UUID().uuidString.prefix(8))"

    @Test func startTLSDeliversAndAuthenticatesInsideTLS() async throws {
        try await TLSMailServer.with(mode: "starttls") { server in
            let transport = SMTPTransport(
                configuration: .init(url: "smtp://localhost:\(server.port)", username: Self.user, password: Self.password, caFile: server.caFile)
            )
            #expect(transport.security == .starttls, "credentials make STARTTLS the default")
            try await transport.send(Self.message("starttls"))
            await transport.shutdown()
            let events = try server.events()
            let auths = events.filter { $0["event"] as? String == "auth" }
            #expect(auths.count == 1)
            #expect(auths.allSatisfy { $0["tls"] as? Bool == true && $0["ok"] as? Bool == true })
            let messages = events.filter { $0["event"] as? String == "message" }
            #expect(messages.count == 1)
            #expect(messages.first?["tls"] as? Bool == true)
            #expect(messages.first?["authenticated"] as? Bool == true)
            #expect((messages.first?["data"] as? String)?.contains("Subject: starttls") == true)
        }
    }

    @Test func implicitTLSDelivers() async throws {
        try await TLSMailServer.with(mode: "implicit") { server in
            let transport = SMTPTransport(
                configuration: .init(url: "smtps://localhost:\(server.port)", username: Self.user, password: Self.password, caFile: server.caFile)
            )
            #expect(transport.security == .implicit)
            try await transport.send(Self.message("implicit"))
            await transport.shutdown()
            let events = try server.events()
            #expect(events.filter { $0["event"] as? String == "auth" }.map { $0["tls"] as? Bool } == [true])
            #expect(events.filter { $0["event"] as? String == "message" }.map { $0["tls"] as? Bool } == [true])
        }
    }

    @Test func certificateFromAnotherAuthorityIsRefusedBeforeCredentials() async throws {
        try await TLSMailServer.with(mode: "starttls") { server in
            // The CA file names a different authority than the one that signed the server's certificate.
            let transport = SMTPTransport(
                configuration: .init(url: "smtp://localhost:\(server.port)", username: Self.user, password: Self.password, caFile: server.otherCAFile)
            )
            let error = await #expect(throws: SMTPError.self) { try await transport.send(Self.message("wrong cert")) }
            await transport.shutdown()
            #expect(error?.transportCode == .certificateRefused, "\(String(describing: error))")
            #expect(error?.permanent == false)
            let events = try server.events()
            #expect(!events.contains { $0["event"] as? String == "auth" }, "no credential reached a server whose certificate failed")
            #expect(!events.contains { $0["event"] as? String == "message" })
            // As the chain classifies it: a transient failure with a stable code, so another provider may send.
            let classified = SMTPProvider.classify(error!)
            #expect(classified.code == .certificateRefused && !classified.permanent)
        }
    }

    @Test func credentialsAreNeverSentWhereTLSIsNotOffered() async throws {
        try await TLSMailServer.with(mode: "plain") { server in
            let transport = SMTPTransport(
                configuration: .init(url: "smtp://localhost:\(server.port)", username: Self.user, password: Self.password, caFile: server.caFile)
            )
            let error = await #expect(throws: SMTPError.self) { try await transport.send(Self.message("plain")) }
            await transport.shutdown()
            #expect(error?.transportCode == .tlsUnavailable, "\(String(describing: error))")
            let events = try server.events()
            #expect(!events.contains { $0["event"] as? String == "auth" }, "the server offered AUTH in clear and got no credentials")
            #expect(!events.contains { $0["event"] as? String == "message" })
        }
    }

    @Test func configurationRefusesCredentialsWithoutTLS() {
        let plain = SMTPTransport.Configuration(url: "smtp://mail.example.com:25", username: "u", password: "p", security: SMTPSecurity.none)
        #expect(plain.problems.contains { $0.contains("only sent over TLS") })
        let opportunistic = SMTPTransport.Configuration(url: "smtp://mail.example.com:25", username: "u", password: "p", security: .opportunistic)
        #expect(opportunistic.problems.contains { $0.contains("only sent over TLS") })
        let mismatch = SMTPTransport.Configuration(url: "smtp://mail.example.com:465", security: .implicit)
        #expect(mismatch.problems.contains { $0.contains("smtps://") })
        let missingCA = SMTPTransport.Configuration(url: "smtps://mail.example.com", caFile: "/nonexistent/ca.pem")
        #expect(missingCA.problems.contains { $0.contains("NOTIFY_SMTP_CA_FILE") })
        #expect(SMTPTransport.Configuration(url: "smtp://127.0.0.1:2525").problems.isEmpty)
        #expect(SMTPTransport.Configuration(url: "smtp://127.0.0.1:2525").security == SMTPSecurity.none)
        #expect(SMTPTransport.Configuration(url: "smtp://smtp.sendgrid.net:587", username: "apikey", password: "k").security == .starttls)
    }

    static func message(_ subject: String) -> EmailMessage {
        EmailMessage(
            from: "notifications@notify.test",
            fromName: "Notify",
            to: "someone@example.test",
            toName: nil,
            subject: subject,
            text: "hello over TLS",
            html: nil,
            messageID: "\(UUID().uuidString.lowercased())@notify.test"
        )
    }
}

/// Tests/NotifyTests/Support/tls_smtp.py in one mode, with a CA and a server certificate (for localhost and 127.0.0.1)
/// made by openssl for the test, and a second CA that signed nothing of the server's.
struct TLSMailServer {
    let port: Int
    let directory: URL
    var caFile: String { directory.appendingPathComponent("ca.pem").path }
    var otherCAFile: String { directory.appendingPathComponent("other-ca.pem").path }
    var eventsFile: URL { directory.appendingPathComponent("events.jsonl") }

    func events() throws -> [[String: Any]] {
        let text = (try? String(contentsOf: eventsFile, encoding: .utf8)) ?? ""
        return text.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    static func with(mode: String, _ body: (TLSMailServer) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tls-smtp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try makeCertificates(in: directory)
        let server = TLSMailServer(port: freePort(), directory: directory)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        process.arguments = [
            NotifyProcess.repositoryRoot.appendingPathComponent("Tests/NotifyTests/Support/tls_smtp.py").path, mode, String(server.port),
            directory.appendingPathComponent("server.pem").path, directory.appendingPathComponent("server.key").path,
            SMTPTLSTests.user, SMTPTLSTests.password, server.eventsFile.path,
        ]
        let log = directory.appendingPathComponent("server.log")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: log)
        process.standardError = process.standardOutput
        try process.run()
        defer {
            // Killed outright: the test needs nothing more from it, and a graceful stop could wait on open sessions.
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        _ = try await eventually("tls_smtp.py \(mode) listening", timeout: .seconds(60)) { () -> Bool? in
            guard process.isRunning else {
                throw ServerExited(log: (try? String(contentsOf: log, encoding: .utf8)) ?? "")
            }
            return try server.events().contains { $0["event"] as? String == "listening" } ? true : nil
        }
        try await body(server)
    }

    struct ServerExited: Error, CustomStringConvertible {
        var log: String
        var description: String { "tls_smtp.py exited: \(log)" }
    }

    /// A CA, a server certificate it signs (SAN localhost and 127.0.0.1), and an unrelated CA.
    static func makeCertificates(in directory: URL) throws {
        func path(_ name: String) -> String { directory.appendingPathComponent(name).path }
        FileManager.default.createFile(atPath: path("san.cnf"), contents: Data("subjectAltName=DNS:localhost,IP:127.0.0.1\n".utf8))
        let steps: [[String]] = [
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("ca.key"), "-out", path("ca.pem"),
                "-days", "2", "-subj", "/CN=Notify Test CA",
            ],
            [
                "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("other-ca.key"), "-out",
                path("other-ca.pem"), "-days", "2", "-subj", "/CN=Some Other CA",
            ],
            [
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", path("server.key"), "-out", path("server.csr"),
                "-subj", "/CN=localhost",
            ],
            [
                "x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"), "-CAcreateserial", "-out",
                path("server.pem"),
                "-days", "2", "-extfile", path("san.cnf"),
            ],
        ]
        for arguments in steps {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            process.arguments = arguments
            process.standardOutput = FileHandle.nullDevice
            let errors = Pipe()
            process.standardError = errors
            try process.run()
            let detail = errors.fileHandleForReading.readDataToEndOfFile()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw ServerExited(log: "openssl \(arguments.first ?? ""): " + String(decoding: detail, as: UTF8.self))
            }
        }
    }
}
