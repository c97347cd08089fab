import CCurl
import Foundation
import Logging
import NIOConcurrencyHelpers
import ServiceLifecycle

/// Why a send failed, and whether trying again can help.
public struct SMTPError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var replyCode: Int
    /// 5xx replies (bad mailbox, rejected content) are permanent; 4xx, timeouts and connection errors are transient.
    public var permanent: Bool
    /// What went wrong at the transport level, when it was not the server's reply: a stable code for clients.
    public var transportCode: TransportCode?
    public var description: String { message }

    public enum TransportCode: String, Sendable {
        /// The server offers no STARTTLS, or the TLS handshake failed.
        case tlsUnavailable = "tls_unavailable"
        /// The server's certificate did not verify against the trusted CAs (or named another host).
        case certificateRefused = "certificate_refused"
        /// The server refused the credentials.
        case authenticationFailed = "authentication_failed"
    }
}

/// How the SMTP session is protected.
public enum SMTPSecurity: String, Sendable, CaseIterable {
    /// Plain text throughout. Refused together with credentials.
    case none
    /// STARTTLS when the server offers it, plain otherwise (relaying between MTAs). Refused together with credentials:
    /// a server (or an attacker on the path) that hides STARTTLS would get them in clear.
    case opportunistic
    /// STARTTLS required (submission, port 587): the session stops before MAIL FROM or AUTH unless it is upgraded.
    case starttls
    /// TLS from the first byte (`smtps://`, port 465).
    case implicit
}

/// Sends email over SMTP with libcurl. Up to `connections` sends run at once, all on one thread through libcurl's
/// multi interface, each connection kept open between sends.
public final class SMTPTransport: Sendable {
    public struct Configuration: Sendable {
        public var url: String
        public var username: String?
        public var password: String?
        public var timeoutSeconds: Int
        public var connections: Int
        public var security: SMTPSecurity
        /// PEM file of the CAs trusted for the server's certificate (a private CA); nil: the system's trust store.
        /// Certificates are always verified, host name included.
        public var caFile: String?

        public init(
            url: String,
            username: String? = nil,
            password: String? = nil,
            timeoutSeconds: Int = 15,
            connections: Int = 4,
            security: SMTPSecurity? = nil,
            caFile: String? = nil
        ) {
            self.url = url
            self.username = username
            self.password = password
            self.timeoutSeconds = timeoutSeconds
            self.connections = connections
            self.security = security ?? Self.defaultSecurity(url: url, hasCredentials: username != nil || password != nil)
            self.caFile = caFile
        }

        /// `smtps://` is implicit TLS; credentials require STARTTLS; otherwise plain (a local relay or test sink).
        public static func defaultSecurity(url: String, hasCredentials: Bool) -> SMTPSecurity {
            if url.lowercased().hasPrefix("smtps://") { return .implicit }
            return hasCredentials ? .starttls : .none
        }

        /// What is wrong with this configuration (empty when it can be used).
        public var problems: [String] {
            var problems: [String] = []
            let lowered = url.lowercased()
            if !lowered.hasPrefix("smtp://") && !lowered.hasPrefix("smtps://") {
                problems.append("NOTIFY_SMTP_URL must start with smtp:// or smtps://")
            }
            if security == .implicit && !lowered.hasPrefix("smtps://") {
                problems.append("NOTIFY_SMTP_TLS=implicit needs an smtps:// URL (usually port 465)")
            }
            if security != .implicit && lowered.hasPrefix("smtps://") {
                problems.append("an smtps:// URL is implicit TLS: set NOTIFY_SMTP_TLS=implicit or leave it unset")
            }
            if (username != nil || password != nil) && (security == .none || security == .opportunistic) {
                problems.append("NOTIFY_SMTP_USERNAME/PASSWORD are only sent over TLS: set NOTIFY_SMTP_TLS to starttls or implicit")
            }
            if let caFile, !FileManager.default.isReadableFile(atPath: caFile) {
                problems.append("NOTIFY_SMTP_CA_FILE: cannot read \(caFile)")
            }
            return problems
        }
    }

    private let configuration: Configuration
    private let engine: CurlMultiEngine
    private let handles: NIOLockedValueBox<[CurlHandle]>
    private let slots: AsyncSemaphore

