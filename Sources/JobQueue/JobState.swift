/// The closed set of job states (documented with the `jobs` table in sql/notifications).
public enum JobState: String, Sendable, CaseIterable, Codable {
    case scheduled, available, running, retryable, completed, discarded, cancelled
}
