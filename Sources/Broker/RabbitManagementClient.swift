import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel

/// RabbitMQ through its management HTTP API: topology declaration, publishing, queue inspection.
public struct RabbitManagementClient: Sendable {
    public static let exchange = "notifications.direct"

    public struct PublishProperties: Sendable {
        public var messageID: String
        public var correlationID: String
        public var priority: Int
        public init(messageID: String, correlationID: String, priority: Int) {
            self.messageID = messageID
            self.correlationID = correlationID
            self.priority = priority
        }
    }

    public enum ManagementError: Error, CustomStringConvertible {
        case status(Int, String)
        case malformedResponse(String)
        public var description: String {
            switch self {
            case .status(let code, let path): return "management API answered \(code) for \(path)"
            case .malformedResponse(let path): return "management API sent an unexpected body for \(path)"
            }
        }
    }

    let http: HTTPClient
    let baseURL: String
    let authorization: String
    let vhost: String
    let timeout: TimeAmount

    public init(http: HTTPClient, baseURL: String, user: String, password: String, vhost: String, timeout: TimeAmount = .seconds(5)) {
        self.http = http
        self.baseURL = baseURL.hasSuffix("/") ? String(baseURL.dropLast()) : baseURL
        self.authorization = "Basic " + Data("\(user):\(password)".utf8).base64EncodedString()
        self.vhost = vhost
        self.timeout = timeout
    }

    var encodedVhost: String { Self.pathSegment(vhost) }

    static func pathSegment(_ value: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return value.addingPercentEncoding(withAllowedCharacters: allowed) ?? value
    }

    /// Declares exchange, queues and bindings of ARCHITECTURE §5 (idempotent). Work queues dead-letter to `failed`.
    public func declareTopology() async throws {
        try await request(.PUT, "/api/exchanges/\(encodedVhost)/\(Self.exchange)", body: ["type": "direct", "durable": true])
        let deadLetter: [String: Any] = [
            "x-dead-letter-exchange": Self.exchange, "x-dead-letter-routing-key": "failed", "x-max-priority": 10,
        ]
        for (queue, key) in NotificationChannel.allCases.map({ ($0.queueName, $0.routingKey) }) {
            try await request(.PUT, "/api/queues/\(encodedVhost)/\(queue)", body: ["durable": true, "arguments": deadLetter])
            try await request(.POST, "/api/bindings/\(encodedVhost)/e/\(Self.exchange)/q/\(queue)", body: ["routing_key": key])
        }
        try await request(.PUT, "/api/queues/\(encodedVhost)/failed.queue", body: ["durable": true])
        try await request(.POST, "/api/bindings/\(encodedVhost)/e/\(Self.exchange)/q/failed.queue", body: ["routing_key": "failed"])
    }

    /// Publishes one persistent message; true only when RabbitMQ routed it to a queue.
    public func publish(routingKey: String, payload: String, properties: PublishProperties) async throws -> Bool {
        let body: [String: Any] = [
            "routing_key": routingKey,
            "payload": payload,
            "payload_encoding": "string",
            "properties": [
                "delivery_mode": 2,
                "content_type": "application/json",
                "message_id": properties.messageID,
                "correlation_id": properties.correlationID,
                "priority": max(0, min(10, properties.priority)),
                "headers": ["x-correlation-id": properties.correlationID],
            ] as [String: Any],
        ]
        let response = try await request(.POST, "/api/exchanges/\(encodedVhost)/\(Self.exchange)/publish", body: body)
        guard let object = response as? [String: Any], let routed = object["routed"] as? Bool else {
            throw ManagementError.malformedResponse("publish")
        }
        return routed
    }

    /// Cheap liveness probe of the broker (used by /health).
    public func ping() async throws {
        try await request(.GET, "/api/vhosts/\(encodedVhost)", body: nil)
    }

    /// Queue facts as the management API reports them (`messages`, `consumers`, ...).
    public func queue(_ name: String) async throws -> [String: Any] {
        guard let object = try await request(.GET, "/api/queues/\(encodedVhost)/\(Self.pathSegment(name))", body: nil) as? [String: Any] else {
            throw ManagementError.malformedResponse("queue")
        }
        return object
    }

    /// Every queue of the vhost in one request, each with only `name`, `messages` and `consumers`.
    public func queueDepths() async throws -> [String: (messages: Int, consumers: Int)] {
        guard let list = try await request(.GET, "/api/queues/\(encodedVhost)?columns=name,messages,consumers", body: nil) as? [[String: Any]]
        else { throw ManagementError.malformedResponse("queues") }
        var depths: [String: (messages: Int, consumers: Int)] = [:]
        for queue in list {
            guard let name = queue["name"] as? String else { continue }
            depths[name] = (queue["messages"] as? Int ?? 0, queue["consumers"] as? Int ?? 0)
        }
        return depths
    }

    @discardableResult
    func request(_ method: HTTPMethod, _ path: String, body: [String: Any]?) async throws -> Any? {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(name: "Authorization", value: authorization)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(data: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await http.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 16 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw ManagementError.status(Int(response.status.code), path.split(separator: "/").prefix(3).joined(separator: "/"))
        }
        guard bytes.readableBytes > 0 else { return nil }
        return try? JSONSerialization.jsonObject(with: Data(buffer: bytes))
    }
}