    /// Every send runs on ONE thread of the transport's own, through libcurl's multi interface: one `poll` serves
    /// all the pooled connections, so a send no longer takes a thread of its own for its whole dialogue (32 threads,
    /// each woken for every reply, were half of the email worker's CPU, most of it in the kernel switching between
    /// them). libcurl keeps the connections open between sends, in the multi handle's connection cache.
    public init(configuration: Configuration) {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        self.configuration = configuration
        self.engine = CurlMultiEngine()
        self.handles = NIOLockedValueBox([])
        self.slots = AsyncSemaphore(count: max(1, configuration.connections))
    }

    /// How sessions are protected (the configured value, or the default the URL and credentials imply).
    public var security: SMTPSecurity { configuration.security }

    public func send(_ message: EmailMessage) async throws {
        await slots.wait()
        defer { slots.signal() }
        let handle = handles.withLockedValue { $0.popLast() } ?? CurlHandle()
        let transfer = handle.prepare(payload: Array(message.rendered().utf8), from: message.from, to: message.to, configuration: configuration)
        let code = try await engine.perform(transfer)
        if let error = handle.failure(code) {
            // A handle whose transfer failed is dropped (libcurl closes a connection that failed).
            throw error
        }
        handles.withLockedValue { $0.append(handle) }
    }
}

extension SMTPTransport {
    /// Stops the transport's thread once the sends in progress finished, and closes its pooled connections.
    public func shutdown() async {
        await engine.shutdown()
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

/// One libcurl easy handle: configured for a send, then driven by the engine's thread until it finishes. Used by one
/// send at a time (the transport's pool hands it out exclusively).
final class CurlHandle: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer
    /// libcurl writes the detail of a failure here; it must outlive every transfer of the handle.
    let errorBuffer: UnsafeMutablePointer<CChar>

    init() {
        handle = curl_easy_init()
        errorBuffer = .allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        ccurl_setopt_pointer(handle, CURLOPT_ERRORBUFFER, errorBuffer)
    }

    deinit {
        curl_easy_cleanup(handle)
        errorBuffer.deallocate()
    }

    final class Upload {
        let bytes: [UInt8]
        var offset = 0
        init(_ bytes: [UInt8]) { self.bytes = bytes }
    }

    /// What a transfer needs kept alive until it ends: the handle, the body being read, the recipient list.
    final class Transfer: @unchecked Sendable {
        let curl: CurlHandle
        let upload: Upload
        let recipients: UnsafeMutablePointer<curl_slist>?

        init(curl: CurlHandle, upload: Upload, recipients: UnsafeMutablePointer<curl_slist>?) {
            self.curl = curl
            self.upload = upload
            self.recipients = recipients
        }

        deinit { curl_slist_free_all(recipients) }
    }

    /// Sets the handle up for one message; the engine runs it.
    func prepare(payload: [UInt8], from: String, to: String, configuration: SMTPTransport.Configuration) -> Transfer {
        let upload = Upload(payload)
        let recipients = curl_slist_append(nil, "<\(to)>")
        errorBuffer[0] = 0
        ccurl_setopt_string(handle, CURLOPT_URL, configuration.url)
        ccurl_setopt_string(handle, CURLOPT_MAIL_FROM, "<\(from)>")
        ccurl_setopt_slist(handle, CURLOPT_MAIL_RCPT, recipients)
        ccurl_setopt_long(handle, CURLOPT_UPLOAD, 1)
        ccurl_setopt_long(handle, CURLOPT_TIMEOUT, configuration.timeoutSeconds)
        ccurl_setopt_long(handle, CURLOPT_CONNECTTIMEOUT, 5)
        ccurl_setopt_long(handle, CURLOPT_NOSIGNAL, 1)
        switch configuration.security {
        case .none: ccurl_setopt_long(handle, CURLOPT_USE_SSL, Int(CURLUSESSL_NONE.rawValue))
        case .opportunistic: ccurl_setopt_long(handle, CURLOPT_USE_SSL, Int(CURLUSESSL_TRY.rawValue))
        case .starttls, .implicit: ccurl_setopt_long(handle, CURLOPT_USE_SSL, Int(CURLUSESSL_ALL.rawValue))
        }
        ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYPEER, 1)
        ccurl_setopt_long(handle, CURLOPT_SSL_VERIFYHOST, 2)
        if let caFile = configuration.caFile { ccurl_setopt_string(handle, CURLOPT_CAINFO, caFile) }
        // Credentials only where the session is encrypted (the configuration refuses the other combinations, and
        // libcurl stops a required-TLS session before AUTH when the upgrade fails).
        if configuration.security == .starttls || configuration.security == .implicit {
            if let username = configuration.username { ccurl_setopt_string(handle, CURLOPT_USERNAME, username) }
            if let password = configuration.password { ccurl_setopt_string(handle, CURLOPT_PASSWORD, password) }
        }
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
        // The Transfer holds `upload` until the engine reports the handle done.
        ccurl_setopt_pointer(handle, CURLOPT_READDATA, Unmanaged.passUnretained(upload).toOpaque())
        return Transfer(curl: self, upload: upload, recipients: recipients)
    }

