import APIDocs
import Credentials
import Foundation
import Hummingbird
import HummingbirdBcrypt
import Logging
import NotifyConfig
import NotifyHTTP
import OutboundPolicy
import PostgresAccess
import PostgresNIO
import RateLimiting
import RedisCache

public struct UserServiceConfiguration: Sendable {
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var redis: RedisSettings
    public var serviceKey: ServiceKeySettings
    public var jwt: JWTSettings
    public var bcryptCost: Int
    public var cacheTTLSeconds: Int
    public var webPushPolicy: EndpointPolicy
    public var maxDevicesPerUser: Int
    public var loginThrottle: LoginThrottleSettings
    public var emailVerification: EmailVerificationSettings
    /// Verifies one-click unsubscribe links (`NOTIFY_UNSUBSCRIBE_SECRET`, shared with the email worker); nil: the
    /// unsubscribe endpoints answer that the link is not valid.
    public var unsubscribe: UnsubscribeSigner?
    /// Browser origins allowed to call this service (`NOTIFY_CORS_ORIGINS`; nil: none).
    public var cors: CORSPolicy?

    public init(_ env: EnvironmentReader) throws {
        var problems: [String] = []
        listen = ListenSettings(env, portKey: "NOTIFY_USERS_PORT", defaultPort: 8001, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        redis = RedisSettings(env, problems: &problems)
        serviceKey = ServiceKeySettings(env, problems: &problems)
        jwt = JWTSettings(env, problems: &problems)
        bcryptCost = env.int("NOTIFY_BCRYPT_COST", default: 10, problems: &problems)
        cacheTTLSeconds = env.int("NOTIFY_CACHE_TTL_SECONDS", default: 300, problems: &problems)
        webPushPolicy = EndpointPolicy(environment: { env.optionalString($0) })
        loginThrottle = LoginThrottleSettings(env, problems: &problems)
        emailVerification = EmailVerificationSettings(env, problems: &problems)
        maxDevicesPerUser = env.int("NOTIFY_MAX_DEVICES_PER_USER", default: 20, problems: &problems)
        cors = CORSPolicy.parse(env.optionalString("NOTIFY_CORS_ORIGINS"), problems: &problems)
        if maxDevicesPerUser < 1 { problems.append("NOTIFY_MAX_DEVICES_PER_USER must be at least 1") }
        if let secret = env.optionalString("NOTIFY_UNSUBSCRIBE_SECRET") {
            if secret.utf8.count < UnsubscribeSigner.minimumSecretLength {
                problems.append("NOTIFY_UNSUBSCRIBE_SECRET must be at least \(UnsubscribeSigner.minimumSecretLength) bytes")
            }
            unsubscribe = UnsubscribeSigner(secret: secret)
        }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

/// The user service (port 8001): users, contact data, preferences and devices in the `users` database.
public func buildUserService(_ configuration: UserServiceConfiguration, logger: Logger) async -> some ApplicationProtocol {
    let postgres = Database(configuration.postgres, database: .users, applicationName: "notify-users", logger: logger)
    // Client API keys live with the gateway's data; the user service only reads them.
    let keys = Database(configuration.postgres, database: .notifications, applicationName: "notify-users", logger: logger)
    let redis = RedisClient(
        host: configuration.redis.host,
        port: configuration.redis.port,
        timeoutMilliseconds: configuration.redis.timeoutMilliseconds,
        username: configuration.redis.username,
        password: configuration.redis.password
    )
    let cache = RedisCache(redis: redis, prefix: configuration.redis.keyPrefix, ttlSeconds: configuration.cacheTTLSeconds, logger: logger)
    let tokens = await AccessTokens.make(
        secret: configuration.jwt.secret,
        issuer: configuration.jwt.issuer,
        lifetime: configuration.jwt.lifetimeSeconds
    )

    let router = serviceRouter(
        service: "users",
        checks: [
            .timed("postgres") { try await postgres.check() },
            .timed("redis", critical: false) { try await redis.ping() },
            .breaker(cache.breaker),
        ],
        unavailable: Database.isUnavailable,
        document: APIDocument.users,
        cors: configuration.cors
    )
    let repository = UserRepository(client: postgres, logger: logger)
    let hasher = PasswordHasher()
    var controller = UserController(
        repository: repository,
        cache: cache,
        tokens: tokens,
        hasher: hasher,
        bcryptCost: UInt8(clamping: configuration.bcryptCost),
        decoyHash: Bcrypt.hash(UUID().uuidString, cost: UInt8(clamping: configuration.bcryptCost))
    )
    controller.webPushPolicy = configuration.webPushPolicy
    controller.maxDevices = configuration.maxDevicesPerUser
    controller.sessionMaxSeconds = configuration.jwt.sessionMaxSeconds
    controller.verification = VerificationMailer(settings: configuration.emailVerification, serviceKey: configuration.serviceKey.key)
    let limiter = RateLimiter(redis: redis, prefix: configuration.redis.keyPrefix, logger: logger)
    controller.throttle = LoginThrottle(
        limiter: limiter,
        scope: "users",
        attemptsPerAccount: configuration.loginThrottle.attemptsPerAccount,
        attemptsPerAddress: configuration.loginThrottle.attemptsPerAddress,
        windowSeconds: configuration.loginThrottle.windowSeconds
    )
    controller.registerPublic(on: router)
    UnsubscribeController(
        signer: configuration.unsubscribe,
        repository: repository,
        invalidate: { [controller] id in await controller.invalidate(id) }
    )
    .register(on: router)
    let api = router.group().add(
        middleware: CredentialMiddleware(
            serviceKey: ServiceKeyMiddleware(serviceKey: configuration.serviceKey.key),
            tokens: tokens,
            tokenCheck: { [repository] token in try await repository.tokenVersion(id: token.subject) == token.version },
            store: APIKeyStore(client: keys, logger: logger)
        )
    )
    controller.register(on: api)

    return Application(
        router: router,
        configuration: .init(address: .hostname(configuration.listen.host, port: configuration.listen.port), serverName: "notify-users"),
        services: [postgres, keys, cache.invalidationRetry, hasher],
        logger: logger
    )
}
