import AsyncHTTPClient
import Breakers
import Foundation
import HummingbirdTesting
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import Directory

/// Lookups of users the cache cannot answer are gathered while a call to the user service is out: a burst of creates
/// for new users costs a few calls, not one each.
@Suite("Recipient lookups")
struct RecipientLookupTests {
    /// A fetch that records the ids of each call, and holds the first call until `release` (so that lookups gather).
    final class Service: Sendable {
        let calls = NIOLockedValueBox<[[UUID]]>([])
        /// Each call's correlation id and deadline.
        let deadlines = NIOLockedValueBox<[(String, NIODeadline)]>([])
        let gate = NIOLockedValueBox<CheckedContinuation<Void, Never>?>(nil)
        let held = NIOLockedValueBox(true)
        let known: Set<UUID>
        let failing: Bool

        init(known: Set<UUID>, failing: Bool = false) {
            self.known = known
            self.failing = failing
        }

        func fetch(_ ids: [UUID], _ correlationID: String, _ deadline: NIODeadline) async throws -> [UUID: Recipient] {
            deadlines.withLockedValue { $0.append((correlationID, deadline)) }
            let first = calls.withLockedValue { calls in
                calls.append(ids.sorted { $0.uuidString < $1.uuidString })
                return calls.count == 1
            }
            if first {
                await withCheckedContinuation { continuation in
                    let open = held.withLockedValue { held in
                        if held { gate.withLockedValue { $0 = continuation } }
                        return !held
                    }
                    if open { continuation.resume() }
                }
            }
            if failing { throw DirectoryUnavailable(service: "user", reason: "HTTP 500") }
            var found: [UUID: Recipient] = [:]
            for id in ids where known.contains(id) { found[id] = try RecipientLookupTests.recipient(id) }
            return found
        }

        func release() {
            held.withLockedValue { $0 = false }
            gate.withLockedValue { gate in
                gate?.resume()
                gate = nil
            }
        }
    }

