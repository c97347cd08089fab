import Foundation
import NIOSSL
import PostgresNIO

/// The connection settings shared by several processes; each process's own configuration embeds the ones it needs.
public struct PostgresSettings: Sendable {
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    /// Prefixed to the database names `users`, `templates` and `notifications` (tests use a unique prefix per run).
    public var databasePrefix: String
    public var maxConnections: Int
    /// How long the server lets one statement of a service run (`statement_timeout`). Every database operation of a
    /// service gives up `operationTimeout` after it began (the server's own answer has 5 s more to arrive).
    public var statementTimeout: Duration
    /// How long the server keeps a service's transaction that waits on its client (`idle_in_transaction_session_timeout`):
    /// the locks of a client that vanished mid-transaction are freed after this.
    public var idleInTransactionTimeout: Duration
    /// TLS to the server (`NOTIFY_PG_SSLMODE`): `disable` (the default, for a private network), `require`
    /// (encrypted, the certificate not checked) or `verify-full` (the certificate must chain to
    /// `NOTIFY_PG_SSLROOTCERT`, or to the system's roots, and name the host).
    public var sslMode: SSLMode = .disable
    public var sslRootCert: String?

    public enum SSLMode: String, Sendable {
        case disable, require
        case verifyFull = "verify-full"
    }

    public var operationTimeout: Duration { statementTimeout + .seconds(5) }

    /// The TLS settings for `sslMode`, or nil when TLS is off.
    public var tlsConfiguration: TLSConfiguration? {
        switch sslMode {
        case .disable:
            return nil
        case .require:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .none
            return configuration
        case .verifyFull:
            var configuration = TLSConfiguration.makeClientConfiguration()
            configuration.certificateVerification = .fullVerification
            if let sslRootCert { configuration.trustRoots = .file(sslRootCert) }
            return configuration
        }
    }

    /// For pools.
    public var clientTLS: PostgresClient.Configuration.TLS {
        tlsConfiguration.map { .require($0) } ?? .disable
    }

