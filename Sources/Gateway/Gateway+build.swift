import APIDocs
import AsyncHTTPClient
import Breakers
import Credentials
import Deadlines
import Directory
import EmailEvents
import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyConfig
import NotifyHTTP
import OutboundPolicy
import PostgresAccess
import PostgresNIO
import RateLimiting
import RedisCache

public struct GatewayConfiguration: Sendable {
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var maxAttempts: Int
    public var usersURL: String
    public var templatesURL: String
    public var serviceKey: ServiceKeySettings
    public var jwt: JWTSettings
    public var redis: RedisSettings
    public var limits: RateLimits
    /// How long a verified API key is trusted without asking the database again (revocation takes this long).
    public var keyCacheSeconds: Int
    /// How long answers of the user and template services are kept in the process (0: not kept).
    public var directoryCacheSeconds: Double
    /// While the user or template service cannot answer, creates are checked against its last answers up to this old
    /// (0: never; a create then waits for the service).
    public var directoryStaleSeconds: Int
    /// How many users' and templates' last answers are kept for that.
    public var directoryStaleEntries: Int
    /// How long one lookup of a user or template may take before the create is answered 503 (or checked against the
    /// last-known answer, when there is one).
    public var directoryTimeoutMilliseconds: Int
    /// Group commit of single creates: at most this many in one transaction (1: every create alone) …
    public var commitBatch: Int
    /// … and at most this many such transactions at once.
    public var commitsInFlight: Int
    /// SendGrid's Event Webhook verification key (base64 DER P-256; `NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY`).
    public var sendGridWebhook: SendGridWebhook?
    /// Mailgun's webhook signing key (`NOTIFY_MAILGUN_WEBHOOK_SIGNING_KEY`).
    public var mailgunWebhook: MailgunWebhook?
    /// Twilio's auth token and the gateway's public URL, for the signed SMS webhooks (`NOTIFY_TWILIO_AUTH_TOKEN`,
    /// `NOTIFY_PUBLIC_GATEWAY_URL`); both or neither.
    var twilioWebhook: SMSWebhookController.Twilio?
    /// Browser origins allowed to call the gateway (`NOTIFY_CORS_ORIGINS`; nil: none).
    public var cors: CORSPolicy?
    /// Which Web Push endpoints a notification's `recipient` may name (`NOTIFY_WEBPUSH_*`, as for registered devices).
    public var webPushPolicy: EndpointPolicy
    /// Which notifications wait for the end of a user's quiet hours (`NOTIFY_QUIET_HOURS_URGENT_PRIORITY`,
    /// `NOTIFY_QUIET_HOURS_URGENT_BY_CATEGORY`).
    public var quietHours: QuietHoursPolicy
    /// Template categories combined per user and window (`NOTIFY_DIGEST_CATEGORIES`, the workers' value).
    public var digests: DigestPolicy

