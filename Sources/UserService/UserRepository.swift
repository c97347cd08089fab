import Foundation
import NotificationModel
import Logging
import PostgresNIO

/// A user as the API shows it: never the password hash.
public struct UserResource: Codable, Sendable, Equatable {
    public struct Preferences: Codable, Sendable, Equatable {
        public var email: Bool
        public var push: Bool
    }

    public var userID: String
    public var name: String
    public var email: String
    public var pushToken: String?
    public var preferences: Preferences
    public var createdAt: Date

    enum CodingKeys: String, CodingKey {
        case userID = "user_id"
        case name, email
        case pushToken = "push_token"
        case preferences
        case createdAt = "created_at"
    }
}

public enum UserRepositoryError: Error {
    case emailTaken
}

/// All SQL of the users database.
public struct UserRepository: Sendable {
    let client: PostgresClient
    let logger: Logger

    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    public func create(name: String, email: String, passwordHash: String, pushToken: String?, emailEnabled: Bool, pushEnabled: Bool) async throws
        -> UserResource
    {
        do {
            let rows = try await client.query(
                """
                INSERT INTO users (name, email, password_hash, push_token, email_enabled, push_enabled)
                VALUES (\(name), \(email), \(passwordHash), \(pushToken), \(emailEnabled), \(pushEnabled))
                RETURNING id, name, email, push_token, email_enabled, push_enabled, created_at
                """, logger: logger)
            for try await row in rows.decode((UUID, String, String, String?, Bool, Bool, Date).self) {
                return Self.resource(row)
            }
        } catch let error as PSQLError where error.serverInfo?[.sqlState] == "23505" {
            throw UserRepositoryError.emailTaken
        }
        throw UserRepositoryError.emailTaken
    }

    public func find(id: UUID) async throws -> UserResource? {
        let rows = try await client.query(
            """
            SELECT id, name, email, push_token, email_enabled, push_enabled, created_at
            FROM users WHERE id = \(id)
            """, logger: logger)
        for try await row in rows.decode((UUID, String, String, String?, Bool, Bool, Date).self) {
            return Self.resource(row)
        }
        return nil
    }

    static func resource(_ row: (UUID, String, String, String?, Bool, Bool, Date)) -> UserResource {
        UserResource(
            userID: row.0.lowercased, name: row.1, email: row.2, pushToken: row.3, preferences: .init(email: row.4, push: row.5), createdAt: row.6)
    }
}
