import Foundation
import NIOCore
import NIOHTTP1
import PostgresNIO
import Testing

@testable import Bench

/// The benchmark command's smoke mode, as CI runs it: it must complete and account for every notification.
/// (No timing is judged here: benchmarks print numbers; tests assert behaviour.)
@Suite("Benchmark smoke")
struct BenchTests {
    @Test("notify-bench --smoke: 50 requests open-loop, every one accepted and delivered, memory of the processes reported")
    func smoke() async throws {
        try await Stack.with { stack in
            let pids = Stack.Service.core.compactMap { service in
                stack.process(service).map { "\(service.rawValue)=\($0.process.processIdentifier)" }
            }
            let result = try await stack.runCommand(
                ["--smoke", "--json", "--gateway", stack.url(.gateway), "--templates", stack.url(.templates)] + pids.flatMap { ["--process", $0] },
                executable: NotifyProcess.benchBinary
            )
            #expect(result.status == 0, "\(result.output)")
            let report = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any], "\(result.output)")
            #expect(report["requested"] as? Int == 50)
            #expect(report["accepted"] as? Int == 50)
            #expect(report["delivered"] as? Int == 50)
            #expect(report["failed"] as? Int == 0)
            #expect((report["accept_latency_ms"] as? [String: Any])?["count"] as? Int == 50)
            #expect((report["end_to_end_ms"] as? [String: Any])?["count"] as? Int == 50)
            let memory = try #require(report["rss_mb"] as? [String: Double])
            #expect(Set(memory.keys) == Set(Stack.Service.core.map(\.rawValue)))
            #expect(memory.values.allSatisfy { $0 > 0 })
            // Besides the run's 50, one probe (its own client) checked the gateway would take them before the load began.
            #expect(
                try await stack.scalar("SELECT count(*)::int FROM notifications WHERE status = 'sent' AND client NOT LIKE '%-probe'", as: Int.self)
                    == 50
            )
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications WHERE client LIKE '%-probe'", as: Int.self) == 1)

            // A fuzz run may have archived the bench's template: the next run takes it back into use.
            let archived = try await stack.call(.POST, "\(stack.url(.templates))/api/v1/templates/bench_email/archive/", headers: stack.serviceAuth)
            #expect(archived.status == 200)
            let again = try await stack.runCommand(
                ["--smoke", "--json", "--gateway", stack.url(.gateway), "--templates", stack.url(.templates)],
                executable: NotifyProcess.benchBinary
            )
            #expect(again.status == 0, "\(again.output)")
            let second = try JSONSerialization.jsonObject(with: Data(again.output.utf8)) as? [String: Any]
            #expect(second?["delivered"] as? Int == 50, "\(again.output)")

            // Whatever fails before the load stops the run at once with a sentence, not thousands of failed requests.
            let before = try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self)
            let refused = try await stack.runCommand(
                ["--smoke", "--gateway", stack.url(.gateway), "--templates", stack.url(.templates)],
                executable: NotifyProcess.benchBinary,
                environment: ["NOTIFY_SERVICE_KEY": "not-the-service-key"],
                withErrors: true
            )
            #expect(refused.status != 0)
            #expect(refused.output.contains("creating the template bench_email answered 401"), "\(refused.output)")
            #expect(!refused.output.contains("Fatal error") && !refused.output.contains("Traceback"))
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications", as: Int.self) == before)
        }
    }

    @Test("The load generator's bodies are the JSON a client would send: one create, or a bulk of them, strings escaped")
    func bodies() throws {
        let recipients = ["2f1c0c53-6b55-4f39-9a44-6c1d1d7a0b11", "quote\" back\\slash \u{1}tab\t"]
        let single = try #require(
            try JSONSerialization.jsonObject(with: Data(BenchRunner.body(3, batch: 1, client: "bench-x", recipients: recipients).readableBytesView))
                as? [String: Any]
        )
        #expect(single["notification_type"] as? String == "email")
        #expect(single["user_id"] as? String == recipients[1])
        #expect(single["template_code"] as? String == "bench_email")
        #expect(single["request_id"] as? String == "bench-x-3")
        #expect(single["variables"] as? [String: String] == ["name": "Reader 3", "n": "3"])

        let bulk = try #require(
            try JSONSerialization.jsonObject(with: Data(BenchRunner.body(2, batch: 3, client: "bench-x", recipients: recipients).readableBytesView))
                as? [String: Any]
        )
        let items = try #require(bulk["notifications"] as? [[String: Any]])
        #expect(items.map { $0["request_id"] as? String } == ["bench-x-6", "bench-x-7", "bench-x-8"])
        #expect(items.map { $0["user_id"] as? String } == [recipients[0], recipients[1], recipients[0]])
        #expect(items.map { ($0["variables"] as? [String: String])?["n"] } == ["6", "7", "8"])
    }
}