    /// The error a finished transfer's result means (nil: the server took the message).
    func failure(_ code: CURLcode) -> SMTPError? {
        guard code != CURLE_OK else { return nil }
        var reply: Int = 0
        ccurl_getinfo_long(handle, CURLINFO_RESPONSE_CODE, &reply)
        let detail = String(cString: errorBuffer)
        let text = detail.isEmpty ? String(cString: curl_easy_strerror(code)) : detail
        let summary = reply > 0 ? "SMTP \(reply): \(text)" : "SMTP: \(text)"
        let transportCode: SMTPError.TransportCode?
        switch code {
        case CURLE_USE_SSL_FAILED, CURLE_SSL_CONNECT_ERROR: transportCode = .tlsUnavailable
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE: transportCode = .certificateRefused
        case CURLE_LOGIN_DENIED: transportCode = .authenticationFailed
        default: transportCode = nil
        }
        // A refused login (535) is the account's problem, not the message's: transient, so another provider may send it.
        let permanent = (500..<600).contains(reply) && transportCode == nil
        return SMTPError(message: summary, replyCode: reply, permanent: permanent, transportCode: transportCode)
    }
}

/// libcurl's multi interface on a thread of its own: transfers are handed over through a locked queue and an eventfd;
/// the thread adds them, sleeps in `epoll_wait` on the sockets libcurl asked it to watch (and until libcurl's own
/// timers: timeouts, connects), lets libcurl act on each ready socket with `curl_multi_socket_action`, and reports each
/// finished transfer's result. The multi handle is touched by that thread only.
final class CurlMultiEngine: Sendable {
    private struct Submission: Sendable {
        let transfer: CurlHandle.Transfer
        let done: CheckedContinuation<CURLcode, any Error>
    }
    private struct Queue {
        var waiting: [Submission] = []
        var stopping = false
        var stopped: [CheckedContinuation<Void, Never>] = []
        var finished = false
    }
    /// What only the engine's thread touches once it runs: the multi handle, its epoll set, and the timer libcurl set.
    private struct Loop: @unchecked Sendable {
        let multi: UnsafeMutableRawPointer
        let epoll: Int32
        let timer: UnsafeMutablePointer<ccurl_timer>
    }

    private let queue = NIOLockedValueBox(Queue())
    /// Written to wake the thread (new sends, shutdown); closed by the thread after it marked itself finished.
    private let wakeup: Int32

    init() {
        let loop = Loop(multi: curl_multi_init(), epoll: epoll_create1(Int32(EPOLL_CLOEXEC)), timer: .allocate(capacity: 1))
        loop.timer.initialize(to: ccurl_timer(timeout_ms: -1, changed: 0))
        ccurl_multi_use_epoll(loop.multi, loop.epoll, loop.timer)
        wakeup = ccurl_eventfd()
        ccurl_epoll_watch_input(loop.epoll, wakeup)
        let queue = self.queue
        let wakeup = self.wakeup
        let thread = Thread { Self.run(loop, queue, wakeup) }
        thread.name = "smtp-curl"
        thread.start()
    }

    /// Runs one transfer to its end; its libcurl result.
    func perform(_ transfer: CurlHandle.Transfer) async throws -> CURLcode {
        try await withCheckedThrowingContinuation { (done: CheckedContinuation<CURLcode, any Error>) in
            // Woken under the lock: the thread closes the descriptor only after it marked itself finished there.
            let accepted = queue.withLockedValue { queue -> Bool in
                guard !queue.stopping else { return false }
                queue.waiting.append(Submission(transfer: transfer, done: done))
                ccurl_eventfd_signal(wakeup)
                return true
            }
            if !accepted {
                done.resume(throwing: SMTPError(message: "SMTP: the transport is shut down", replyCode: 0, permanent: false, transportCode: nil))
            }
        }
    }

