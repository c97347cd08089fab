import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

public struct RedisError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    /// An error reply of the server (as opposed to a connection that failed or a reply that did not come in time).
    var fromServer = false
    public init(message: String) { self.message = message }
}

/// A Redis connection on an NIO event loop. Each command is written as a RESP array of bulk strings (every
/// argument's exact UTF-8 bytes with its length: binary-safe) and answered by the next reply, in order: commands sent
/// while others are in flight share the connection as a pipeline, and no thread waits for a reply (no thread pool,
/// no lock held across a round trip). A command without a reply within the timeout fails; its reply, if it comes, is
/// dropped. A connection that fails fails what was in flight on it; the next command dials again, with `AUTH` first
/// when a password is set.
public final class RedisClient: Sendable {
    public enum Reply: Sendable, Equatable {
        case null
        case string(String)
        case integer(Int)
        case array([Reply])
        case status(String)
    }

    private let host: String
    private let port: Int
    private let timeout: TimeAmount
    private let timeoutMilliseconds: Int
    /// `AUTH [username] password` on every new connection when a password is set (Redis `requirepass` or an ACL user).
    private let username: String?
    private let password: String?
    private let group: any EventLoopGroup
    /// The connection: being dialled, or open. Cleared when it fails, so that the next command dials again.
    private let connection = NIOLockedValueBox<Task<any Channel, any Error>?>(nil)
    private let open = NIOLockedValueBox<(any Channel)?>(nil)

    public init(
        host: String,
        port: Int,
        timeoutMilliseconds: Int = 500,
        username: String? = nil,
        password: String? = nil,
        group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) {
        self.host = host
        self.port = port
        self.timeoutMilliseconds = timeoutMilliseconds
        self.timeout = .milliseconds(Int64(timeoutMilliseconds))
        self.username = username
        self.password = password
        self.group = group
    }

    deinit {
        open.withLockedValue { $0 }?.close(promise: nil)
    }

    public func command(_ arguments: [String]) async throws -> Reply {
        try await send(arguments, on: try await connected())
    }

    public func get(_ key: String) async throws -> String? {
        if case .string(let value) = try await command(["GET", key]) { return value }
        return nil
    }

    public func set(_ key: String, _ value: String, ttlSeconds: Int) async throws {
        _ = try await command(["SET", key, value, "EX", String(ttlSeconds)])
    }

    public func delete(_ keys: [String]) async throws {
        guard !keys.isEmpty else { return }
        _ = try await command(["DEL"] + keys)
    }

    public func ping() async throws {
        _ = try await command(["PING"])
    }

    /// The command written on `channel`, and its reply (an error reply throws), within the timeout.
    private func send(_ arguments: [String], on channel: any Channel) async throws -> Reply {
        let reply = PendingReply(channel.eventLoop.makePromise(of: Reply.self))
        let milliseconds = timeoutMilliseconds
        let deadline = channel.eventLoop.scheduleTask(in: timeout) {
            reply.fail(RedisError(message: "redis: no reply within \(milliseconds) ms"))
        }
        reply.promise.futureResult.whenComplete { _ in deadline.cancel() }
        // A connection closed meanwhile fails the write: the command fails at once instead of at its deadline.
        let written = channel.eventLoop.makePromise(of: Void.self)
        written.futureResult.whenFailure { error in reply.fail(RedisError(message: "redis: \(error)")) }
        channel.write(RedisCommand(arguments: arguments, reply: reply), promise: written)
        return try await reply.promise.futureResult.get()
    }

    /// The open connection, dialled (and authenticated) when there is none or it closed.
    private func connected() async throws -> any Channel {
        for _ in 0..<2 {
            let dialling = connection.withLockedValue { current -> Task<any Channel, any Error> in
                if let current { return current }
                let made = Task { try await self.dial() }
                current = made
                return made
            }
            do {
                let channel = try await dialling.value
                if channel.isActive { return channel }
                connection.withLockedValue { if $0 == dialling { $0 = nil } }
            } catch {
                connection.withLockedValue { if $0 == dialling { $0 = nil } }
                throw error
            }
        }
        throw RedisError(message: "redis: the connection closed as soon as it opened")
    }

    private func dial() async throws -> any Channel {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(timeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(RedisHandler()) }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            throw RedisError(message: "redis: cannot connect to \(host):\(port): \(error)")
        }
        if let password, !password.isEmpty {
            let auth = username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            do {
                _ = try await send(auth, on: channel)
            } catch let error as RedisError {
                channel.close(promise: nil)
                // The reply's text is not passed on: it could echo what was sent.
                throw error.fromServer
                    ? RedisError(message: "redis: authentication refused (NOTIFY_REDIS_USERNAME / NOTIFY_REDIS_PASSWORD)")
                    : RedisError(message: "redis: the connection failed during AUTH")
            }
        }
        let previous = open.withLockedValue { open in
            defer { open = channel }
            return open
        }
        previous?.close(promise: nil)
        return channel
    }
}

/// A command and where its reply goes.
struct RedisCommand: Sendable {
    var arguments: [String]
    var reply: PendingReply
}

/// A reply awaited: completed once, by its reply, its deadline or its connection's failure, whichever comes first.
/// Touched only on its connection's event loop.
final class PendingReply: @unchecked Sendable {
    let promise: EventLoopPromise<RedisClient.Reply>
    private var done = false

