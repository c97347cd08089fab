import Deadlines
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NotifyConfig
import PostgresNIO
import ServiceLifecycle

/// PostgreSQL as every long-running process uses it: a connection pool in which no operation can hang, and which
/// serves again within a second or two of the server accepting connections, however long it was away.
///
/// Two behaviours of PostgresNIO turn a crashed server into a process that never writes again:
/// - A query written to a connection that has just closed is neither answered nor failed: its write is dropped. So the
///   ROLLBACK that `withTransaction` sends after the server went away waits forever, holding whatever waits on it.
///   Every operation here has a deadline; when it passes, the leased connection is closed and the caller gets
///   `DeadlineExceeded` (`withDeadline`). Transactions (`withTransaction`) send nothing on a closed connection.
/// - After a long outage the pool retries its connection only after a backoff of up to a minute. A supervisor probes
///   the server while operations fail and, once a fresh connection works, replaces the pool with a new one.
/// The server ends statements and idle transactions that outlive their time, and drops clients that vanished
/// (`PostgresSettings.serviceStartupParameters`).
public final class Database: Service, Sendable {
    /// A pool and the signal that retires it.
    final class Pool: Sendable {
        let client: PostgresClient
        let generation: Int
        let retired: AsyncStream<Void>
        let retire: AsyncStream<Void>.Continuation

        init(client: PostgresClient, generation: Int) {
            self.client = client
            self.generation = generation
            (retired, retire) = AsyncStream.makeStream(of: Void.self)
        }
    }

    struct State {
        var pool: Pool
        var lastSuccess = ContinuousClock.now
        /// The first failure (of the connection, not a refusal by the server) since the last success.
        var failingSince: ContinuousClock.Instant?
        var lastSwap: ContinuousClock.Instant?
    }

    public let settings: PostgresSettings
    public let databaseName: String
    let applicationName: String
    let logger: Logger
    /// Every operation gives up after this (unless it asks for another deadline).
    public let operationTimeout: Duration
    let state: NIOLockedValueBox<State>
    let newPools: AsyncStream<Pool>
    let poolStarted: AsyncStream<Pool>.Continuation

    public convenience init(_ settings: PostgresSettings, database: PostgresSettings.Database, applicationName: String, logger: Logger) {
        self.init(settings, databaseName: settings.databaseName(database), applicationName: applicationName, logger: logger)
    }

    public init(_ settings: PostgresSettings, databaseName: String, applicationName: String, logger: Logger) {
        self.settings = settings
        self.databaseName = databaseName
        self.applicationName = applicationName
        self.logger = logger
        self.operationTimeout = settings.operationTimeout
        let first = Pool(client: Self.makeClient(settings, databaseName, applicationName, logger), generation: 1)
        state = NIOLockedValueBox(State(pool: first))
        (newPools, poolStarted) = AsyncStream.makeStream(of: Pool.self)
        poolStarted.yield(first)
    }

