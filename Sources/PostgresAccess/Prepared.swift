import Logging
import PostgresNIO

/// A hot statement, prepared once per connection under its own name and afterwards only bound and executed: the server
/// parses, analyses and plans it once per connection (a generic plan after five runs) instead of on every call, as it
/// does for an unnamed statement. Planning and parsing were a fifth of PostgreSQL's CPU under load.
///
/// Each `$n` in `sql` carries an explicit cast to exactly the type its Swift value is bound as (`Int` → `bigint`,
/// `[Int]` → `bigint[]`, `String` → `text`, `UUID` → `uuid`, `Double` → `float8`, `Bool` → `boolean`): the server
/// infers the parameter types from those casts when the statement is prepared and then reads the binary values of
/// every later call as those types.
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
        let rows = try await execute(Prepared<S>(bindings), logger: logger, file: file, line: line)
        var collected: [PostgresRow] = []
        for try await row in rows { collected.append(row) }
        return Rows(collected)
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
