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