    /// For single connections (probes, migrations).
    public func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        guard let tlsConfiguration else { return .disable }
        return .require(try NIOSSLContext(configuration: tlsConfiguration))
    }

    /// A single connection to `database` (probes, migrations, tools) with these credentials and this TLS mode.
    public func connectionConfiguration(database: String) throws -> PostgresConnection.Configuration {
        PostgresConnection.Configuration(
            host: host,
            port: port,
            username: user,
            password: password,
            database: database,
            tls: try connectionTLS()
        )
    }

    public init(
        host: String,
        port: Int,
        user: String,
        password: String,
        databasePrefix: String,
        maxConnections: Int = 20,
        statementTimeout: Duration = .seconds(10),
        idleInTransactionTimeout: Duration = .seconds(60)
    ) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.databasePrefix = databasePrefix
        self.maxConnections = maxConnections
        self.statementTimeout = statementTimeout
        self.idleInTransactionTimeout = idleInTransactionTimeout
    }

    public init(_ env: EnvironmentReader, problems: inout [String]) {
        self.init(
            host: env.string("NOTIFY_PG_HOST", default: "127.0.0.1"),
            port: env.int("NOTIFY_PG_PORT", default: 5432, problems: &problems),
            // No built-in credentials: every deployment names its own (the local scripts set them explicitly).
            user: env.required("NOTIFY_PG_USER", problems: &problems),
            password: env.required("NOTIFY_PG_PASSWORD", problems: &problems),
            databasePrefix: env.string("NOTIFY_PG_DB_PREFIX", default: "notify_"),
            maxConnections: env.int("NOTIFY_PG_MAX_CONNECTIONS", default: 20, problems: &problems),
            statementTimeout: .milliseconds(env.int("NOTIFY_PG_STATEMENT_TIMEOUT_MS", default: 10_000, problems: &problems)),
            idleInTransactionTimeout: .milliseconds(env.int("NOTIFY_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS", default: 60_000, problems: &problems))
        )
        if let mode = env.optionalString("NOTIFY_PG_SSLMODE") {
            if let parsed = SSLMode(rawValue: mode) {
                sslMode = parsed
            } else {
                problems.append("NOTIFY_PG_SSLMODE must be disable, require or verify-full")
            }
        }
        sslRootCert = env.optionalString("NOTIFY_PG_SSLROOTCERT")
        if let sslRootCert, !FileManager.default.isReadableFile(atPath: sslRootCert) {
            problems.append("NOTIFY_PG_SSLROOTCERT: cannot read \(sslRootCert)")
        }
        if statementTimeout < .milliseconds(100) { problems.append("NOTIFY_PG_STATEMENT_TIMEOUT_MS must be at least 100") }
        if idleInTransactionTimeout < .seconds(1) { problems.append("NOTIFY_PG_IDLE_IN_TRANSACTION_TIMEOUT_MS must be at least 1000") }
    }

    public func databaseName(_ database: Database) -> String { databasePrefix + database.rawValue }

    public func clientConfiguration(_ database: Database) -> PostgresClient.Configuration {
        clientConfiguration(databaseName: databaseName(database))
    }

    public func clientConfiguration(databaseName: String) -> PostgresClient.Configuration {
        var configuration = PostgresClient.Configuration(
            host: host,
            port: port,
            username: user,
            password: password,
            database: databaseName,
            tls: clientTLS
        )
        configuration.options.maximumConnections = maxConnections
        configuration.options.connectTimeout = .seconds(5)
        return configuration
    }

    /// The session settings of a long-running service's connections: statements and transactions waiting on a client
    /// end on the server's side too; a client that vanished (a crashed host sends nothing) is noticed by TCP keepalive
    /// within about 25 s and during a statement within 2 s; `application_name` names the process in
    /// `pg_stat_activity`. (Migrations do not use these: an index build may take long.)
    public func serviceStartupParameters(applicationName: String) -> [(String, String)] {
        [
            ("application_name", String(applicationName.prefix(63))),
            ("statement_timeout", "\(Int(statementTimeout.inSeconds * 1000))"),
            ("idle_in_transaction_session_timeout", "\(Int(idleInTransactionTimeout.inSeconds * 1000))"),
            ("tcp_keepalives_idle", "10"), ("tcp_keepalives_interval", "5"), ("tcp_keepalives_count", "3"),
            ("client_connection_check_interval", "2000"),
        ]
    }

    public enum Database: String, CaseIterable, Sendable {
        case users, templates, notifications
    }
}

public struct RabbitSettings: Sendable {
    public var amqpHost: String
    public var amqpPort: Int
    public var managementURL: String
    public var user: String
    public var password: String
    public var vhost: String

    public init(amqpHost: String, amqpPort: Int, managementURL: String, user: String, password: String, vhost: String) {
        self.amqpHost = amqpHost
        self.amqpPort = amqpPort
        self.managementURL = managementURL
        self.user = user
        self.password = password
        self.vhost = vhost
    }

    public init(_ env: EnvironmentReader, problems: inout [String]) {
        self.init(
            amqpHost: env.string("NOTIFY_AMQP_HOST", default: "127.0.0.1"),
            amqpPort: env.int("NOTIFY_AMQP_PORT", default: 5672, problems: &problems),
            managementURL: env.string("NOTIFY_RABBIT_MGMT_URL", default: "http://127.0.0.1:15672"),
            user: env.required("NOTIFY_RABBIT_USER", problems: &problems),
            password: env.required("NOTIFY_RABBIT_PASSWORD", problems: &problems),
            vhost: env.string("NOTIFY_RABBIT_VHOST", default: "/")
        )
    }
}

public struct RedisSettings: Sendable {
    public var host: String
    public var port: Int
    public var keyPrefix: String
    /// How long a command waits for Redis's answer before the caller treats Redis as unavailable.
    public var timeoutMilliseconds: Int
    /// `NOTIFY_REDIS_USERNAME` (an ACL user; none: the default user) and `NOTIFY_REDIS_PASSWORD` (none: no AUTH).
    public var username: String?
    public var password: String?

    public init(host: String, port: Int, keyPrefix: String, timeoutMilliseconds: Int = 500) {
        self.host = host
        self.port = port
        self.keyPrefix = keyPrefix
        self.timeoutMilliseconds = timeoutMilliseconds
    }

