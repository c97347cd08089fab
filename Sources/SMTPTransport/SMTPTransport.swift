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

/// Sends email over SMTP with libcurl. Each curl handle keeps its connection open between sends; a small pool of
/// handles lets several sends run at once, each on a thread of the `NIOThreadPool` (libcurl blocks).
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

    /// How sessions are protected (the configured value, or the default the URL and credentials imply).
    public var security: SMTPSecurity { configuration.security }

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
        let transportCode: SMTPError.TransportCode?
        switch code {
        case CURLE_USE_SSL_FAILED, CURLE_SSL_CONNECT_ERROR: transportCode = .tlsUnavailable
        case CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CACERT_BADFILE: transportCode = .certificateRefused
        case CURLE_LOGIN_DENIED: transportCode = .authenticationFailed
        default: transportCode = nil
        }
        // A refused login (535) is the account's problem, not the message's: transient, so another provider may send it.
        let permanent = (500..<600).contains(reply) && transportCode == nil
        throw SMTPError(message: summary, replyCode: reply, permanent: permanent, transportCode: transportCode)
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
