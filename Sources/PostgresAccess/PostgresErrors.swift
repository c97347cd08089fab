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
