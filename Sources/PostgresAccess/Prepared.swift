import Logging
import PostgresNIO

/// A hot statement, prepared once per connection under its own name and afterwards only bound and executed: the server
/// parses, analyses and plans it once per connection (a generic plan after five runs) instead of on every call, as it
/// does for an unnamed statement. Planning and parsing were a fifth of PostgreSQL's CPU under load.
///
/// postgres-nio sends the types of the first call's bound values with the Parse, so every later call must bind values
/// of the same Swift types in the same places. Each `$n` in `sql` still carries an explicit cast to that type (`Int` →
/// `bigint`, `[Int]` → `bigint[]`, `String` → `text`, `UUID` → `uuid`, `Double` → `float8`, `Bool` → `boolean`): a
/// NULL bound first has no type of its own, and the cast names it.
public protocol PreparedSQL: SendableMetatype {
    static var sql: String { get }
}

/// The statement of `S`, bound to one call's values, as postgres-nio prepares and executes it.
public struct Prepared<S: PreparedSQL>: PostgresPreparedStatement {
    public typealias Row = PostgresRow
    public static var name: String { "notify." + String(reflecting: S.self) }
    public static var sql: String { S.sql }

    public let bindings: PostgresBindings

    public init(_ bindings: PostgresBindings) { self.bindings = bindings }

    public func makeBindings() throws -> PostgresBindings { bindings }
    public func decodeRow(_ row: PostgresRow) throws -> PostgresRow { row }
}

extension PostgresBindings {
    /// `value`, or NULL when it is nil.
    public mutating func append<Value: PostgresThrowingDynamicTypeEncodable>(optional value: Value?) throws {
        if let value { try append(value) } else { appendNull() }
    }
}

extension PostgresConnection {
    /// Runs the prepared statement `S` with `bindings` (preparing it first on this connection when it is new here);
    /// its rows are read before this returns.
    public func execute<S: PreparedSQL>(
        _: S.Type,
        _ bindings: PostgresBindings,
        logger: Logger,
        file: String = #fileID,
        line: Int = #line
    ) async throws -> Rows {
        try Database.ensureOpen(self)
        do {
            let rows = try await execute(Prepared<S>(bindings), logger: logger, file: file, line: line)
            var collected: [PostgresRow] = []
            for try await row in rows { collected.append(row) }
            return Rows(collected)
        } catch let error as PSQLError where Self.spoilsPreparation(error) {
            // postgres-nio keeps a failed preparation's error for the statement's name on this connection and answers
            // every later call with it; and a plan cached before a migration can stop fitting the table. Such a
            // connection is closed (the pool opens a fresh one) so the failure does not outlive its cause.
            Database.close(self)
            throw error
        }
    }

    /// Errors of parsing, analysis or a cached plan (SQLSTATE classes 42, 0A, 26, 3F), as opposed to those of running
    /// the statement (a constraint, a lock timeout, a serialization failure).
    static func spoilsPreparation(_ error: PSQLError) -> Bool {
        guard let state = error.serverInfo?[.sqlState] else { return false }
        return ["42", "0A", "26", "3F"].contains(String(state.prefix(2)))
    }
}

extension Database {
    /// The prepared statement `S` with `bindings` on a pooled connection (see `PostgresConnection.execute(_:_:logger:)`).
    @discardableResult
    public func execute<S: PreparedSQL>(
        _ statement: S.Type,
        _ bindings: PostgresBindings,
        logger: Logger,
        deadline: Duration? = nil,
        file: String = #fileID,
        line: Int = #line
    ) async throws -> Rows {
        try await withConnection(deadline: deadline) { connection in
            try await connection.execute(statement, bindings, logger: logger, file: file, line: line)
        }
    }
}
