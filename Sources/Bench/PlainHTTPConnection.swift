import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// One keep-alive HTTP/1.1 connection, one request at a time: what a closed-loop client needs and nothing more. The
/// load generator shares the machine's cores with what it measures; a request through `HTTPClient` (its pool, its
/// state machines, a task per request) cost it about 200 µs of CPU, several times what this costs.
final class PlainHTTPConnection: Sendable {
    struct Response: Sendable {
        var status: Int
        var body: ByteBuffer
    }

    struct Closed: Error, CustomStringConvertible {
        var description: String { "the connection closed before the answer (or no answer came within 30 s)" }
    }

    let channel: any Channel
    let host: String

    private init(channel: any Channel, host: String) {
        self.channel = channel
        self.host = host
    }

    /// Connects to `http://host:port`.
    static func connect(
        host: String,
        port: Int,
        on group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton
    ) async throws
        -> PlainHTTPConnection
    {
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.so_reuseaddr), value: 1)
            .channelOption(.tcpOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(AnswerHandler())
                }
            }
            .connect(host: host, port: port).get()
        return PlainHTTPConnection(channel: channel, host: "\(host):\(port)")
    }

    /// `POST path` with `body` as JSON; the answer's status and body.
    func post(_ path: String, headers extra: [(String, String)], body: ByteBuffer) async throws -> Response {
        var head = HTTPRequestHead(version: .http1_1, method: .POST, uri: path)
        head.headers.add(name: "Host", value: host)
        head.headers.add(name: "Content-Type", value: "application/json")
        head.headers.add(name: "Content-Length", value: String(body.readableBytes))
        for (name, value) in extra { head.headers.add(name: name, value: value) }
        let promise = channel.eventLoop.makePromise(of: Response.self)
        // No answer within 30 s: the connection is closed, which fails the request.
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(30)) { [channel] in channel.close(promise: nil) }
        defer { timeout.cancel() }
        channel.writeAndFlush(Request(head: head, body: body, answer: promise), promise: nil)
        return try await promise.futureResult.get()
    }

    func close() async {
        try? await channel.close()
    }

    struct Request: Sendable {
        var head: HTTPRequestHead
        var body: ByteBuffer
        var answer: EventLoopPromise<Response>
    }

    /// Writes each request and answers the oldest waiting one with each response (HTTP/1.1 answers in order).
    final class AnswerHandler: ChannelDuplexHandler {
        typealias InboundIn = HTTPClientResponsePart
        typealias OutboundIn = Request
        typealias OutboundOut = HTTPClientRequestPart

        var waiting: CircularBuffer<EventLoopPromise<Response>> = []
        var status = 0
        var body = ByteBuffer()

        func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
            let request = unwrapOutboundIn(data)
            waiting.append(request.answer)
            context.write(wrapOutboundOut(.head(request.head)), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(request.body))), promise: nil)
            context.write(wrapOutboundOut(.end(nil)), promise: promise)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                status = Int(head.status.code)
                body.clear()
            case .body(var part):
                body.writeBuffer(&part)
            case .end:
                waiting.popFirst()?.succeed(Response(status: status, body: body))
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            failAll(error)
            context.close(promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            failAll(Closed())
            context.fireChannelInactive()
        }

        func failAll(_ error: any Error) {
            while let answer = waiting.popFirst() { answer.fail(error) }
        }
    }
}

/// Idle keep-alive connections to the gateways: a request takes one (or opens one when none is idle) and puts it back
/// after its answer, so a pool grows to the number of its requests in flight and no further. The open loop's requests
/// share one pool; each closed-loop client has its own (one connection per gateway, one request at a time).
final class ConnectionPool: Sendable {
    private let idle = NIOLockedValueBox<[String: [PlainHTTPConnection]]>([:])

    /// Opens `count` connections to each gateway before the clock starts, as a client with a keep-alive pool has.
    func open(_ gateways: [String], count: Int) async throws {
        for gateway in gateways {
            for _ in 0..<count {
                let connection = try await Self.connect(gateway)
                idle.withLockedValue { $0[gateway, default: []].append(connection) }
            }
        }
    }

    static func connect(_ gateway: String) async throws -> PlainHTTPConnection {
        guard let url = URLComponents(string: gateway), let host = url.host, let port = url.port ?? (url.scheme == "http" ? 80 : nil)
        else { throw InvalidGateway(url: gateway) }
        return try await PlainHTTPConnection.connect(host: host, port: port)
    }

    func post(_ gateway: String, _ path: String, headers: [(String, String)], body: ByteBuffer) async throws -> PlainHTTPConnection.Response {
        let connection: PlainHTTPConnection
        // One the gateway closed while it was idle is dropped.
        if let known = idle.withLockedValue({ idle in
            while let last = idle[gateway]?.popLast() { if last.channel.isActive { return last } }
            return nil
        }) {
            connection = known
        } else {
            connection = try await Self.connect(gateway)
        }
        do {
            let answer = try await connection.post(path, headers: headers, body: body)
            idle.withLockedValue { $0[gateway, default: []].append(connection) }
            return answer
        } catch {
            await connection.close()
            throw error
        }
    }

    func closeAll() async {
        let all = idle.withLockedValue { open -> [PlainHTTPConnection] in
            defer { open = [:] }
            return open.values.flatMap { $0 }
        }
        for connection in all { await connection.close() }
    }

    struct InvalidGateway: Error, CustomStringConvertible {
        var url: String
        var description: String { "not an http://host:port URL: \(url)" }
    }
}
