import Foundation
import JobQueue
import NIOHTTP1
import NotificationModel
import NotifyConfig
import PostgresNIO
import Testing

/// Digests: notifications of a digest category to one user within a window go out as one message listing them all.
@Suite("Digests")
struct DigestTests {
    @Test("windows are aligned on the epoch; the setting is category=seconds; items and count are what a digest renders")
    func policy() {
        var problems: [String] = []
        let policy = DigestPolicy.parse("news=3600, social=900", problems: &problems)
        #expect(problems.isEmpty)
        let due = ISO8601DateFormatter().date(from: "2026-12-05T21:17:30Z")!
        #expect(policy.windowEnd(category: "news", due: due) == ISO8601DateFormatter().date(from: "2026-12-05T22:00:00Z"))
        #expect(policy.windowEnd(category: "social", due: due) == ISO8601DateFormatter().date(from: "2026-12-05T21:30:00Z"))
        #expect(policy.windowEnd(category: "orders", due: due) == nil)
        #expect(policy.windowEnd(category: nil, due: due) == nil)
        _ = DigestPolicy.parse("news, x=5, y=100000", problems: &problems)
        #expect(problems.count == 3)
        let variables = DigestPolicy.variables([["headline": .string("A")], ["headline": .string("B")]])
        #expect(variables["count"] == .number(2))
        #expect(variables["headline"] == .string("A"))
        #expect(variables["items"] == .array([.object(["headline": .string("A")]), .object(["headline": .string("B")])]))
    }