    static func makeClient(_ settings: PostgresSettings, _ databaseName: String, _ applicationName: String, _ logger: Logger) -> PostgresClient {
        var configuration = settings.clientConfiguration(databaseName: databaseName)
        configuration.options.additionalStartupParameters = settings.serviceStartupParameters(applicationName: applicationName)
        // Idle connections are checked more often than the default 30 s: a dead one is found before it is leased.
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(10))
        return PostgresClient(configuration: configuration, backgroundLogger: logger)
    }

    // MARK: Service

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.supervise() }
            for await pool in newPools.cancelOnGracefulShutdown() {
                group.addTask {
                    await withDiscardingTaskGroup { running in
                        running.addTask { await pool.client.run() }
                        for await _ in pool.retired {}
                        running.cancelAll()
                    }
                }
            }
            group.cancelAll()
        }
    }

    /// While operations fail, asks the server directly twice a second; when a fresh connection works but the pool has
    /// not served anything since the failures began, the pool is replaced.
    func supervise() async {
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(500))
            let now = ContinuousClock.now
            let due = state.withLockedValue { state -> Bool in
                guard let since = state.failingSince, now - since >= .seconds(1) else { return false }
                return state.lastSwap.map { now - $0 >= .seconds(2) } ?? true
            }
            guard due, await probe() else { continue }
            replacePool(reason: "the server answers a new connection while the pool's operations fail")
        }
    }

    /// A fresh connection, `SELECT 1`, closed: does the server answer now?
    func probe() async -> Bool {
        // Never a plain connection where TLS is asked for: no TLS context, no probe.
        guard var configuration = try? settings.connectionConfiguration(database: databaseName) else { return false }
        configuration.options.connectTimeout = .seconds(2)
        let logger = self.logger
        let probeConfiguration = configuration
        do {
            return try await withDeadline(.seconds(3)) {
                let connection = try await PostgresConnection.connect(configuration: probeConfiguration, id: 0, logger: logger)
                let answered = (try? await connection.query("SELECT 1", logger: logger)) != nil
                try? await connection.close()
                return answered
            }
        } catch {
            return false
        }
    }

    func replacePool(reason: String) {
        let retired: Pool = state.withLockedValue { state in
            let old = state.pool
            state.pool = Pool(client: Self.makeClient(settings, databaseName, applicationName, logger), generation: old.generation + 1)
            state.lastSwap = .now
            state.failingSince = nil
            poolStarted.yield(state.pool)
            return old
        }
        retired.retire.finish()
        logger.warning("postgres pool replaced", metadata: ["reason": .string(reason), "database": .string(databaseName)])
    }

    // MARK: Outcomes

    func succeeded() {
        state.withLockedValue { state in
            state.lastSuccess = .now
            state.failingSince = nil
        }
    }

    /// Counts what says the connection is gone or unusable; an answer of the server (an error with a SQLSTATE) says it is
    /// reachable, and a cancelled caller says nothing.
    func failed(_ error: any Error) {
        if error is CancellationError { return }
        if error.sqlState != nil {
            succeeded()
            return
        }
        state.withLockedValue { state in
            if state.failingSince == nil { state.failingSince = .now }
        }
    }

    // MARK: Operations

    var client: PostgresClient { state.withLockedValue { $0.pool.client } }

    /// Leases a connection for `body`; gives up after `deadline` (default: `operationTimeout`), closing the connection.
    public func withConnection<T: Sendable>(
        deadline: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        let client = self.client
        let leased = NIOLockedValueBox<PostgresConnection?>(nil)
        let closeLeased: @Sendable () -> Void = { leased.withLockedValue { $0 }.map(Self.close) }
        do {
            let value = try await withDeadline(deadline ?? operationTimeout, onTimeout: closeLeased) {
                try await client.withConnection { connection in
                    leased.withLockedValue { $0 = connection }
                    return try await body(connection)
                }
            }
            succeeded()
            return value
        } catch {
            failed(error)
            throw error
        }
    }

    /// A connection held as long as `body` runs, without a deadline: for `LISTEN`, or a session that holds an advisory
    /// lock. `body` must bound its own queries (a closed connection can leave one waiting forever).
    public func withHeldConnection<T: Sendable>(_ body: @escaping @Sendable (PostgresConnection) async throws -> T) async throws -> T {
        try await client.withConnection { connection in try await body(connection) }
    }

    /// One statement; its rows are read before the connection goes back to the pool.
    @discardableResult
    public func query(
        _ query: PostgresQuery,
        logger: Logger,
        deadline: Duration? = nil,
        file: String = #fileID,
        line: Int = #line
    ) async throws
        -> Rows
    {
        try await withConnection(deadline: deadline) { connection in
            try Self.ensureOpen(connection)
            return Rows(try await connection.query(query, logger: logger, file: file, line: line).collect())
        }
    }

    /// BEGIN, `body`, COMMIT (ROLLBACK when `body` throws), on one connection, within the deadline. Returns only after
    /// COMMIT answered: a lone statement's rows arrive before its commit, which a crash can still undo, so anything a
    /// caller is told succeeded runs in here.
    public func withTransaction<T: Sendable>(
        logger: Logger,
        deadline: Duration? = nil,
        _ body: @escaping @Sendable (PostgresConnection) async throws -> T
    ) async throws -> T {
        try await withConnection(deadline: deadline) { connection in
            try Self.ensureOpen(connection)
            _ = try await connection.query("BEGIN", logger: logger)
            let value: T
            do {
                value = try await body(connection)
            } catch {
                // A ROLLBACK written to a closed connection would never be answered; the server rolls back a
                // transaction whose connection is gone anyway.
                if !connection.isClosed { _ = try? await connection.query("ROLLBACK", logger: logger) }
                throw error
            }
            try Self.ensureOpen(connection)
            _ = try await connection.query("COMMIT", logger: logger)
            return value
        }
    }

    /// Closes without waiting (a connection that stopped answering may never confirm).
    static func close(_ connection: PostgresConnection) {
        let future: EventLoopFuture<Void> = connection.close()
        future.whenComplete { _ in }
    }

    static func ensureOpen(_ connection: PostgresConnection) throws {
        if connection.isClosed { throw ConnectionLost() }
    }

    /// `/health`: a transaction through the pool within `timeout`.
    public func check(timeout: Duration = .seconds(3)) async throws {
        try await withTransaction(logger: logger, deadline: timeout) { connection in
            _ = try await connection.query("SELECT 1", logger: self.logger)
        }
    }
}

