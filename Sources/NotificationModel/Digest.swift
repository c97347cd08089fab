import Foundation

/// Template categories whose notifications are combined per user: `NOTIFY_DIGEST_CATEGORIES=news=3600,social=900`
/// (category = window in seconds). A notification of such a category to a user waits for the end of its window
/// (windows are aligned on the epoch: hourly windows end on the hour); when it is due, the worker sends it together
/// with every other notification of the same client, user, channel and template due at the same end, as one message
/// rendered with `items` (each notification's variables, in order) and `count`.
public struct DigestPolicy: Sendable, Equatable {
    public var windows: [String: Int]

    public init(windows: [String: Int] = [:]) { self.windows = windows }

    public func isDigest(category: String?) -> Bool { category.flatMap { windows[$0] } != nil }

    /// The end of the window `due` falls in, for a digest category; nil otherwise.
    public func windowEnd(category: String?, due: Date) -> Date? {
        guard let window = category.flatMap({ windows[$0] }), window > 0 else { return nil }
        let seconds = due.timeIntervalSince1970
        let end = (seconds / Double(window)).rounded(.down) * Double(window) + Double(window)
        return Date(timeIntervalSince1970: end)
    }

    public static func parse(_ text: String?, problems: inout [String], variable: String = "NOTIFY_DIGEST_CATEGORIES") -> DigestPolicy {
        var windows: [String: Int] = [:]
        for entry in (text ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let seconds = Int(parts[1]), (60...86_400).contains(seconds) else {
                problems.append("\(variable): \(entry.debugDescription) is not category=seconds (60 to 86400)")
                continue
            }
            windows[parts[0]] = seconds
        }
        return DigestPolicy(windows: windows)
    }

    /// The variables a digest is rendered with: the first notification's own, and `items` (every notification's
    /// variables, in order) and `count`.
    public static func variables(_ all: [[String: JSONValue]]) -> [String: JSONValue] {
        var merged = all.first ?? [:]
        merged["items"] = .array(all.map { .object($0) })
        merged["count"] = .number(Double(all.count))
        return merged
    }
}
