import Foundation
import NIOConcurrencyHelpers

/// A real `notify` subprocess (the binary built next to the tests), its output in a log file.
final class NotifyProcess: @unchecked Sendable {
    let name: String
    let process: Process
    let logFile: URL

    static var repositoryRoot: URL {
        var root = URL(fileURLWithPath: #filePath)
        while root.path != "/", !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        return root
    }

    static var binary: URL {
        if let path = ProcessInfo.processInfo.environment["NOTIFY_BINARY"] { return URL(fileURLWithPath: path) }
        return repositoryRoot.appendingPathComponent(".build/debug/notify")
    }

    /// The load generator, built beside `notify`.
    static var benchBinary: URL { binary.deletingLastPathComponent().appendingPathComponent("notify-bench") }

    init(name: String, executable: URL = NotifyProcess.binary, arguments: [String], environment: [String: String]) throws {
        self.name = name
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("notify-test-logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        logFile = logs.appendingPathComponent("\(environment["NOTIFY_PG_DB_PREFIX"] ?? "")\(name).log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = Self.repositoryRoot
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
    }

    var isRunning: Bool { process.isRunning }

    /// SIGTERM, then wait for the graceful exit (SIGKILL after the bound).
    func stop(timeout: Duration = .seconds(15)) async {
        guard process.isRunning else { return }
        process.terminate()
        let deadline = ContinuousClock.now + timeout
        while process.isRunning, ContinuousClock.now < deadline { try? await Task.sleep(for: .milliseconds(20)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
    }

    func kill9() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }

    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
}

/// The next port to try. Ports come from below the kernel's ephemeral range (32768–60999 here): a port picked there
/// can be taken by any outgoing connection (every test talks to PostgreSQL, Redis and HTTP services) between the pick
/// and the service's bind, which once made a gateway fail with "Address already in use". Below that range only
/// listeners bind, and ours are never handed the same port twice.
private let nextPort = NIOLockedValueBox(20_000 + Int(getpid() % 500) * 10)

/// A TCP port on 127.0.0.1 that was free a moment ago and was not handed out before in this run.
func freePort() -> Int {
    while true {
        let port = nextPort.withLockedValue { port in
            defer { port = port >= 32_000 ? 20_000 : port + 1 }
            return port
        }
        if canBind(port) { return port }
    }
}

private func canBind(_ port: Int) -> Bool {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let length = socklen_t(MemoryLayout<sockaddr_in>.size)
    return withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } } == 0
}
