import CLibPQ
import Foundation
import NotifyConfig

/// One libpq connection of the migrator, used by one task at a time: it sends a migration file whole, as the server
/// takes it (no statement splitting on our side), inside a transaction with the record of the file.
final class PQConnection: @unchecked Sendable {
    private let connection: OpaquePointer

    struct Failure: Error, CustomStringConvertible {
        var message: String
        var sqlState: String?
        var description: String { message }
    }

    init(settings: PostgresSettings, database: String) throws {
        var parameters: [(String, String)] = [
            ("host", settings.host), ("port", String(settings.port)), ("user", settings.user), ("password", settings.password),
            ("dbname", database), ("application_name", "notify-migrate"), ("connect_timeout", "10"),
        ]
        switch settings.sslMode {
        case .disable: parameters.append(("sslmode", "disable"))
        case .require: parameters.append(("sslmode", "require"))
        case .verifyFull:
            parameters.append(("sslmode", "verify-full"))
            // Without a CA file, the system's roots (as the services use them).
            parameters.append(("sslrootcert", settings.sslRootCert ?? "/etc/ssl/certs/ca-certificates.crt"))
        }
        let keywords = parameters.map { strdup($0.0) }
        let values = parameters.map { strdup($0.1) }
        defer { for pointer in keywords + values { free(pointer) } }
        var keywordPointers = keywords.map { UnsafePointer<CChar>($0) } + [nil]
        var valuePointers = values.map { UnsafePointer<CChar>($0) } + [nil]
        guard let connection = PQconnectdbParams(&keywordPointers, &valuePointers, 0) else {
            throw Failure(message: "libpq could not allocate a connection")
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = String(cString: PQerrorMessage(connection)).trimmingCharacters(in: .whitespacesAndNewlines)
            PQfinish(connection)
            throw Failure(message: message)
        }
        self.connection = connection
    }

    deinit { PQfinish(connection) }

    /// Runs SQL text, any number of statements, through the simple query protocol.
    func exec(_ sql: String) throws {
        try check(PQexec(connection, sql))
    }

    /// One statement with text parameters ($1, $2, …).
    func exec(_ sql: String, _ parameters: [String]) throws {
        let copies = parameters.map { strdup($0) }
        defer { for pointer in copies { free(pointer) } }
        var pointers = copies.map { UnsafePointer<CChar>($0) }
        try check(PQexecParams(connection, sql, Int32(parameters.count), nil, &pointers, nil, nil, 0))
    }

    private func check(_ result: OpaquePointer?) throws {
        defer { PQclear(result) }
        let status = PQresultStatus(result)
        guard status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK || status == PGRES_EMPTY_QUERY else {
            let message = result.map { String(cString: PQresultErrorMessage($0)) } ?? String(cString: PQerrorMessage(connection))
            let state = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) }
            throw Failure(message: message.trimmingCharacters(in: .whitespacesAndNewlines), sqlState: state)
        }
    }
}
