import CAMQP
import Foundation
import Logging
import NIOConcurrencyHelpers

/// One message for `AMQPPublisher`.
public struct AMQPOutgoing: Sendable {
    public var routingKey: String
    public var payload: String
    public var messageID: String
    public var correlationID: String
    public var priority: Int

    public init(routingKey: String, payload: String, messageID: String, correlationID: String, priority: Int) {
        self.routingKey = routingKey
        self.payload = payload
        self.messageID = messageID
        self.correlationID = correlationID
        self.priority = priority
    }
}

/// What the broker said of one published message.
public enum AMQPPublishOutcome: Sendable, Equatable {
    /// Confirmed: routed to a queue and, the message being persistent, written to disk there.
    case confirmed
    /// The exchange had no queue for its routing key (returned as `mandatory`).
    case unroutable
    /// The broker could not take it (basic.nack).
    case refused
}

public struct AMQPPublishError: Error, CustomStringConvertible, Sendable {
    public var description: String
}

/// Publishes to the notifications exchange over AMQP 0-9-1 with publisher confirms (librabbitmq). A batch is
/// written in one go (every message persistent and `mandatory`), then the broker's basic.ack / basic.nack /
/// basic.return frames are read until every message of the batch is settled; only `confirmed` messages are in a
/// queue for certain. librabbitmq is not thread-safe: the connection is used from one serial queue only, opened on
/// first use and again after any failure (a failed batch throws, and its messages count as not published).
public final class AMQPPublisher: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var server: AMQPServer
        public var exchange: String
        /// How long a batch may wait for its confirms before the connection is given up.
        public var confirmTimeout: Duration

        public init(server: AMQPServer, exchange: String = RabbitManagementClient.exchange, confirmTimeout: Duration = .seconds(10)) {
            self.server = server
            self.exchange = exchange
            self.confirmTimeout = confirmTimeout
        }
    }

    let configuration: Configuration
    let logger: Logger
    /// Every use of `connection` happens on this queue.
    let queue = DispatchQueue(label: "amqp-publisher")
    var connection: amqp_connection_state_t?
    /// The delivery tag the broker gives the next message on this channel (confirm mode counts from 1).
    var nextTag: UInt64 = 1

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    deinit {
        if let connection { Self.close(connection) }
    }

    /// Publishes the batch and waits for the broker to settle every message; one outcome per message, in order.
    public func publish(_ messages: [AMQPOutgoing]) async throws -> [AMQPPublishOutcome] {
        guard !messages.isEmpty else { return [] }
        return try await withCheckedThrowingContinuation { continuation in
            queue.async {
                do {
                    continuation.resume(returning: try self.publishOnQueue(messages))
                } catch {
                    if let connection = self.connection { Self.close(connection) }
                    self.connection = nil
                    continuation.resume(throwing: error)
                }
            }
        }
    }

    /// Closes the connection (the next publish opens a new one).
    public func shutdown() async {
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            queue.async {
                if let connection = self.connection { Self.close(connection) }
                self.connection = nil
                done.resume()
            }
        }
    }

    func publishOnQueue(_ messages: [AMQPOutgoing]) throws -> [AMQPPublishOutcome] {
        let connection = try self.connection ?? open()
        self.connection = connection
        var outcomes = [AMQPPublishOutcome?](repeating: nil, count: messages.count)
        var indexByTag: [UInt64: Int] = [:]
        var indexByMessageID: [String: Int] = [:]
        var returned = Set<Int>()
        let firstTag = nextTag
        for (index, message) in messages.enumerated() {
            let status = Self.basicPublish(connection, exchange: configuration.exchange, message)
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPPublishError(description: "publish: \(String(cString: amqp_error_string2(status)))")
            }
            indexByTag[nextTag] = index
            indexByMessageID[message.messageID] = index
            nextTag += 1
        }
        var unsettled = messages.count
        let deadline = ContinuousClock.now + configuration.confirmTimeout
        func settle(_ tag: UInt64, multiple: Bool, _ outcome: AMQPPublishOutcome) {
            let tags = multiple ? Array(firstTag...tag) : [tag]
            for tag in tags {
                guard let index = indexByTag[tag], outcomes[index] == nil else { continue }
                outcomes[index] = returned.contains(index) && outcome == .confirmed ? .unroutable : outcome
                unsettled -= 1
            }
        }
        while unsettled > 0 {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { throw AMQPPublishError(description: "no confirm within \(configuration.confirmTimeout)") }
            var frame = amqp_frame_t()
            var timeout = timeval(tv_sec: Int(left.components.seconds), tv_usec: Int(left.components.attoseconds / 1_000_000_000_000))
            let status = amqp_simple_wait_frame_noblock(connection, &frame, &timeout)
            if status == AMQP_STATUS_TIMEOUT.rawValue { continue }
            guard status == AMQP_STATUS_OK.rawValue else {
                throw AMQPPublishError(description: "waiting for confirms: \(String(cString: amqp_error_string2(status)))")
            }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), let decoded = frame.payload.method.decoded else { continue }
            switch frame.payload.method.id {
            case AMQP_BASIC_ACK_METHOD:
                let ack = decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee
                settle(ack.delivery_tag, multiple: ack.multiple != 0, .confirmed)
            case AMQP_BASIC_NACK_METHOD:
                let nack = decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee
                settle(nack.delivery_tag, multiple: nack.multiple != 0, .refused)
            case AMQP_BASIC_RETURN_METHOD:
                // The returned message's content follows; its message_id says which one it was.
                var message = amqp_message_t()
                let reply = amqp_read_message(connection, frame.channel, &message, 0)
                guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
                    throw AMQPPublishError(description: "reading a returned message: \(AMQPConsumer.describe(reply))")
                }
                if message.properties._flags & UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) != 0,
                    let index = indexByMessageID[AMQPConsumer.string(message.properties.message_id)]
                {
                    returned.insert(index)
                }
                amqp_destroy_message(&message)
            case AMQP_CHANNEL_CLOSE_METHOD:
                let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                throw AMQPPublishError(description: "channel closed by server: \(close.reply_code) \(AMQPConsumer.string(close.reply_text))")
            case AMQP_CONNECTION_CLOSE_METHOD:
                let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                throw AMQPPublishError(description: "connection closed by server: \(close.reply_code) \(AMQPConsumer.string(close.reply_text))")
            default:
                continue
            }
        }
        amqp_maybe_release_buffers(connection)
        return outcomes.map { $0 ?? .refused }
    }

    static func basicPublish(_ connection: amqp_connection_state_t, exchange: String, _ message: AMQPOutgoing) -> Int32 {
        let exchange = Self.copy(exchange)
        let routingKey = Self.copy(message.routingKey)
        let body = Self.copy(message.payload)
        let messageID = Self.copy(message.messageID)
        let correlationID = Self.copy(message.correlationID)
        let contentType = Self.copy("application/json")
        let headerKey = Self.copy("x-correlation-id")
        defer { for copied in [exchange, routingKey, body, messageID, correlationID, contentType, headerKey] { free(copied.bytes) } }
        var header = amqp_table_entry_t()
        header.key = headerKey
        header.value.kind = UInt8(ascii: "S")  // AMQP_FIELD_KIND_UTF8
        header.value.value.bytes = correlationID
        return withUnsafeMutablePointer(to: &header) { entry in
            var properties = amqp_basic_properties_t()
            properties._flags =
                UInt32(AMQP_BASIC_CONTENT_TYPE_FLAG) | UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG) | UInt32(AMQP_BASIC_MESSAGE_ID_FLAG)
                | UInt32(AMQP_BASIC_CORRELATION_ID_FLAG) | UInt32(AMQP_BASIC_PRIORITY_FLAG) | UInt32(AMQP_BASIC_HEADERS_FLAG)
            properties.content_type = contentType
            properties.delivery_mode = 2
            properties.message_id = messageID
            properties.correlation_id = correlationID
            properties.priority = UInt8(max(0, min(10, message.priority)))
            properties.headers = amqp_table_t(num_entries: 1, entries: entry)
            return amqp_basic_publish(connection, 1, exchange, routingKey, 1, 0, &properties, body)
        }
    }

    /// A malloc'ed copy of the string's UTF-8 bytes (freed by the caller).
    static func copy(_ string: String) -> amqp_bytes_t {
        let utf8 = Array(string.utf8)
        let pointer = malloc(max(1, utf8.count))!
        utf8.withUnsafeBytes { pointer.copyMemory(from: $0.baseAddress!, byteCount: utf8.count) }
        return amqp_bytes_t(len: utf8.count, bytes: pointer)
    }

    func open() throws -> amqp_connection_state_t {
        // No heartbeats: librabbitmq services them only while publishing, and an idle relay would be dropped. A dead
        // connection shows as a failed write or a confirm timeout instead.
        let connection: amqp_connection_state_t
        switch AMQPConnect.open(configuration.server, heartbeatSeconds: 0) {
        case .success(let opened): connection = opened
        case .failure(let failure): throw AMQPPublishError(description: failure.description)
        }
        amqp_confirm_select(connection, 1)
        let reply = amqp_get_rpc_reply(connection)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else {
            Self.close(connection)
            throw AMQPPublishError(description: "confirm.select: \(AMQPConsumer.describe(reply))")
        }
        nextTag = 1
        logger.info(
            "amqp publisher connected",
            metadata: ["host": .string(configuration.server.host), "port": .stringConvertible(configuration.server.port)]
        )
        return connection
    }

    static func close(_ connection: amqp_connection_state_t) { AMQPConnect.close(connection) }
}