    /// `defaultTimeoutMilliseconds`: the gateway asks Redis on every request (rate limits) and waits less than the
    /// caches of the user and template services do.
    public init(_ env: EnvironmentReader, defaultTimeoutMilliseconds: Int = 500, problems: inout [String]) {
        self.init(
            host: env.string("NOTIFY_REDIS_HOST", default: "127.0.0.1"),
            port: env.int("NOTIFY_REDIS_PORT", default: 6379, problems: &problems),
            keyPrefix: env.string("NOTIFY_REDIS_PREFIX", default: "notify:"),
            timeoutMilliseconds: env.int("NOTIFY_REDIS_TIMEOUT_MS", default: defaultTimeoutMilliseconds, problems: &problems)
        )
        if timeoutMilliseconds < 1 { problems.append("NOTIFY_REDIS_TIMEOUT_MS must be at least 1") }
        username = env.optionalString("NOTIFY_REDIS_USERNAME")
        password = env.optionalString("NOTIFY_REDIS_PASSWORD")
    }
}

/// Where a process listens.
public struct ListenSettings: Sendable {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public init(_ env: EnvironmentReader, portKey: String, defaultPort: Int, problems: inout [String]) {
        self.init(
            host: env.string("NOTIFY_LISTEN_HOST", default: "127.0.0.1"),
            port: env.int(portKey, default: defaultPort, problems: &problems)
        )
    }
}

/// The secret that services present to each other (workers to users/templates); only its hash is kept in memory.
public struct ServiceKeySettings: Sendable {
    public var key: String
    public init(key: String) { self.key = key }
    public init(_ env: EnvironmentReader, problems: inout [String]) {
        self.init(key: env.required("NOTIFY_SERVICE_KEY", problems: &problems))
    }
}

/// How user access tokens are signed and checked: the user service issues them, the gateway accepts them.
public struct JWTSettings: Sendable {
    public var secret: String
    public var issuer: String
    public var lifetimeSeconds: Int
    /// How long refreshing may extend a session after the password was given (`NOTIFY_JWT_SESSION_MAX_SECONDS`).
    public var sessionMaxSeconds: Int

    public init(_ env: EnvironmentReader, problems: inout [String]) {
        sessionMaxSeconds = env.int("NOTIFY_JWT_SESSION_MAX_SECONDS", default: 7 * 86_400, problems: &problems)
        secret = env.required("NOTIFY_JWT_SECRET", problems: &problems)
        if !secret.isEmpty, secret.utf8.count < 32 { problems.append("NOTIFY_JWT_SECRET must be at least 32 bytes") }
        issuer = env.string("NOTIFY_JWT_ISSUER", default: "notify-users")
        lifetimeSeconds = env.int("NOTIFY_JWT_TTL_SECONDS", default: 3600, problems: &problems)
    }
}

extension Duration {
    /// The duration as fractional seconds.
    var inSeconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// Password-login throttling (users and operators): attempts per account and per client address, refilled evenly
/// over the window.
public struct LoginThrottleSettings: Sendable {
    public var attemptsPerAccount: Int
    public var attemptsPerAddress: Int
    public var windowSeconds: Int

    public init(_ env: EnvironmentReader, problems: inout [String]) {
        attemptsPerAccount = env.int("NOTIFY_LOGIN_ATTEMPTS_PER_ACCOUNT", default: 5, problems: &problems)
        attemptsPerAddress = env.int("NOTIFY_LOGIN_ATTEMPTS_PER_ADDRESS", default: 20, problems: &problems)
        windowSeconds = env.int("NOTIFY_LOGIN_WINDOW_SECONDS", default: 900, problems: &problems)
        if attemptsPerAccount < 1 || attemptsPerAddress < 1 || windowSeconds < 1 {
            problems.append("NOTIFY_LOGIN_ATTEMPTS_PER_ACCOUNT, NOTIFY_LOGIN_ATTEMPTS_PER_ADDRESS and NOTIFY_LOGIN_WINDOW_SECONDS must be at least 1")
        }
    }
}