    @Test("the rest of a digest is claimed with its first job (attempted_via digest), or found among the worker's own wave")
    func claims() async throws {
        try await RouterHarness.with(.gateway, extra: ["NOTIFY_DIGEST_CATEGORIES": "news=3600"]) { stack in
            try await stack.createTemplate([
                "code": "news", "name": "News", "channel": "email", "category": "news", "subject": "{{count}} news",
                "body": "{{#items}}{{h}}{{/items}}",
            ])
            let user = try await stack.createUser()
            let other = try await stack.createUser()
            var ids: [UUID] = []
            for (n, to) in [(1, user), (2, user), (3, user), (4, other)] {
                let reply = try await stack.send([
                    "notification_type": "email", "user_id": to, "template_code": "news", "variables": ["h": "\(n)"], "request_id": "n-\(n)",
                ])
                #expect(reply.data["held_until"] != nil, "\(reply.json)")
                ids.append(UUID(uuidString: try #require(reply.data["notification_id"] as? String))!)
            }
            let notificationIDs = ids
            // Due now, as the scheduler would make them at the window's end.
            _ = try await stack.scalar("UPDATE jobs SET state = 'available', run_at = now() WHERE state = 'scheduled' RETURNING 1", as: Int.self)
            try await stack.infra.withDatabase(.notifications) { database in
                let jobs = JobStore(client: database, logger: TestInfrastructure.logger)
                // One claimed alone (a message naming one job): the rest of its digest is claimed with it.
                let first = try #require(try await jobs.claimAvailable(queue: .email, limit: 1, worker: "w-1", lease: .seconds(60)).first)
                let (claimed, held) = try await jobs.claimDigest(of: first, worker: "w-1", lease: .seconds(60))
                #expect(held.isEmpty)
                #expect(
                    Set(claimed.map(\.notificationID) + [first.notificationID]) == Set(notificationIDs.prefix(3)),
                    "the other user's is not in it"
                )
                #expect(claimed.map { $0.variables["h"] } == [.string("2"), .string("3")], "oldest first")
                let vias = try await stack.scalar(
                    "SELECT string_agg(attempted_via, ',' ORDER BY id) FROM jobs WHERE notification_id = ANY(\(claimed.map(\.notificationID)))",
                    as: String.self
                )
                #expect(vias == "digest,digest")
                // The other user's, claimed in a wave with nothing else: no company.
                let fourth = try #require(try await jobs.claimAvailable(queue: .email, limit: 5, worker: "w-2", lease: .seconds(60)).first)
                #expect(fourth.notificationID == notificationIDs[3])
                let alone = try await jobs.claimDigest(of: fourth, worker: "w-2", lease: .seconds(60))
                #expect(alone.claimed.isEmpty && alone.held.isEmpty)
                // A wave that holds the whole digest: the others are found as this worker's own.
                _ = try await stack.scalar(
                    "UPDATE jobs SET state = 'available', attempted_by = NULL, attempted_via = NULL WHERE notification_id = ANY(\(Array(notificationIDs.prefix(3)))) RETURNING 1",
                    as: Int.self
                )
                let wave = try await jobs.claimAvailable(queue: .email, limit: 3, worker: "w-3", lease: .seconds(60))
                #expect(wave.count == 3)
                let (none, mine) = try await jobs.claimDigest(of: wave[0], worker: "w-3", lease: .seconds(60))
                #expect(none.isEmpty)
                #expect(Set(mine.map(\.jobID)) == Set(wave.dropFirst().map(\.jobID)))
            }
        }
    }

    @Test("three news items to one user in a window arrive as one email listing them; another user's item alone; others go at once")
    func endToEnd() async throws {
        try await Stack.with(extra: ["NOTIFY_DIGEST_CATEGORIES": "news=60"]) { stack in
            try await stack.createTemplate([
                "code": "news", "name": "News", "channel": "email", "category": "news", "subject": "{{count}} news for you",
                "body": "{{#items}}* {{headline}}\n{{/items}}",
            ])
            try await stack.createTemplate(["code": "now", "name": "Now", "channel": "email", "subject": "Right now", "body": "B"])
            let reader = try await stack.createUser()
            let other = try await stack.createUser()
            // Not across a window's end: when this minute is two-thirds over, wait for the next one.
            _ = try await eventually("a minute with time left", timeout: .seconds(30)) { () -> Bool? in
                Int(Date().timeIntervalSince1970) % 60 < 40 ? true : nil
            }
            var ids: [String] = []
            var held: Set<String> = []
            for (user, headline) in [(reader, "Alpha"), (reader, "Beta"), (other, "Gamma"), (reader, "Delta")] {
                let reply = try await stack.send([
                    "notification_type": "email", "user_id": user, "template_code": "news", "variables": ["headline": headline],
                    "request_id": "news-\(headline)",
                ])
                #expect(reply.status == 202, "\(reply.json)")
                ids.append(try #require(reply.data["notification_id"] as? String))
                held.insert(try #require(reply.data["held_until"] as? String, "\(reply.json)"))
            }
            #expect(held.count == 1, "one window: \(held)")
            #expect(Set(try await ids.asyncMap { try await stack.notification($0).data["job_state"] as? String }) == ["scheduled"])
            // A notification of another category is not held.
            let direct = try await stack.send(["notification_type": "email", "user_id": reader, "template_code": "now", "request_id": "now-1"])
            #expect(direct.data["held_until"] == nil)
            _ = try await stack.waitForEmail(try #require(direct.data["notification_id"] as? String), timeout: .seconds(60))

            for id in ids { _ = try await stack.waitForStatus(id, "sent", timeout: .seconds(120)) }
            let readerIDs = [ids[0], ids[1], ids[3]]
            let readerMail = stack.emailCounts(for: readerIDs)
            #expect(readerMail.values.reduce(0, +) == 1, "one email for the reader's three: \(readerMail)")
            let digestID = try #require(readerMail.keys.first).dropFirst().dropLast().replacingOccurrences(of: "@notify.local", with: "")
            let digest = try #require(ReceivedEmail.with(messageID: "\(digestID)@notify.local", in: stack.infra.maildir).first)
            #expect(digest.subject == "3 news for you")
            let text = try #require(digest.text)
            #expect(text.contains("* Alpha") && text.contains("* Beta") && text.contains("* Delta") && !text.contains("Gamma"), "\(text)")
            #expect(stack.emailCounts(for: [ids[2]]).values.reduce(0, +) == 1, "the other user's item alone")
            // Completed together, in the digest's one transaction.
            let sentAts = try await stack.scalar(
                "SELECT count(DISTINCT sent_at)::int FROM notifications WHERE id = ANY(\(readerIDs.map { UUID(uuidString: $0)! }))",
                as: Int.self
            )
            #expect(sentAts == 1)
        }
    }
}

extension Sequence {
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var result: [T] = []
        for element in self { result.append(try await transform(element)) }
        return result
    }
}
