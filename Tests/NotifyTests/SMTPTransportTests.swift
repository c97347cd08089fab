import EmailProviders
import Foundation
import SMTPTransport
import Testing

/// The SMTP transport's engine (libcurl's multi interface on one thread) against the local SMTP sink: many sends at
/// once over fewer connections each arrive once; a send refused at the connection fails at once, transient; shutdown
/// lets the sends in progress end, and a send after it fails instead of waiting.
@Suite struct SMTPTransportTests {
    static func message(_ id: String) -> EmailMessage {
        EmailMessage(
            from: "notifications@notify.test",
            fromName: "Notify",
            to: "reader@example.test",
            toName: "Reader",
            subject: "engine \(id)",
            text: "one of many\n.a line that starts with a dot\n",
            html: nil,
            messageID: "\(id)@notify.test"
        )
    }

    @Test func manySendsOverFewConnectionsEachArriveOnce() async throws {
        let infra = try TestInfrastructure()
        let transport = SMTPTransport(configuration: .init(url: "smtp://\(infra.smtpHost):\(infra.smtpPort)", connections: 3))
        let ids = (0..<40).map { _ in UUID().uuidString.lowercased() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for id in ids { group.addTask { try await transport.send(Self.message(id)) } }
            try await group.waitForAll()
        }
        await transport.shutdown()
        for id in ids {
            let received = ReceivedEmail.with(messageID: "\(id)@notify.test", in: infra.maildir)
            #expect(received.count == 1, "message \(id) stored once")
            #expect(received.first?.header("Subject") == "engine \(id)")
        }
    }

    /// One send to a loopback port that has no SMTP server: its error (checked transient, without a reply code) and
    /// how long it took.
    static func failedSend(toPort port: Int, timeoutSeconds: Int) async -> (error: SMTPError?, took: Duration) {
        let transport = SMTPTransport(configuration: .init(url: "smtp://127.0.0.1:\(port)", timeoutSeconds: timeoutSeconds))
        let started = ContinuousClock.now
        let error = await #expect(throws: SMTPError.self) { try await transport.send(Self.message(UUID().uuidString)) }
        let took = ContinuousClock.now - started
        #expect(error?.permanent == false)
        #expect(error?.replyCode == 0)
        await transport.shutdown()
        return (error, took)
    }

    @Test func aRefusedConnectionFailsAtOnceAndTransient() async throws {
        // A port nothing listens on: bound and closed here, so the connection is refused.
        let socket = try ClosedPort()
        let (_, took) = await Self.failedSend(toPort: socket.port, timeoutSeconds: 30)
        #expect(took < .seconds(20), "a refused connection is not waited out to the timeout")
    }

    @Test(.timeLimit(.minutes(1)))
    func aServerThatNeverAnswersTimesOutTransient() async throws {
        // Listening, so the connection is made, but nothing ever reads or writes on it: only libcurl's transfer timer,
        // which the engine's own loop drives, can end the send.
        let silent = try ListeningPort()
        defer { silent.close() }
        let (error, took) = await Self.failedSend(toPort: silent.port, timeoutSeconds: 2)
        #expect(error?.message.contains("timed out") == true, "\(error?.message ?? "")")
        #expect(took >= .seconds(1), "it waited for the greeting until the timeout")
    }

    @Test func shutdownLetsSendsInProgressEndAndRefusesLaterOnes() async throws {
        let infra = try TestInfrastructure()
        let transport = SMTPTransport(configuration: .init(url: "smtp://\(infra.smtpHost):\(infra.smtpPort)", connections: 4))
        let ids = (0..<12).map { _ in UUID().uuidString.lowercased() }
        let outcomes = try await withThrowingTaskGroup(of: (String, Bool).self) { group in
            for id in ids {
                group.addTask {
                    do {
                        try await transport.send(Self.message(id))
                        return (id, true)
                    } catch let error as SMTPError {
                        #expect(error.permanent == false, "a send cut by shutdown may be tried again")
                        return (id, false)
                    }
                }
            }
            group.addTask {
                await transport.shutdown()
                return ("", false)
            }
            var outcomes: [String: Bool] = [:]
            for try await (id, sent) in group where !id.isEmpty { outcomes[id] = sent }
            return outcomes
        }
        #expect(outcomes.count == ids.count, "every send ended")
        for (id, sent) in outcomes {
            // A send that returned arrived; one refused by the shutdown did not go out at all.
            #expect(ReceivedEmail.with(messageID: "\(id)@notify.test", in: infra.maildir).count == (sent ? 1 : 0))
        }
        let late = await #expect(throws: SMTPError.self) { try await transport.send(Self.message(UUID().uuidString)) }
        #expect(late?.permanent == false)
        #expect(late?.message.contains("shut down") == true)
    }
}

/// A loopback port that was just free: bound, then closed, so a connection to it is refused.
private struct ClosedPort {
    let port: Int

    init() throws {
        let fd = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        port = Int(UInt16(bigEndian: address.sin_port))
    }
}

/// A loopback port that accepts connections (the kernel completes them from the backlog) and never answers.
private struct ListeningPort {
    let port: Int
    let fd: Int32

    init() throws {
        fd = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let fd = self.fd
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Int32 in
                guard bind(fd, pointer, length) == 0, listen(fd, 8) == 0 else { return -1 }
                return getsockname(fd, pointer, &length)
            }
        }
        guard bound == 0 else {
            Foundation.close(fd)
            throw POSIXError(.EADDRINUSE)
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    func close() { Foundation.close(fd) }
}