    init(_ promise: EventLoopPromise<RedisClient.Reply>) { self.promise = promise }

    func complete(_ result: Result<RedisClient.Reply, RedisError>) {
        promise.futureResult.eventLoop.preconditionInEventLoop()
        guard !done else { return }
        done = true
        switch result {
        case .success(let value): promise.succeed(value)
        case .failure(let error): promise.fail(error)
        }
    }

    func fail(_ error: RedisError) { complete(.failure(error)) }
}

/// RESP on a connection: commands out, replies in, matched in order. Lives on the channel's event loop.
final class RedisHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = RedisCommand
    typealias OutboundOut = ByteBuffer

    /// The replies awaited, oldest first. One whose deadline passed is already failed; its reply is dropped.
    private var awaiting = CircularBuffer<PendingReply>()
    private var received: ByteBuffer?
    /// A flush is queued on the loop: the commands written before it runs go out in one write.
    private var flushQueued = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let command = unwrapOutboundIn(data)
        var buffer = context.channel.allocator.buffer(capacity: 16 + command.arguments.reduce(0) { $0 + $1.utf8.count + 16 })
        RESP.encode(command.arguments, into: &buffer)
        awaiting.append(command.reply)
        context.write(wrapOutboundOut(buffer), promise: promise)
        // Callers write without flushing; one flush, queued behind the writes already waiting for the loop, sends them
        // all: under load many commands share a system call, and alone a command waits for nothing.
        guard !flushQueued else { return }
        flushQueued = true
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.execute {
            let (handler, context) = bound.value
            handler.flushQueued = false
            context.flush()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = unwrapInboundIn(data)
        if received == nil {
            received = incoming
        } else {
            received!.writeBuffer(&incoming)
        }
        do {
            while var buffer = received, let reply = try RESP.parse(&buffer) {
                received = buffer.readableBytes > 0 ? buffer : nil
                guard let pending = awaiting.popFirst() else {
                    throw RedisError(message: "redis: a reply nobody asked for")
                }
                pending.complete(reply)
            }
            if let buffer = received, buffer.readableBytes == 0 { received = nil }
        } catch {
            failAll(error as? RedisError ?? RedisError(message: "redis: \(error)"))
            context.close(promise: nil)
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        failAll(RedisError(message: "redis: the connection closed"))
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        failAll(RedisError(message: "redis: \(error)"))
        context.close(promise: nil)
    }

    private func failAll(_ error: RedisError) {
        while let pending = awaiting.popFirst() { pending.fail(error) }
    }
}

/// The Redis serialization protocol (RESP2): commands as arrays of bulk strings; replies of the five kinds.
enum RESP {
    static func encode(_ arguments: [String], into buffer: inout ByteBuffer) {
        buffer.writeString("*\(arguments.count)\r\n")
        for argument in arguments {
            buffer.writeString("$\(argument.utf8.count)\r\n")
            buffer.writeString(argument)
            buffer.writeStaticString("\r\n")
        }
    }

    /// The first whole reply in `buffer`, consumed; nil, with nothing consumed, when it has not all arrived. An error
    /// reply (or one inside an array) is a failure; bytes that are no reply throw.
    static func parse(_ buffer: inout ByteBuffer) throws -> Result<RedisClient.Reply, RedisError>? {
        var copy = buffer
        guard let reply = try value(&copy) else { return nil }
        buffer = copy
        return reply
    }

    private static func value(_ buffer: inout ByteBuffer) throws -> Result<RedisClient.Reply, RedisError>? {
        guard let kind = buffer.readInteger(as: UInt8.self), let line = line(&buffer) else { return nil }
        switch kind {
        case UInt8(ascii: "+"):
            return .success(.status(line))
        case UInt8(ascii: "-"):
            var error = RedisError(message: "redis: " + line)
            error.fromServer = true
            return .failure(error)
        case UInt8(ascii: ":"):
            guard let integer = Int(line) else { throw malformed }
            return .success(.integer(integer))
        case UInt8(ascii: "$"):
            guard let length = Int(line) else { throw malformed }
            if length < 0 { return .success(.null) }
            guard buffer.readableBytes >= length + 2, let text = buffer.readString(length: length) else { return nil }
            buffer.moveReaderIndex(forwardBy: 2)
            return .success(.string(text))
        case UInt8(ascii: "*"):
            guard let count = Int(line) else { throw malformed }
            if count < 0 { return .success(.null) }
            var items: [RedisClient.Reply] = []
            var failure: RedisError?
            for _ in 0..<count {
                guard let item = try value(&buffer) else { return nil }
                switch item {
                case .success(let reply): items.append(reply)
                case .failure(let error): failure = failure ?? error
                }
            }
            return failure.map { .failure($0) } ?? .success(.array(items))
        default:
            throw malformed
        }
    }

    private static var malformed: RedisError { RedisError(message: "redis: a reply that is not RESP") }

    /// The text up to the next CRLF, consumed with it; nil when no CRLF has arrived yet.
    private static func line(_ buffer: inout ByteBuffer) -> String? {
        let view = buffer.readableBytesView
        guard let cr = view.firstIndex(of: UInt8(ascii: "\r")), cr + 1 < view.endIndex else { return nil }
        let text = buffer.readString(length: cr - view.startIndex)
        buffer.moveReaderIndex(forwardBy: 2)
        return text
    }
}
