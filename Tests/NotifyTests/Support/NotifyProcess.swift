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

    init(name: String, arguments: [String], environment: [String: String]) throws {
        self.name = name
        let logs = FileManager.default.temporaryDirectory.appendingPathComponent("notify-test-logs")
        try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
        logFile = logs.appendingPathComponent("\(environment["NOTIFY_PG_DB_PREFIX"] ?? "")\(name).log")
        FileManager.default.createFile(atPath: logFile.path, contents: nil)
        let handle = try FileHandle(forWritingTo: logFile)
        process = Process()
        process.executableURL = Self.binary
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

/// Ports handed out in this test run: never handed out twice, so two stacks running in parallel cannot be given the
/// same port for processes that start at different times.
private let handedOutPorts = NIOLockedValueBox<Set<Int>>([])

/// A TCP port on 127.0.0.1 that was free a moment ago and was not handed out before in this run.
func freePort() -> Int {
    while true {
        let port = anyFreePort()
        if handedOutPorts.withLockedValue({ $0.insert(port).inserted }) { return port }
    }
}

private func anyFreePort() -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