    @Test(
        "against the real user service: concurrent lookups of users not yet cached each get their own user, in fewer calls than users; through the gateway each create is checked against its own user"
    )
    func againstTheUserService() async throws {
        try await RouterHarness.with(.gateway) { stack in
            var emails: [UUID: String] = [:]
            var expected: [String: Int] = [:]
            for index in 0..<24 {
                let email = "u\(index).\(stack.infra.runID)@example.com"
                let off = index % 3 == 2
                let id = try await stack.createUser(name: "User \(index)", email: email, emailEnabled: !off)
                emails[try #require(UUID(uuidString: id))] = email
                expected[id] = off ? 422 : 202
            }
            let unknown = (0..<4).map { _ in UUID() }

            // The directory the gateway and the workers use, against the live user service, without a cache.
            let port = try #require(stack.peers[.users]?.port)
            let http = HTTPClient(eventLoopGroupProvider: .singleton)
            let directory = PlatformDirectory(
                http: http,
                usersURL: "http://localhost:\(port)",
                templatesURL: "http://localhost:1",
                serviceKey: stack.infra.serviceKey,
                usersBreaker: CircuitBreaker(name: "users-test"),
                templatesBreaker: CircuitBreaker(name: "templates-test"),
                timeout: .seconds(30)
            )
            let asked = Array(emails.keys) + unknown
            let answers = try await withThrowingTaskGroup(of: (UUID, String?).self) { group in
                for id in asked {
                    group.addTask { (id, try await directory.recipient(id, correlationID: "c-\(id)")?.email) }
                }
                var answers: [UUID: String?] = [:]
                for try await (id, email) in group { answers[id] = email }
                return answers
            }
            try await http.shutdown()
            #expect(answers.count == 28)
            for id in asked { #expect(answers[id] == .some(emails[id]), "\(id): \(String(describing: answers[id]))") }
            let made = directory.lookups.made.withLockedValue { $0 }
            #expect(made.calls < 28, "28 users in fewer calls: \(made)")
            #expect(made.largest >= 2, "some call carried several users: \(made)")

            // Through the gateway, concurrently: each create is refused or accepted for its own user.
            try await stack.createTemplate(["code": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi", "body": "Hi {{name}}"])
            for id in unknown { expected[id.uuidString.lowercased()] = 404 }
            let replies = try await withThrowingTaskGroup(of: (String, Int, String?).self) { group in
                for (index, user) in expected.keys.enumerated() {
                    group.addTask {
                        let reply = try await stack.send(Self.body(user, "c-\(index)"))
                        return (user, reply.status, reply.error)
                    }
                }
                var replies: [(String, Int, String?)] = []
                for try await reply in group { replies.append(reply) }
                return replies
            }
            #expect(replies.count == 28)
            for (user, status, error) in replies {
                #expect(status == expected[user], "user \(user): \(status) \(error ?? "")")
                if status == 422 { #expect(error == "CHANNEL_DISABLED") }
                if status == 404 { #expect(error == "USER_NOT_FOUND") }
            }
        }
    }

    static func body(_ userID: String, _ requestID: String) -> [String: Any] {
        ["notification_type": "email", "user_id": userID, "template_code": "welcome", "variables": ["name": "Ada"], "request_id": requestID]
    }

    static func recipient(_ id: UUID) throws -> Recipient {
        let json =
            #"{"user_id":"\#(id.uuidString.lowercased())","email":"u@example.com","name":"U","#
            + #""preferences":{"email":true,"push":true,"categories":{}},"devices":[]}"#
        return try JSONDecoder().decode(Recipient.self, from: Data(json.utf8))
    }

    @Test(
        "a lone lookup is a call of its own; those made while it is out go together in the next call, each id once, by the earliest deadline"
    )
    func gathered() async throws {
        let now = NIODeadline.now()
        let first = UUID()
        let (b, c, unknown) = (UUID(), UUID(), UUID())
        let service = Service(known: [first, b, c])
        let lookups = RecipientLookups()
        let fetch: RecipientLookups.Fetch = { try await service.fetch($0, $1, $2) }
        try await withThrowingTaskGroup(of: (UUID, UUID?).self) { group in
            group.addTask { (first, try await lookups.recipient(first, correlationID: "r-1", deadline: now + .seconds(10), fetch: fetch)?.userID) }
            _ = try await eventually("the first call is out", timeout: .seconds(30), interval: .milliseconds(5)) { () -> Bool? in
                service.calls.withLockedValue { $0.count } == 1 ? true : nil
            }
            // One at a time, so that "r-2" is the first waiting; the third's deadline is the earliest.
            for (index, (id, seconds)) in [(b, 60), (c, 30), (b, 5), (unknown, 90)].enumerated() {
                group.addTask {
                    (
                        id,
                        try await lookups.recipient(id, correlationID: "r-\(index + 2)", deadline: now + .seconds(Int64(seconds)), fetch: fetch)?
                            .userID
                    )
                }
                _ = try await eventually("lookup \(index + 2) waits", timeout: .seconds(30), interval: .milliseconds(5)) { () -> Bool? in
                    lookups.pending.withLockedValue { $0.waiters.values.reduce(0) { $0 + $1.count } } == index + 1 ? true : nil
                }
            }
            #expect(service.calls.withLockedValue { $0.count } == 1, "nothing else is asked while the first call is out")
            service.release()
            var answers: [(UUID, UUID?)] = []
            for try await answer in group { answers.append(answer) }
            #expect(answers.count == 5)
            for (asked, answered) in answers {
                #expect(answered == (asked == unknown ? nil : asked), "each lookup gets its own user (nil: no such user)")
            }
        }
        let calls = service.calls.withLockedValue { $0 }
        #expect(calls.count == 2)
        #expect(calls.first == [first])
        #expect(Set(calls.last ?? []) == [b, c, unknown])
        #expect(calls.last?.count == 3)
        let carried = service.deadlines.withLockedValue { $0 }
        #expect(carried.map(\.0) == ["r-1", "r-2"], "a gathered call carries its first lookup's correlation id")
        #expect(carried.map(\.1) == [now + .seconds(10), now + .seconds(5)], "and must end by the earliest deadline of its lookups")
        // The call's task ends once it finds nothing more gathered.
        _ = try await eventually("no call running", timeout: .seconds(30), interval: .milliseconds(5)) { () -> Bool? in
            lookups.pending.withLockedValue { !$0.running && $0.waiters.isEmpty } ? true : nil
        }
        // Nothing out: the next lookup is a call of its own again.
        #expect(try await lookups.recipient(c, correlationID: "r-6", deadline: .now() + .seconds(30), fetch: fetch)?.userID == c)
        #expect(service.calls.withLockedValue { $0.last } == [c])
    }

    @Test("when the service cannot answer, every lookup of the call gets the failure, and the next lookup asks again")
    func failure() async throws {
        let (a, b) = (UUID(), UUID())
        let service = Service(known: [a, b], failing: true)
        let lookups = RecipientLookups()
        let fetch: RecipientLookups.Fetch = { try await service.fetch($0, $1, $2) }
        let outcomes = NIOLockedValueBox<[String]>([])
        await withTaskGroup(of: Void.self) { group in
            for id in [a, b] {
                group.addTask {
                    do {
                        _ = try await lookups.recipient(id, correlationID: "r", deadline: .now() + .seconds(30), fetch: fetch)
                        outcomes.withLockedValue { $0.append("answered") }
                    } catch {
                        outcomes.withLockedValue { $0.append(error is DirectoryUnavailable ? "unavailable" : "\(error)") }
                    }
                }
            }
            _ = try? await eventually("both lookups made", timeout: .seconds(30), interval: .milliseconds(5)) { () -> Bool? in
                let waiting = lookups.pending.withLockedValue { $0.waiters.count }
                let out = service.calls.withLockedValue { $0.reduce(0) { $0 + $1.count } }
                return waiting + out == 2 ? true : nil
            }
            service.release()
        }
        #expect(outcomes.withLockedValue { $0 } == ["unavailable", "unavailable"])
        _ = try await eventually("no call running", timeout: .seconds(30), interval: .milliseconds(5)) { () -> Bool? in
            lookups.pending.withLockedValue { !$0.running && $0.waiters.isEmpty } ? true : nil
        }
        await #expect(throws: DirectoryUnavailable.self) {
            try await lookups.recipient(a, correlationID: "r", deadline: .now() + .seconds(30), fetch: fetch)
        }
    }
}
