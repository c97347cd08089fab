/// The closed set of a notification's statuses (the `notifications.status` CHECK in sql/notifications).
public enum NotificationStatus: String, Sendable, CaseIterable, Codable {
    case pending, processing, retrying, sent, delivered, undelivered, bounced, complained, failed, cancelled
}
