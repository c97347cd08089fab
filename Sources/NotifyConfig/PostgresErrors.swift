import Logging
import PostgresNIO

extension Error {
    /// The SQLSTATE of a PostgreSQL error, also when it was raised inside `withTransaction` or by its COMMIT (which wrap it).
    public var sqlState: String? {
        if let error = self as? PSQLError { return error.serverInfo?[.sqlState] }
        if let error = self as? PostgresTransactionError {
            return error.closureError?.sqlState ?? error.commitError?.sqlState ?? error.rollbackError?.sqlState
        }
        return nil
    }

    /// A unique constraint was violated (SQLSTATE 23505).
    public var isUniqueViolation: Bool { sqlState == "23505" }
}

extension PostgresClient {
    /// Runs a write that someone is told succeeded, inside BEGIN … COMMIT, and returns only after COMMIT answered.
    ///
    /// A lone statement is not enough. PostgresNIO ends a query at its CommandComplete, but a statement sent outside a
    /// transaction block commits only after that, when the server reads the Sync that follows. If the server stops in
    /// between, the statement is rolled back although the query already returned its rows. A fast shutdown does
    /// exactly that: it terminates the backend there. A deferred constraint also fails there. The PostgreSQL-restart
    /// fault test caught the gateway answering 202 for a notification that was then rolled back. COMMIT, by contrast,
    /// answers only once the transaction is committed. When its answer is lost, the caller gets an error for something
    /// that may have committed, which is the safe side: a retry with the same request_id finds it.
    public func committing<T: Sendable>(logger: Logger, _ body: (PostgresConnection) async throws -> T) async throws -> T {
        try await withTransaction(logger: logger) { connection in try await body(connection) }
    }
}
