/// A failed delivery attempt, classified: permanent failures are dead-lettered, transient ones retried.
public struct DeliveryFailure: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var permanent: Bool
    public var retryAfter: Duration?

    public init(message: String, permanent: Bool, retryAfter: Duration? = nil) {
        self.message = message
        self.permanent = permanent
        self.retryAfter = retryAfter
    }

    public var description: String { message }
}

/// The notification is no longer to be sent, as found when the worker checks again at send time: the user was deleted,
/// turned the channel (or the template's category) off, or the template was archived. The job is cancelled, with the
/// reason in the status history; nothing is retried.
public struct Withdrawn: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}