    public init(_ env: EnvironmentReader) throws {
        var problems: [String] = []
        listen = ListenSettings(env, portKey: "NOTIFY_GATEWAY_PORT", defaultPort: 8000, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        maxAttempts = env.int("NOTIFY_MAX_ATTEMPTS", default: 8, problems: &problems)
        usersURL = env.string("NOTIFY_USERS_URL", default: "http://127.0.0.1:8001")
        templatesURL = env.string("NOTIFY_TEMPLATES_URL", default: "http://127.0.0.1:8002")
        serviceKey = ServiceKeySettings(env, problems: &problems)
        jwt = JWTSettings(env, problems: &problems)
        redis = RedisSettings(env, defaultTimeoutMilliseconds: 200, problems: &problems)
        limits = RateLimits(env, problems: &problems)
        keyCacheSeconds = env.int("NOTIFY_KEY_CACHE_SECONDS", default: 10, problems: &problems)
        directoryCacheSeconds = Double(env.int("NOTIFY_DIRECTORY_CACHE_SECONDS", default: 5, problems: &problems))
        directoryStaleSeconds = env.int("NOTIFY_DIRECTORY_STALE_SECONDS", default: 900, problems: &problems)
        directoryStaleEntries = env.int("NOTIFY_DIRECTORY_STALE_ENTRIES", default: 100_000, problems: &problems)
        if directoryStaleSeconds < 0 { problems.append("NOTIFY_DIRECTORY_STALE_SECONDS must not be negative") }
        if directoryStaleEntries < 1 { problems.append("NOTIFY_DIRECTORY_STALE_ENTRIES must be at least 1") }
        directoryTimeoutMilliseconds = env.int("NOTIFY_DIRECTORY_TIMEOUT_MS", default: 2000, problems: &problems)
        if directoryTimeoutMilliseconds < 1 { problems.append("NOTIFY_DIRECTORY_TIMEOUT_MS must be positive") }
        cors = CORSPolicy.parse(env.optionalString("NOTIFY_CORS_ORIGINS"), problems: &problems)
        webPushPolicy = EndpointPolicy(environment: { env.optionalString($0) })
        let urgent = env.int("NOTIFY_QUIET_HOURS_URGENT_PRIORITY", default: 8, problems: &problems)
        if !(0...11).contains(urgent) { problems.append("NOTIFY_QUIET_HOURS_URGENT_PRIORITY must be 0 to 11 (11: nothing is urgent)") }
        digests = DigestPolicy.parse(env.optionalString("NOTIFY_DIGEST_CATEGORIES"), problems: &problems)
        quietHours = QuietHoursPolicy(
            urgentPriority: urgent,
            byCategory: QuietHoursPolicy.parseCategories(
                env.optionalString("NOTIFY_QUIET_HOURS_URGENT_BY_CATEGORY"),
                problems: &problems,
                variable: "NOTIFY_QUIET_HOURS_URGENT_BY_CATEGORY"
            )
        )
        commitBatch = env.int("NOTIFY_GATEWAY_COMMIT_BATCH", default: 256, problems: &problems)
        // One group at a time: creates that arrive while it commits make the next, larger group. Two at a time split the
        // load into more, smaller transactions (PostgreSQL 30 % more CPU per create, benchmarks' fifth round).
        commitsInFlight = env.int("NOTIFY_GATEWAY_COMMITS_IN_FLIGHT", default: 1, problems: &problems)
        if commitBatch < 1 { problems.append("NOTIFY_GATEWAY_COMMIT_BATCH must be at least 1") }
        if commitsInFlight < 1 { problems.append("NOTIFY_GATEWAY_COMMITS_IN_FLIGHT must be at least 1") }
        if directoryCacheSeconds < 0 { problems.append("NOTIFY_DIRECTORY_CACHE_SECONDS must not be negative") }
        let webhookAge = env.int("NOTIFY_EMAIL_WEBHOOK_MAX_AGE_SECONDS", default: 3600, problems: &problems)
        if webhookAge < 1 { problems.append("NOTIFY_EMAIL_WEBHOOK_MAX_AGE_SECONDS must be positive") }
        if let key = env.optionalString("NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY") {
            do { sendGridWebhook = try SendGridWebhook(publicKeyBase64: key, maxAgeSeconds: webhookAge) } catch {
                problems.append("NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY: \(error)")
            }
        }
        mailgunWebhook = env.optionalString("NOTIFY_MAILGUN_WEBHOOK_SIGNING_KEY").map { MailgunWebhook(signingKey: $0, maxAgeSeconds: webhookAge) }
        switch (env.optionalString("NOTIFY_TWILIO_AUTH_TOKEN"), env.optionalString("NOTIFY_PUBLIC_GATEWAY_URL")) {
        case (let token?, let base?):
            if URL(string: base)?.host == nil {
                problems.append("NOTIFY_PUBLIC_GATEWAY_URL must be an absolute URL (the gateway as Twilio calls it)")
            }
            twilioWebhook = .init(authToken: token, publicBaseURL: base.hasSuffix("/") ? String(base.dropLast()) : base)
        case (nil, nil): break
        default: problems.append("NOTIFY_TWILIO_AUTH_TOKEN and NOTIFY_PUBLIC_GATEWAY_URL go together (Twilio signs the public URL)")
        }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// The gateway's rate limits: per credential (every call; a bulk call counts its items) and per recipient.
public struct RateLimits: Sendable {
    public var perCredential: RateLimit?
    public var perUser: RateLimit?

    public init(perCredential: RateLimit?, perUser: RateLimit?) {
        self.perCredential = perCredential
        self.perUser = perUser
    }

    init(_ env: EnvironmentReader, problems: inout [String]) {
        func read(_ key: String, _ burstKey: String, default text: String, burst: Int) -> RateLimit? {
            let burstText = env.string(burstKey, default: "")
            let burstValue = burstText.isEmpty ? burst : Int(burstText)
            if burstValue == nil || burstValue! < 1 { problems.append("\(burstKey) must be a positive integer") }
            switch RateLimit.parse(env.string(key, default: text), burst: burstValue ?? burst) {
            case .success(let limit): return limit
            case .failure(let error):
                problems.append("\(key): \(error)")
                return nil
            }
        }
        perCredential = read("NOTIFY_RATE_LIMIT_PER_KEY", "NOTIFY_RATE_LIMIT_KEY_BURST", default: "1000/s", burst: 2000)
        perUser = read("NOTIFY_RATE_LIMIT_PER_USER", "NOTIFY_RATE_LIMIT_USER_BURST", default: "600/m", burst: 100)
    }
}

/// The API gateway (port 8000): accepts notifications durably and answers status queries.
public func buildGateway(_ configuration: GatewayConfiguration, logger: Logger) async -> some ApplicationProtocol {
    let postgres = Database(configuration.postgres, database: .notifications, applicationName: "notify-gateway", logger: logger)
    let http = HTTPClient(eventLoopGroupProvider: .singleton)
    // Probes at least once a second while open: a service that is back serves creates again within a second or two.
    let directoryBreakers = CircuitBreaker.Configuration(baseOpen: .milliseconds(250), maximumOpen: .seconds(1))
    let usersBreaker = CircuitBreaker(name: "users-service", configuration: directoryBreakers, logger: logger)
    let templatesBreaker = CircuitBreaker(name: "templates-service", configuration: directoryBreakers, logger: logger)
    let directory = PlatformDirectory(
        http: http,
        usersURL: configuration.usersURL,
        templatesURL: configuration.templatesURL,
        serviceKey: configuration.serviceKey.key,
        usersBreaker: usersBreaker,
        templatesBreaker: templatesBreaker,
        timeout: .milliseconds(Int64(configuration.directoryTimeoutMilliseconds)),
        cacheSeconds: configuration.directoryCacheSeconds,
        lastKnown: configuration.directoryStaleSeconds > 0
            ? LastKnown(bound: .seconds(configuration.directoryStaleSeconds), capacity: configuration.directoryStaleEntries) : nil
    )
    let limiter = RateLimiter(
        redis: RedisClient(
            host: configuration.redis.host,
            port: configuration.redis.port,
            timeoutMilliseconds: configuration.redis.timeoutMilliseconds,
            username: configuration.redis.username,
            password: configuration.redis.password
        ),
        prefix: configuration.redis.keyPrefix,
        logger: logger
    )
    let repository = NotificationRepository(
        client: postgres,
        maxAttempts: configuration.maxAttempts,
        logger: logger,
        groupCommit: .init(maxBatch: configuration.commitBatch, maxInFlight: configuration.commitsInFlight)
    )
    let router = serviceRouter(
        service: "gateway",
        checks: [
            .timed("postgres") { try await postgres.check() },
            // What a create gets: its group commit runs in one of these slots.
            HealthCheck("group_commit") {
                repository.committer.map { GroupCommitter.health($0.executor.snapshot, deadline: postgres.operationTimeout) }
                    ?? DependencyHealth(status: .up)
            },
            .breaker(usersBreaker), .breaker(templatesBreaker), .breaker(limiter.breaker),
        ],
        unavailable: Database.isUnavailable,
        document: APIDocument.gateway,
        cors: configuration.cors
    )
    let tokens = await AccessTokens.make(
        secret: configuration.jwt.secret,
        issuer: configuration.jwt.issuer,
        lifetime: configuration.jwt.lifetimeSeconds
    )
    let api = router.group()
        .add(
            middleware: CredentialMiddleware(
                serviceKey: ServiceKeyMiddleware(serviceKey: configuration.serviceKey.key),
                tokens: tokens,
                // A token revoked at the user service (logout, password or email change) stops working here within
                // the directory's 5 s memory of token versions.
                tokenCheck: { [directory] token in
                    try await directory.tokenVersion(token.subject, correlationID: UUID.random().lowercased) == token.version
                },
                store: APIKeyStore(client: postgres, logger: logger),
                cacheSeconds: Double(configuration.keyCacheSeconds)
            )
        )
        .add(middleware: RateLimitMiddleware(limiter: limiter, limit: configuration.limits.perCredential))
    NotificationController(
        repository: repository,
        directory: directory,
        limiter: limiter,
        limits: configuration.limits,
        suppressions: SuppressionList(client: postgres, logger: logger),
        webPushPolicy: configuration.webPushPolicy,
        quietHours: configuration.quietHours,
        digests: configuration.digests
    ).register(on: api)
    // Signed by the provider instead of an API key: outside the credential and rate-limit middleware.
    EmailWebhookController(
        sendGrid: configuration.sendGridWebhook,
        mailgun: configuration.mailgunWebhook,
        recorder: EmailEventRecorder(client: postgres, logger: logger)
    ).register(on: router)
    SMSWebhookController(twilio: configuration.twilioWebhook, client: postgres, logger: logger).register(on: router)

    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "notify-gateway"),
        services: [postgres, HTTPClientService(client: http)],
        logger: logger
    )
}
