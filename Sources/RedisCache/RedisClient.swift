import CHiredis
import Deadlines
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix

public struct RedisError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
    public init(message: String) { self.message = message }
}

/// A Redis connection through hiredis. Calls block, so they run on the `NIOThreadPool`, on the one connection
/// (guarded by a lock); a failed connection is dropped and redialled on the next call. Commands that arrive while
/// one is in flight go together as one pipeline (all written, then every reply read): one hop to the thread pool
/// and one round trip for all of them, as the gateway's group commit does for PostgreSQL.
public final class RedisClient: @unchecked Sendable {
    public enum Reply: Sendable, Equatable {
        case null
        case string(String)
        case integer(Int)
        case array([Reply])
        case status(String)
    }

    private let host: String
    private let port: Int
    private let timeoutMilliseconds: Int
    private let threadPool: NIOThreadPool
    private let lock = NIOLock()
    private var context: UnsafeMutablePointer<redisContext>?
    /// `AUTH [username] password` on every new connection when a password is set (Redis `requirepass` or an ACL user).
    private let username: String?
    private let password: String?
    /// Concurrent commands, pipelined.
    private let pipelines = NIOLockedValueBox<BatchExecutor<[String], Result<Reply, any Error>>?>(nil)

    public init(
        host: String,
        port: Int,
        timeoutMilliseconds: Int = 500,
        username: String? = nil,
        password: String? = nil,
        threadPool: NIOThreadPool = .singleton
    ) {
        self.host = host
        self.port = port
        self.timeoutMilliseconds = timeoutMilliseconds
        self.username = username
        self.password = password
        self.threadPool = threadPool
    }

    deinit {
        if let context { redisFree(context) }
    }

    public func command(_ arguments: [String]) async throws -> Reply {
        try await executor.submit(arguments).get()
    }

    /// Made on first use. It holds the client weakly: a client no longer used is freed (and its connection closed)
    /// even though its executor exists; a caller of `command` holds the client until its reply.
    private var executor: BatchExecutor<[String], Result<Reply, any Error>> {
        pipelines.withLockedValue { executor in
            if let executor { return executor }
            let made = BatchExecutor<[String], Result<Reply, any Error>>(maxBatch: 128, maxInFlight: 1) { [weak self] commands in
                guard let self else { throw RedisError(message: "redis: the client was closed") }
                return try await self.threadPool.runIfActive { try self.pipelineBlocking(commands) }
            }
            executor = made
            return made
        }
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

    /// Every command written, then every reply read, in order; a command's error reply is its own failure, a broken
    /// connection fails them all (and is dropped).
    func pipelineBlocking(_ commands: [[String]]) throws -> [Result<Reply, any Error>] {
        try lock.withLock {
            let context = try connected()
            for arguments in commands where Self.withArgv(arguments, { chiredis_append_argv(context, $0, $1, $2) }) != REDIS_OK {
                throw dropConnection(context)
            }
            var results: [Result<Reply, any Error>] = []
            results.reserveCapacity(commands.count)
            for _ in commands {
                guard let raw = chiredis_get_reply(context) else { throw dropConnection(context) }
                results.append(Result { try Self.convert(raw) })
                freeReplyObject(raw)
            }
            return results
        }
    }

    /// Closes a connection that failed; the next call dials again. The error says why.
    private func dropConnection(_ context: UnsafeMutablePointer<redisContext>) -> RedisError {
        let message = Self.errorText(context)
        redisFree(context)
        self.context = nil
        return RedisError(message: "redis: \(message)")
    }

    /// The open connection, dialled (and authenticated) when there is none. Called with the lock held.
    private func connected() throws -> UnsafeMutablePointer<redisContext> {
        if let context { return context }
        guard let opened = chiredis_connect(host, Int32(port), Int32(timeoutMilliseconds)) else {
            throw RedisError(message: "redis: cannot allocate context")
        }
        if opened.pointee.err != 0 {
            let message = Self.errorText(opened)
            redisFree(opened)
            throw RedisError(message: "redis: \(message)")
        }
        if let password, !password.isEmpty {
            // The reply's text is not passed on: it could echo what was sent.
            let auth = username.map { ["AUTH", $0, password] } ?? ["AUTH", password]
            guard let reply = Self.send(auth, on: opened) else {
                redisFree(opened)
                throw RedisError(message: "redis: the connection closed during AUTH")
            }
            let refused = reply.pointee.type == REDIS_REPLY_ERROR
            freeReplyObject(reply)
            if refused {
                redisFree(opened)
                throw RedisError(message: "redis: authentication refused (NOTIFY_REDIS_USERNAME / NOTIFY_REDIS_PASSWORD)")
            }
        }
        context = opened
        return opened
    }

    /// One command: every argument's exact UTF-8 bytes in one buffer, passed with explicit lengths (hiredis's argv
    /// form is binary-safe): a value holding a NUL byte is sent whole, and nothing is read past what was copied.
    static func send(_ arguments: [String], on context: UnsafeMutablePointer<redisContext>) -> UnsafeMutablePointer<redisReply>? {
        withArgv(arguments) { chiredis_command_argv(context, $0, $1, $2) }
    }

    /// `body(argc, argv, argvlen)` over the arguments' bytes.
    static func withArgv<T>(
        _ arguments: [String],
        _ body: (Int32, UnsafeMutablePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int>?) -> T
    ) -> T {
        var bytes: [UInt8] = []
        var lengths: [Int] = []
        lengths.reserveCapacity(arguments.count)
        for argument in arguments {
            bytes.append(contentsOf: argument.utf8)
            lengths.append(argument.utf8.count)
        }
        if bytes.isEmpty { bytes.append(0) }
        return bytes.withUnsafeBufferPointer { buffer -> T in
            let base = UnsafeRawPointer(buffer.baseAddress!).assumingMemoryBound(to: CChar.self)
            var offset = 0
            var pointers: [UnsafePointer<CChar>?] = lengths.map { length in
                defer { offset += length }
                return base + offset
            }
            return pointers.withUnsafeMutableBufferPointer { argv in
                lengths.withUnsafeBufferPointer { argvlen in body(Int32(arguments.count), argv.baseAddress, argvlen.baseAddress) }
            }
        }
    }

    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        withUnsafeBytes(of: context.pointee.errstr) { bytes in
            String(decoding: bytes.prefix(while: { $0 != 0 }), as: UTF8.self)
        }
    }

    static func convert(_ reply: UnsafeMutablePointer<redisReply>) throws -> Reply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            return .string(String(decoding: UnsafeRawBufferPointer(start: value.str, count: Int(value.len)), as: UTF8.self))
        case REDIS_REPLY_STATUS:
            return .status(String(decoding: UnsafeRawBufferPointer(start: value.str, count: Int(value.len)), as: UTF8.self))
        case REDIS_REPLY_INTEGER:
            return .integer(Int(value.integer))
        case REDIS_REPLY_NIL:
            return .null
        case REDIS_REPLY_ARRAY:
            var items: [Reply] = []
            for index in 0..<Int(value.elements) {
                if let element = value.element[index] { items.append(try convert(element)) }
            }
            return .array(items)
        case REDIS_REPLY_ERROR:
            throw RedisError(message: "redis: " + String(decoding: UnsafeRawBufferPointer(start: value.str, count: Int(value.len)), as: UTF8.self))
        default:
            return .null
        }
    }
}
