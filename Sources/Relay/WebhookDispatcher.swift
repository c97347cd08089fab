import AsyncHTTPClient
import Credentials
import Foundation
import JobQueue
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOFoundationCompat
import NIOHTTP1
import NotificationModel
import OutboundPolicy
import PostgresAccess
import PostgresNIO
import PushTransport
import ServiceLifecycle
import Telemetry

/// Sends clients' status webhooks: claims due deliveries (woken by `LISTEN webhooks`, and by a poll for retries),
/// POSTs each signed with its endpoint's secret, and records the outcome: 2xx completes it; anything else is retried
/// with backoff until its attempts run out (a dead letter an operator can replay); a URL the policy refuses (it now
/// resolves to an internal address) is a dead letter at once. It runs beside the outbox relay and shares nothing with
/// notification delivery: a slow or failing endpoint never delays a notification, and each request has a deadline.
public struct WebhookDispatcher: Service {
    public struct Configuration: Sendable {
        /// Deliveries in flight at once (and claimed per round).
        public var concurrency = 16
        public var pollInterval: Duration = .seconds(1)
        public var retryBase: Duration = .seconds(10)
        public var retryCap: Duration = .seconds(3600)
        public var lease: Duration = .seconds(60)
        /// Attempts before a delivery is a dead letter.
        public var maxAttempts = 10
        public var requestTimeout: Duration = .seconds(10)
        public var workerName = "relay-\(ProcessInfo.processInfo.processIdentifier)"

        public init() {}
    }

    public struct Counters: Sendable {
        public var delivered = 0
        public var failed = 0
        public var deadLettered = 0
    }

    let store: WebhookStore
    let secrets: WebhookSecrets
    let clients: PinnedHTTPClients
    let configuration: Configuration
    let logger: Logger
    public let counters = NIOLockedValueBox(Counters())

    public init(store: WebhookStore, secrets: WebhookSecrets, policy: EndpointPolicy, configuration: Configuration, logger: Logger) {
        self.store = store
        self.secrets = secrets
        self.clients = PinnedHTTPClients(policy: policy, requestTimeout: .seconds(Int64(configuration.requestTimeout.components.seconds)))
        self.configuration = configuration
        self.logger = logger
    }

    public func run() async throws {
        await OutboxRelay.whenWoken(store.client, on: WebhookStore.channel, poll: configuration.pollInterval, logger: logger) {
            await drain()
        }
        await clients.shutdown()
        logger.info("webhook dispatcher stopped")
    }

    /// Sends rounds of due deliveries until none is left.
    public func drain() async {
        do { try await store.rescue() } catch {
            logger.warning("webhook rescue failed", metadata: ["error_type": .string(String(describing: type(of: error)))])
        }
        while !Task.isCancelled {
            let claimed: [ClaimedWebhook]
            do {
                claimed = try await store.claim(limit: configuration.concurrency, worker: configuration.workerName, lease: configuration.lease)
            } catch {
                logger.warning("webhook claim failed", metadata: ["error_type": .string(String(describing: type(of: error)))])
                return
            }
            if claimed.isEmpty { return }
            await withTaskGroup(of: Void.self) { group in
                for delivery in claimed { group.addTask { await self.deliver(delivery) } }
            }
            if claimed.count < configuration.concurrency { return }
        }
    }

    func deliver(_ delivery: ClaimedWebhook) async {
        var logger = self.logger
        logger[metadataKey: "webhook_delivery"] = .string(String(delivery.id))
        let outcome = await send(delivery)
        do {
            switch outcome {
            case .delivered(let status):
                try await store.complete(id: delivery.id, status: status)
                counters.withLockedValue { $0.delivered += 1 }
                Telemetry.webhook(outcome: "delivered")
                logger.info("webhook delivered", metadata: ["status": .stringConvertible(status)])
            case .failed(let status, let error, let permanent):
                let delay = Backoff.delay(attempt: delivery.attempt, base: configuration.retryBase, cap: configuration.retryCap)
                let state = try await store.fail(
                    id: delivery.id,
                    status: status,
                    error: error,
                    permanent: permanent,
                    retryAfter: delay,
                    maxAttempts: configuration.maxAttempts
                )
                if state == "discarded" {
                    counters.withLockedValue { $0.deadLettered += 1 }
                    Telemetry.webhook(outcome: "dead_lettered")
                } else {
                    counters.withLockedValue { $0.failed += 1 }
                    Telemetry.webhook(outcome: "retried")
                }
                logger.warning("webhook not delivered", metadata: ["error": .string(error), "state": .string(state ?? "")])
            }
        } catch {
            // The lease runs out and the delivery is rescued: at least once.
            logger.error("webhook outcome not recorded", metadata: ["error_type": .string(String(describing: type(of: error)))])
        }
    }

    enum Outcome {
        case delivered(Int)
        case failed(status: Int?, error: String, permanent: Bool)
    }

    func send(_ delivery: ClaimedWebhook) async -> Outcome {
        guard let url = URL(string: delivery.url) else { return .failed(status: nil, error: "the endpoint URL does not parse", permanent: true) }
        let secret: String
        do { secret = try secrets.open(delivery.secretSealed) } catch {
            return .failed(status: nil, error: "the endpoint's secret cannot be opened (NOTIFY_WEBHOOK_SECRET_KEY changed?)", permanent: true)
        }
        let http: HTTPClient
        do { http = try await clients.client(for: url) } catch let refused as EndpointRefused {
            return .failed(status: nil, error: refused.reason, permanent: true)
        } catch {
            return .failed(status: nil, error: "the endpoint's host could not be resolved", permanent: false)
        }
        let body = Data(delivery.payload.utf8)
        var request = HTTPClientRequest(url: delivery.url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        request.headers.add(name: "User-Agent", value: "notify-webhooks/1")
        request.headers.add(name: "X-Notify-Event", value: delivery.event)
        request.headers.add(name: "X-Notify-Delivery", value: String(delivery.id))
        request.headers.add(
            name: WebhookSignature.header,
            value: WebhookSignature.sign(secret: secret, timestamp: Int(Date().timeIntervalSince1970), body: body)
        )
        request.body = .bytes(ByteBuffer(data: body))
        do {
            let response = try await http.execute(request, timeout: .seconds(Int64(configuration.requestTimeout.components.seconds)))
            // The answer's body is not read beyond a little: an endpoint cannot make the dispatcher hold much.
            _ = try? await response.body.collect(upTo: 64 << 10)
            let status = Int(response.status.code)
            if (200..<300).contains(status) { return .delivered(status) }
            return .failed(status: status, error: "the endpoint answered \(status)", permanent: false)
        } catch {
            return .failed(status: nil, error: "the endpoint could not be reached (\(String(describing: type(of: error))))", permanent: false)
        }
    }
}
