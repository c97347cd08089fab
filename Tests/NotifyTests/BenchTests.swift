import Foundation
import PostgresNIO
import Testing

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
            #expect(try await stack.scalar("SELECT count(*)::int FROM notifications WHERE status = 'sent'", as: Int.self) == 50)
        }
    }
}
