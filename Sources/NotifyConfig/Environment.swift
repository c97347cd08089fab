import Foundation

/// Reads settings from the process environment once, collecting every missing or malformed key
/// so that a process fails fast with all of them named instead of one at a time.
public struct EnvironmentReader: Sendable {
    public let values: [String: String]

    public init(_ values: [String: String] = ProcessInfo.processInfo.environment) {
        self.values = values
    }

    public func string(_ key: String, default defaultValue: String) -> String {
        guard let value = values[key], !value.isEmpty else { return defaultValue }
        return value
    }

    public func optionalString(_ key: String) -> String? {
        guard let value = values[key], !value.isEmpty else { return nil }
        return value
    }

    public func int(_ key: String, default defaultValue: Int, problems: inout [String]) -> Int {
        guard let raw = values[key], !raw.isEmpty else { return defaultValue }
        guard let value = Int(raw) else {
            problems.append("\(key) must be an integer, got \(raw.count) characters")
            return defaultValue
        }
        return value
    }

    public func required(_ key: String, problems: inout [String]) -> String {
        guard let value = values[key], !value.isEmpty else {
            problems.append("\(key) is required")
            return ""
        }
        return value
    }
}

public struct ConfigurationError: Error, CustomStringConvertible {
    public let problems: [String]
    public init(problems: [String]) { self.problems = problems }
    public var description: String { "invalid configuration: " + problems.joined(separator: "; ") }
}