    /// Lets the transfers in progress finish, then ends the thread and closes the connections.
    func shutdown() async {
        await withCheckedContinuation { (stopped: CheckedContinuation<Void, Never>) in
            let already = queue.withLockedValue { queue -> Bool in
                queue.stopping = true
                if queue.finished { return true }
                queue.stopped.append(stopped)
                ccurl_eventfd_signal(wakeup)
                return false
            }
            if already { stopped.resume() }
        }
    }

    /// libcurl's event-driven interface (`curl_multi_socket_action`): one `epoll_wait` for every socket libcurl asked
    /// to watch, then libcurl runs only the transfers whose socket is ready, or whose timer is due. (With
    /// `curl_multi_perform` every call stepped every transfer in progress, and each SMTP step of each one polled its
    /// socket: a `poll` per transfer per wake-up, 15 % of the email worker's CPU.)
    private static func run(_ loop: Loop, _ queue: NIOLockedValueBox<Queue>, _ wakeup: Int32) {
        var active: [UnsafeMutableRawPointer: Submission] = [:]
        var deadline: ContinuousClock.Instant?
        var fds = [Int32](repeating: 0, count: 64)
        var masks = [Int32](repeating: 0, count: 64)
        var running: Int32 = 0
        let clock = ContinuousClock()
        func takeTimer() {
            guard loop.timer.pointee.changed != 0 else { return }
            loop.timer.pointee.changed = 0
            let milliseconds = loop.timer.pointee.timeout_ms
            deadline = milliseconds < 0 ? nil : clock.now.advanced(by: .milliseconds(milliseconds))
        }
        while true {
            let (incoming, stopping) = queue.withLockedValue { queue in
                defer { queue.waiting.removeAll(keepingCapacity: true) }
                return (queue.waiting, queue.stopping)
            }
            for submission in incoming {
                let easy = submission.transfer.curl.handle
                if curl_multi_add_handle(loop.multi, easy) == CURLM_OK {
                    active[easy] = submission
                } else {
                    submission.done.resume(returning: CURLE_FAILED_INIT)
                }
            }
            takeTimer()
            if stopping && active.isEmpty { break }
            // Wait for a socket, a wake-up or libcurl's timer (at most a second: the queue is looked at again).
            var wait: Int32 = 1000
            if let deadline {
                let left = clock.now.duration(to: deadline)
                wait = left <= .zero ? 0 : Int32(min(1000, (left / .milliseconds(1)).rounded(.up)))
            }
            let count = fds.withUnsafeMutableBufferPointer { fds in
                masks.withUnsafeMutableBufferPointer { masks in
                    ccurl_epoll_wait(loop.epoll, fds.baseAddress, masks.baseAddress, 64, wait)
                }
            }
            // A failed wait (EINTR, or no descriptors left) is tried again after a pause instead of in a spin.
            if count < 0 { usleep(10_000) }
            for index in 0..<max(0, Int(count)) {
                if fds[index] == wakeup {
                    ccurl_eventfd_drain(wakeup)
                    continue
                }
                curl_multi_socket_action(loop.multi, fds[index], masks[index], &running)
                takeTimer()
            }
            // libcurl's timer is due; or, as a safety net, the thread waited the whole second with nothing to do.
            if let due = deadline, clock.now >= due {
                deadline = nil
                curl_multi_socket_action(loop.multi, CURL_SOCKET_TIMEOUT, 0, &running)
                takeTimer()
            } else if count == 0 && deadline == nil && !active.isEmpty {
                curl_multi_socket_action(loop.multi, CURL_SOCKET_TIMEOUT, 0, &running)
                takeTimer()
            }
            var left: Int32 = 0
            while let message = curl_multi_info_read(loop.multi, &left) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle else { continue }
                let result = message.pointee.data.result
                curl_multi_remove_handle(loop.multi, easy)
                active.removeValue(forKey: easy)?.done.resume(returning: result)
            }
            takeTimer()
        }
        let stopped = queue.withLockedValue { queue in
            queue.finished = true
            defer { queue.stopped.removeAll() }
            return queue.stopped
        }
        // Nobody writes the wake-up descriptor any more (they do so under the lock, and only before `finished`).
        // Cleaning up closes the cached connections, telling the socket callback: the epoll set is closed after it.
        curl_multi_cleanup(loop.multi)
        close(loop.epoll)
        close(wakeup)
        loop.timer.deallocate()
        for continuation in stopped { continuation.resume() }
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