/// The connection closed before a statement could be sent on it.
public struct ConnectionLost: Error, CustomStringConvertible {
    public init() {}
    public var description: String { "the database connection closed" }
}

/// The rows of a statement, read in full: iterate them or `decode` them like PostgresNIO's row sequence.
public struct Rows: AsyncSequence, Sendable {
    public typealias Element = PostgresRow
    public let rows: [PostgresRow]

    init(_ rows: [PostgresRow]) { self.rows = rows }

    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: IndexingIterator<[PostgresRow]>
        public mutating func next() async -> PostgresRow? { base.next() }
    }

    public func makeAsyncIterator() -> AsyncIterator { AsyncIterator(base: rows.makeIterator()) }
}

extension Database {
    /// Whether `error` says PostgreSQL cannot answer now (the connection failed or closed, the server is shutting down
    /// or starting, too many connections, a statement or operation ran out of time) rather than a bug or bad data:
    /// callers then get 503 DEPENDENCY_UNAVAILABLE, never 500 (`EnvelopeMiddleware(unavailable:)`).
    public static func isUnavailable(_ error: any Error) -> Bool {
        if error is DeadlineExceeded { return true }
        // A query on a pool being replaced after the server restarted fails with the pool module's error (its module,
        // _ConnectionPoolModule, is not a product this target links, so it is recognised by name).
        if String(reflecting: type(of: error)).hasSuffix(".ConnectionPoolError") { return true }
        if let error = error as? PostgresTransactionError {
            return [error.closureError, error.commitError, error.rollbackError].contains { $0.map(isUnavailable) ?? false }
        }
        guard let error = error as? PSQLError else { return false }
        if let state = error.serverInfo?[.sqlState] {
            // 08: connection exception; 57P01–57P03: shutdown, crash, cannot connect now; 53300: too many connections;
            // 57014: canceled (statement_timeout); 25P03: idle-in-transaction timeout.
            return state.hasPrefix("08") || ["57P01", "57P02", "57P03", "53300", "57014", "25P03"].contains(state)
        }
        return [
            .connectionError, .serverClosedConnection, .clientClosedConnection, .poolClosed, .uncleanShutdown,
            .queryCancelled,
        ].contains(error.code)
    }
}
