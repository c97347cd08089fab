import Foundation
import NIOHTTP1

@testable import Broker

/// Calls of the RabbitMQ management API that only the tests make (the services declare their topology themselves).
extension RabbitManagementClient {
    /// Reads up to `count` messages and puts them back.
    func peek(queue: String, count: Int) async throws -> [[String: Any]] {
        let body: [String: Any] = ["count": count, "ackmode": "reject_requeue_true", "encoding": "auto"]
        guard let messages = try await request(.POST, "/api/queues/\(encodedVhost)/\(Self.pathSegment(queue))/get", body: body) as? [[String: Any]]
        else { throw ManagementError.malformedResponse("get") }
        return messages
    }

    /// Creates the test's vhost and grants the user full rights on it.
    func ensureVhost(user: String) async throws {
        try await request(.PUT, "/api/vhosts/\(encodedVhost)", body: [:])
        try await request(
            .PUT,
            "/api/permissions/\(encodedVhost)/\(Self.pathSegment(user))",
            body: ["configure": ".*", "write": ".*", "read": ".*"]
        )
    }

    func deleteVhost() async throws {
        try await request(.DELETE, "/api/vhosts/\(encodedVhost)", body: nil)
    }
}

/// The nice value of the calling thread (Linux: each thread has its own).
func currentNiceness() -> Int32 {
    #if os(Linux)
    return getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
    #else
    return 0
    #endif
}
