import Foundation

/// A user's quiet hours on one channel: local wall-clock times `HH:MM`, in the user's time zone. A window whose start
/// is after its end crosses midnight (`22:00`–`07:00`).
public struct QuietWindow: Codable, Sendable, Equatable {
    public var start: String
    public var end: String

    public init(start: String, end: String) {
        self.start = start
        self.end = end
    }

    /// Minutes after midnight of `HH:MM` (00:00–23:59), or nil.
    static func minutes(_ text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2, let hours = Int(parts[0]), let minutes = Int(parts[1]),
            (0...23).contains(hours), (0...59).contains(minutes)
        else { return nil }
        return hours * 60 + minutes
    }

    /// Why this window cannot be used, or nil.
    public var problem: String? {
        guard let start = Self.minutes(start), let end = Self.minutes(end) else { return "start and end must be times HH:MM (00:00 to 23:59)" }
        return start == end ? "start and end must differ" : nil
    }

    /// When the quiet window that `instant` falls in ends, or nil when `instant` is outside it. Computed on the
    /// calendar of `timeZone`: across a daylight-saving change the end is the same wall-clock time (or, when that
    /// time does not exist that day, the first one after it).
    public func end(containing instant: Date, in timeZone: TimeZone) -> Date? {
        guard let start = Self.minutes(start), let end = Self.minutes(end), start != end else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let local = calendar.dateComponents([.hour, .minute], from: instant)
        let now = (local.hour ?? 0) * 60 + (local.minute ?? 0)
        let endsTomorrow: Bool
        if start < end {
            guard now >= start, now < end else { return nil }
            endsTomorrow = false
        } else {
            guard now >= start || now < end else { return nil }
            endsTomorrow = now >= start
        }
        let today = calendar.startOfDay(for: instant)
        guard let day = endsTomorrow ? calendar.date(byAdding: .day, value: 1, to: today) : today else { return nil }
        return calendar.date(bySettingHour: end / 60, minute: end % 60, second: 0, of: day)
    }
}

/// Which notifications wait for the end of quiet hours: those whose priority is below the urgency threshold of their
/// template's category (or the default threshold).
public struct QuietHoursPolicy: Sendable, Equatable {
    /// Notifications of at least this priority go at once, whatever the hour.
    public var urgentPriority: Int
    /// Per template category: its own threshold (0: every notification of it is urgent; 11: none is).
    public var byCategory: [String: Int]

    public init(urgentPriority: Int = 8, byCategory: [String: Int] = [:]) {
        self.urgentPriority = urgentPriority
        self.byCategory = byCategory
    }

    public func isUrgent(priority: Int, category: String?) -> Bool {
        priority >= (category.flatMap { byCategory[$0] } ?? urgentPriority)
    }

    /// When a notification on `channel` due at `due` may go: the end of the recipient's quiet hours when it falls in
    /// them and is not urgent; nil: at `due`.
    public func hold(
        due: Date,
        channel: String,
        priority: Int,
        category: String?,
        quietHours: [String: QuietWindow]?,
        timeZone: String?
    ) -> Date? {
        guard let window = quietHours?[channel], !isUrgent(priority: priority, category: category) else { return nil }
        let zone = timeZone.flatMap(TimeZone.init(identifier:)) ?? TimeZone(identifier: "UTC")!
        return window.end(containing: due, in: zone)
    }

    /// `security=0,marketing=11`: per category, the priority from which its notifications are urgent.
    public static func parseCategories(_ text: String?, problems: inout [String], variable: String) -> [String: Int] {
        var result: [String: Int] = [:]
        for entry in (text ?? "").split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !entry.isEmpty {
            let parts = entry.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
            guard parts.count == 2, !parts[0].isEmpty, let threshold = Int(parts[1]), (0...11).contains(threshold) else {
                problems.append("\(variable): \(entry.debugDescription) is not category=priority (0 to 11)")
                continue
            }
            result[parts[0]] = threshold
        }
        return result
    }
}

/// IANA time zone names (`Europe/Berlin`), as users give them.
public enum TimeZoneName {
    public static let problem = "must be an IANA time zone name such as Europe/Berlin or America/New_York"

    /// The name when the platform knows it as an IANA zone (abbreviations such as EST are refused: they are ambiguous).
    public static func validate(_ text: String) -> String? {
        guard text.count <= 64, TimeZone.knownTimeZoneIdentifiers.contains(text) || text == "UTC" else { return nil }
        return text
    }
}
