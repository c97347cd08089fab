import CCurl
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOPosix
import ServiceLifecycle

/// Why a send failed, and whether trying again can help.
public struct SMTPError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var replyCode: Int
    /// 5xx replies (bad mailbox, rejected content) are permanent; 4xx, timeouts and connection errors are transient.
    public var permanent: Bool
    public var description: String { message }
}

/// Sends email over SMTP with libcurl. Each curl handle keeps its connection open between sends; a small pool of
/// handles lets several sends run at once, each on a thread of the `NIOThreadPool` (libcurl blocks).
public final class SMTPTransport: Sendable {
    public struct Configuration: Sendable {
        public var url: String
        public var username: String?
        public var password: String?
        public var timeoutSeconds: Int
        public var connections: Int

        public init(url: String, username: String? = nil, password: String? = nil, timeoutSeconds: Int = 15, connections: Int = 4) {
            self.url = url
            self.username = username
            self.password = password
            self.timeoutSeconds = timeoutSeconds
            self.connections = connections
        }
    }

    private let configuration: Configuration
    private let threadPool: NIOThreadPool
    /// Whether `threadPool` is this transport's own (then `shutdown()` stops it).
    private let ownsThreadPool: Bool
    private let handles: NIOLockedValueBox<[CurlHandle]>
    private let slots: AsyncSemaphore

    /// Each pooled connection gets a thread of its own (a send blocks its thread for the whole SMTP dialogue; the
    /// shared blocking pool has only as many threads as cores, which capped sends at two at a time here).
    public init(configuration: Configuration, threadPool: NIOThreadPool? = nil) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        self.configuration = configuration
        if let threadPool {
            self.threadPool = threadPool
            ownsThreadPool = false
        } else {
            let own = NIOThreadPool(numberOfThreads: max(1, configuration.connections))
            own.start()
            self.threadPool = own
            ownsThreadPool = true
        }
        self.handles = NIOLockedValueBox([])
        self.slots = AsyncSemaphore(count: max(1, configuration.connections))
    }

    public func send(_ message: EmailMessage) async throws {
        await slots.wait()
        defer { slots.signal() }
        let handle = handles.withLockedValue { $0.popLast() } ?? CurlHandle()
        let configuration = self.configuration
        let payload = Array(message.rendered().utf8)
        do {
            try await threadPool.runIfActive {
                try handle.send(payload: payload, from: message.from, to: message.to, configuration: configuration)
            }
            handles.withLockedValue { $0.append(handle) }
        } catch {
            // A handle whose connection failed is dropped, so the next send dials afresh.
            throw error
        }
    }
}

extension SMTPTransport {
    /// Stops the transport's own threads once the sends in progress finished, and closes its pooled connections.
    public func shutdown() async {
        if ownsThreadPool { try? await threadPool.shutdownGracefully() }
        handles.withLockedValue { $0.removeAll() }
    }
}

/// Stops an SMTP transport with the process, after the services that send through it (list it before them: a
/// service group stops its services in reverse order).
public struct SMTPTransportService: Service {
    let transport: SMTPTransport

    public init(_ transport: SMTPTransport) { self.transport = transport }

    public func run() async throws {
        try? await gracefulShutdown()
        await transport.shutdown()
    }
}

/// One libcurl easy handle; used by one thread at a time (the pool hands it out exclusively).
final class CurlHandle: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer

    init() {
        handle = curl_easy_init()
    }

    deinit {
        curl_easy_cleanup(handle)
    }

    final class Upload {
        let bytes: [UInt8]
        var offset = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    func send(payload: [UInt8], from: String, to: String, configuration: SMTPTransport.Configuration) throws {
        let upload = Upload(payload)
        var recipients: UnsafeMutablePointer<curl_slist>? = nil
        recipients = curl_slist_append(recipients, "<\(to)>")
        defer { curl_slist_free_all(recipients) }
        var errorBuffer = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)

        let code: CURLcode = errorBuffer.withUnsafeMutableBufferPointer { errorPointer in
            ccurl_setopt_string(handle, CURLOPT_URL, configuration.url)
            ccurl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(from)>")
            ccurl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients)
            ccurl_setopt_long(handle, CURLOPT_UPLOAD, 1)
            ccurl_setopt_long(handle, CURLOPT_TIMEOUT, configuration.timeoutSeconds)
            ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, 5)
            ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
            ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorPointer.baseAddress)
            if let username = configuration.username { ccurl_setopt_string(handle, CURLOPT_USERNAME, username) }
            if let password = configuration.password { ccurl_setopt_string(handle, CURLOPT_PASSWORD, password) }
            ccurl_setopt_read_callback(handle) { buffer, size, count, context in
                guard let buffer, let context else { return 0 }
                let upload = Unmanaged<Upload>.fromOpaque(context).takeUnretainedValue()
                let length = min(size * count, upload.bytes.count - upload.offset)
                guard length > 0 else { return 0 }
                upload.bytes.withUnsafeBytes { bytes in
                    UnsafeMutableRawPointer(buffer).copyMemory(from: bytes.baseAddress! + upload.offset, byteCount: length)
                }
                upload.offset += length
                return length
            }
            let context = Unmanaged.passUnretained(upload).toOpaque()
            ccurl_setopt_pointer(handle, CURLOPT_READDATA, context)
            let result = withExtendedLifetime(upload) { curl_easy_perform(handle) }
            ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, nil)
            return result
        }
        guard code != CURLE_OK else { return }
        var reply: Int = 0
        ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &reply)
        let detail = String(decoding: errorBuffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let summary = reply > 0 ? "SMTP \(reply): \(text)" : "SMTP: \(text)"
        throw SMTPError(message: summary, replyCode: reply, permanent: (500..<600).contains(reply))
    }
}

/// Bounds concurrent sends to the number of pooled connections.
final class AsyncSemaphore: Sendable {
    private struct State {
        var available: Int
        var waiters: [CheckedContinuation<Void, Never>] = []
    }
    private let state: NIOLockedValueBox<State>

    init(count: Int) { state = NIOLockedValueBox(State(available: count)) }

    func wait() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let resumeNow = state.withLockedValue { state -> Bool in
                if state.available > 0 {
                    state.available -= 1
                    return true
                }
                state.waiters.append(continuation)
                return false
            }
            if resumeNow { continuation.resume() }
        }
    }

    func signal() {
        let waiter = state.withLockedValue { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.available += 1
                return nil
            }
            return state.waiters.removeFirst()
        }
        waiter?.resume()
    }
}
