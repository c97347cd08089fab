import ArgumentParser
import Bench
import Foundation
import Logging
import NotifyConfig
import NotifyLogging

/// `notify-bench`: the load generator, an executable of its own (the production binary `notify` does not carry it).
@main
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "notify-bench",
        abstract: "Load the gateway (open- or closed-loop), wait for delivery, report throughput, latency and memory.",
        discussion: """
            Reads the database settings (NOTIFY_PG_*) and NOTIFY_SERVICE_KEY from the environment, like the services.
            Recipients, a template and API keys are created for the run; requests are spread over them so per-user and
            per-key rate limits are not what is measured. `--smoke` is a small run for CI (no timing is judged there).
            """
    )

    @Option(help: "open (fixed rate) or closed (fixed concurrency).") var mode: String = "closed"
    @Option(help: "Requests per second in open mode.") var rate: Double = 500
    @Option(help: "Clients in flight in closed mode (also the HTTP connection pool size).") var concurrency: Int = 32
    @Option(help: "Requests to send at most.") var count: Int = 10_000
    @Option(help: "Seconds to send for at most.") var duration: Double = 60
    @Option(help: "Notifications per request (1: single create; more: the bulk endpoint).") var batch: Int = 1
    @Option(help: "Recipients to spread the load over.") var users: Int = 200
    @Option(help: "API keys to spread the load over.") var keys: Int = 8
    @Option(help: "Gateway base URL; several, comma-separated, share the requests round robin.") var gateway: String = "http://127.0.0.1:8000"
    @Option(help: "Template service base URL.") var templates: String = "http://127.0.0.1:8002"
    @Option(help: "Seconds to wait for delivery (0: do not wait).") var deliveryTimeout: Double = 300
    @Option(help: "A process to report memory for, name=pid (repeatable).") var process: [String] = []
    @Option(help: "A directory of <name>.pid files (deploy/local/up's .local/dev/pids) to report memory for.") var pidDir: String?
    @Flag(help: "A small run for CI: 50 requests at 50/s, open loop, waiting for delivery.") var smoke = false
    @Flag(help: "Print the report as one JSON object.") var json = false

    func run() async throws {
        LoggingSystem.bootstrap { label in JSONLogHandler(label: label) }
        let logger = Logger.make(component: "bench")
        var problems: [String] = []
        let env = EnvironmentReader()
        var options = BenchOptions(postgres: PostgresSettings(env, problems: &problems))
        options.serviceKey = env.required("NOTIFY_SERVICE_KEY", problems: &problems)
        guard problems.isEmpty else { throw ValidationError(problems.joined(separator: "; ")) }
        guard let mode = BenchOptions.Mode(rawValue: mode) else { throw ValidationError("--mode is open or closed") }
        options.mode = mode
        options.rate = rate
        options.concurrency = concurrency
        options.count = count
        options.durationSeconds = duration
        options.batch = batch
        options.users = users
        options.keys = keys
        options.gatewayURLs = gateway.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !options.gatewayURLs.isEmpty else { throw ValidationError("--gateway needs a URL") }
        options.templatesURL = templates
        options.waitForDelivery = deliveryTimeout > 0
        options.deliveryTimeoutSeconds = deliveryTimeout
        if smoke {
            options.mode = .open
            options.rate = 50
            options.count = 50
            options.users = 10
            options.keys = 2
            options.deliveryTimeoutSeconds = 120
            options.waitForDelivery = true
        }
        for entry in process {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, let pid = Int32(parts[1]) else { throw ValidationError("--process is name=pid") }
            options.processes.append((String(parts[0]), pid))
        }
        if let pidDir, let files = try? FileManager.default.contentsOfDirectory(atPath: pidDir) {
            for file in files.sorted() where file.hasSuffix(".pid") {
                if let text = try? String(contentsOfFile: "\(pidDir)/\(file)", encoding: .utf8),
                    let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
                {
                    options.processes.append((String(file.dropLast(4)), pid))
                }
            }
        }
        let report = try await BenchRunner(options: options, logger: logger).execute { line in
            if !json { print("[bench] \(line)") }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            print(BenchCommand.describe(report))
        }
        if report.accepted == 0 || (report.delivered.map { $0 < report.accepted } ?? false) { throw ExitCode(1) }
    }

    static func describe(_ report: BenchReport) -> String {
        func ms(_ summary: LatencySummary) -> String {
            String(
                format: "p50 %.1f ms, p95 %.1f ms, p99 %.1f ms, max %.1f ms (%d samples)",
                summary.p50,
                summary.p95,
                summary.p99,
                summary.max,
                summary.count
            )
        }
        var lines = [
            String(
                format: "mode %@: %d of %d accepted in %.2f s = %.0f accepted/s",
                report.mode,
                report.accepted,
                report.requested,
                report.acceptSeconds,
                report.acceptedPerSecond
            ),
            "accept latency: " + ms(report.acceptLatencyMs),
        ]
        if let steady = report.acceptLatencyAfterFirstSecondMs {
            lines.append("accept latency after the first second: " + ms(steady))
        }
        lines += [
            "errors: "
                + (report.errors.isEmpty
                    ? "none" : report.errors.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", "))
        ]
        if let delivered = report.delivered {
            lines.append(
                String(
                    format: "delivered %d (failed %d) in %.2f s = %.0f delivered/s",
                    delivered,
                    report.failed ?? 0,
                    report.deliverySeconds ?? 0,
                    report.deliveredPerSecond ?? 0
                )
            )
        }
        if let endToEnd = report.endToEndMs { lines.append("end to end (accepted → handed to SMTP): " + ms(endToEnd)) }
        if !report.memoryMB.isEmpty {
            lines.append(
                "RSS MB (peak): "
                    + report.memoryMB.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value) (\(report.peakMemoryMB[$0.key] ?? 0))" }.joined(
                        separator: ", "
                    )
            )
        }
        if !report.cpuPercent.isEmpty {
            lines.append(
                "CPU % of one core (from the first request until delivery ended): "
                    + report.cpuPercent.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            )
        }
        if !report.cpuMicrosPerNotification.isEmpty {
            let total = report.cpuMicrosPerNotification.filter { $0.key != "bench" }.values.reduce(0, +)
            lines.append(
                "CPU µs per \(report.delivered == nil ? "accepted" : "delivered") notification: "
                    + report.cpuMicrosPerNotification.sorted { $0.value > $1.value }.map { "\($0.key) \(Int($0.value))" }.joined(separator: ", ")
                    + "; all but the bench \(Int(total))"
            )
        }
        return lines.joined(separator: "\n")
    }
}
