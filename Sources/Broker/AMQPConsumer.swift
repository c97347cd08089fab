import Breakers
import CAMQP
import Foundation
import Logging
import NIOConcurrencyHelpers

/// One message as RabbitMQ delivered it. `generation` names the connection it came on: a tag is only valid there.
public struct AMQPDelivery: Sendable {
    public var tag: UInt64
    public var generation: Int
    public var body: Data
    public var messageID: String?
    public var correlationID: String?
    public var redelivered: Bool
}

/// Consumes one queue over AMQP 0-9-1 with librabbitmq, manual acks and a bounded prefetch.
/// librabbitmq is not thread-safe, so the connection lives on one dedicated thread: deliveries leave it through an
/// `AsyncStream`, acks come back through a locked queue that the thread drains between reads. The thread reconnects
/// when the broker goes away, paced by its circuit breaker (a lost connection trips it; the open time grows with each
/// failed probe); deliveries from a lost connection can no longer be acked and will be redelivered by RabbitMQ, which
/// the job claim makes harmless.
public final class AMQPConsumer: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var server: AMQPServer
        public var queue: String
        public var prefetch: Int
        public var heartbeatSeconds: Int

        public init(server: AMQPServer, queue: String, prefetch: Int, heartbeatSeconds: Int = 10) {
            self.server = server
            self.queue = queue
            self.prefetch = prefetch
            self.heartbeatSeconds = heartbeatSeconds
        }
    }

    public enum Event: Sendable {
        case connected
        case delivery(AMQPDelivery)
        case disconnected(reason: String)
    }

    enum Settlement {
        case ack
        case reject(requeue: Bool)
    }

    struct Shared {
        var settlements: [(generation: Int, tag: UInt64, settlement: Settlement)] = []
        var stopping = false
        var connected = false
    }

    public let events: AsyncStream<Event>
    private let continuation: AsyncStream<Event>.Continuation
    private let configuration: Configuration
    private let logger: Logger
    /// Open while the broker is unreachable: workers switch to the PostgreSQL fallback.
    public let breaker: CircuitBreaker
    private let shared = NIOLockedValueBox(Shared())
    private let finished = ConditionLock(value: false)

    public init(configuration: Configuration, breaker: CircuitBreaker, logger: Logger) {
        self.configuration = configuration
        self.breaker = breaker
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: Event.self, bufferingPolicy: .unbounded)
    }

    public var isConnected: Bool { shared.withLockedValue { $0.connected } }

    public func start() {
        let thread = Thread { [self] in self.runLoop() }
        thread.name = "amqp-\(configuration.queue)"
        thread.start()
    }

    public func ack(_ delivery: AMQPDelivery) { settle(delivery, .ack) }

    /// Rejects without requeue: RabbitMQ dead-letters the message to `failed.queue`.
    public func deadLetter(_ delivery: AMQPDelivery) { settle(delivery, .reject(requeue: false)) }

    public func requeue(_ delivery: AMQPDelivery) { settle(delivery, .reject(requeue: true)) }

    private func settle(_ delivery: AMQPDelivery, _ settlement: Settlement) {
        shared.withLockedValue { $0.settlements.append((delivery.generation, delivery.tag, settlement)) }
    }

    /// Flushes pending acks, closes the connection (unacked deliveries return to the queue) and waits for the thread.
    public func stop() async {
        shared.withLockedValue { $0.stopping = true }
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async {
                self.finished.lock(whenValue: true)
                self.finished.unlock()
                done.resume()
            }
        }
    }

    private var stopping: Bool { shared.withLockedValue { $0.stopping } }

    private func runLoop() {
        var generation = 0
        while !stopping {
            guard breaker.allow() else {
                sleepUnlessStopping(0.05)
                continue
            }
            let connection: amqp_connection_state_t
            switch connect() {
            case .success(let opened):
                connection = opened
                breaker.record(success: true)
            case .failure(let reason):
                breaker.record(success: false)
                continuation.yield(.disconnected(reason: reason))
                continue
            }
            generation += 1
            shared.withLockedValue { $0.connected = true }
            continuation.yield(.connected)
            let reason = consume(connection, generation: generation)
            flushSettlements(connection, generation: generation)
            shared.withLockedValue { $0.connected = false }
            if reason == nil {
                amqp_channel_close(connection, 1, Int32(AMQP_REPLY_SUCCESS))
                amqp_connection_close(connection, Int32(AMQP_REPLY_SUCCESS))
            }
            amqp_destroy_connection(connection)
            if let reason {
                breaker.record(success: false)
                logger.warning("amqp connection lost", metadata: ["queue": .string(configuration.queue), "reason": .string(reason)])
                continuation.yield(.disconnected(reason: reason))
            }
        }
        continuation.finish()
        finished.lock()
        finished.unlock(withValue: true)
    }

    /// Reads deliveries until the connection fails (returns the reason) or a stop is requested (returns nil).
    private func consume(_ connection: amqp_connection_state_t, generation: Int) -> String? {
        while !stopping {
            if let failure = flushSettlements(connection, generation: generation) { return failure }
            amqp_maybe_release_buffers(connection)
            var envelope = amqp_envelope_t()
            let reply = camqp_consume_message(connection, &envelope, 50)
            if reply.reply_type == AMQP_RESPONSE_NORMAL {
                let properties = envelope.message.properties
                let delivery = AMQPDelivery(
                    tag: envelope.delivery_tag,
                    generation: generation,
                    body: Self.data(envelope.message.body),
                    messageID: properties._flags & UInt32(AMQP_BASIC_MESSAGE_ID_FLAG) != 0 ? Self.string(properties.message_id) : nil,
                    correlationID: properties._flags & UInt32(AMQP_BASIC_CORRELATION_ID_FLAG) != 0
                        ? Self.string(properties.correlation_id) : nil,
                    redelivered: envelope.redelivered != 0
                )
                amqp_destroy_envelope(&envelope)
                continuation.yield(.delivery(delivery))
                continue
            }
            if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION, reply.library_error == AMQP_STATUS_TIMEOUT.rawValue {
                continue
            }
            return Self.describe(reply)
        }
        return nil
    }

    @discardableResult
    private func flushSettlements(_ connection: amqp_connection_state_t, generation: Int) -> String? {
        let pending = shared.withLockedValue { shared -> [(generation: Int, tag: UInt64, settlement: Settlement)] in
            defer { shared.settlements.removeAll(keepingCapacity: true) }
            return shared.settlements
        }
        for item in pending where item.generation == generation {
            let status: Int32
            switch item.settlement {
            case .ack: status = amqp_basic_ack(connection, 1, item.tag, 0)
            case .reject(let requeue): status = amqp_basic_reject(connection, 1, item.tag, requeue ? 1 : 0)
            }
            if status != AMQP_STATUS_OK.rawValue { return "ack failed: \(String(cString: amqp_error_string2(status)))" }
        }
        return nil
    }

    private enum ConnectResult {
        case success(amqp_connection_state_t)
        case failure(String)
    }

    private func connect() -> ConnectResult {
        let connection: amqp_connection_state_t
        switch AMQPConnect.open(configuration.server, heartbeatSeconds: configuration.heartbeatSeconds) {
        case .success(let opened): connection = opened
        case .failure(let failure): return .failure(failure.description)
        }
        var reply: amqp_rpc_reply_t
        amqp_basic_qos(connection, 1, 0, UInt16(clamping: configuration.prefetch), 0)
        reply = amqp_get_rpc_reply(connection)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { return fail(connection, "qos: \(Self.describe(reply))") }
        configuration.queue.withCString { queue in
            _ = amqp_basic_consume(connection, 1, camqp_cstring_bytes(queue), amqp_empty_bytes, 0, 0, 0, amqp_empty_table)
        }
        reply = amqp_get_rpc_reply(connection)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { return fail(connection, "consume: \(Self.describe(reply))") }
        return .success(connection)
    }

    private func fail(_ connection: amqp_connection_state_t, _ reason: String) -> ConnectResult {
        AMQPConnect.close(connection)
        return .failure(reason)
    }

    private func sleepUnlessStopping(_ seconds: Double) {
        let deadline = Date().addingTimeInterval(seconds)
        while !stopping, Date() < deadline { usleep(20_000) }
    }

    static func data(_ bytes: amqp_bytes_t) -> Data {
        guard bytes.len > 0, let pointer = bytes.bytes else { return Data() }
        return Data(bytes: pointer, count: bytes.len)
    }

    static func string(_ bytes: amqp_bytes_t) -> String {
        String(decoding: data(bytes), as: UTF8.self)
    }

    static func describe(_ reply: amqp_rpc_reply_t) -> String {
        switch reply.reply_type {
        case AMQP_RESPONSE_LIBRARY_EXCEPTION:
            return String(cString: amqp_error_string2(reply.library_error))
        case AMQP_RESPONSE_SERVER_EXCEPTION:
            if reply.reply.id == AMQP_CHANNEL_CLOSE_METHOD, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
                return "channel closed by server: \(close.reply_code) \(string(close.reply_text))"
            }
            if reply.reply.id == AMQP_CONNECTION_CLOSE_METHOD, let decoded = reply.reply.decoded {
                let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
                return "connection closed by server: \(close.reply_code) \(string(close.reply_text))"
            }
            return "server exception"
        default:
            return "no reply"
        }
    }
}
