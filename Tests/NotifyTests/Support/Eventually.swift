import Foundation
import Testing

/// Polls `condition` until it returns a value or the deadline passes (never a fixed sleep in place of a wait).
func eventually<T>(
    _ what: String,
    timeout: Duration = .seconds(30),
    interval: Duration = .milliseconds(50),
    sourceLocation: SourceLocation = #_sourceLocation,
    _ condition: () async throws -> T?
) async throws -> T {
    let deadline = ContinuousClock.now + timeout
    var lastError: (any Error)?
    while ContinuousClock.now < deadline {
        do {
            if let value = try await condition() { return value }
        } catch {
            lastError = error
        }
        try await Task.sleep(for: interval)
    }
    let detail = lastError.map { " (last error: \($0))" } ?? ""
    Issue.record("timed out after \(timeout) waiting for \(what)\(detail)", sourceLocation: sourceLocation)
    throw TimedOut(what: what)
}

struct TimedOut: Error, CustomStringConvertible {
    var what: String
    var description: String { "timed out waiting for \(what)" }
}
