import Foundation
import HTTPTypes
import Hummingbird

/// Pagination for lists; single objects carry the one-item form.
public struct PageMeta: Codable, Sendable, Equatable {
    public var total: Int
    public var limit: Int
    public var page: Int
    public var totalPages: Int
    public var hasNext: Bool
    public var hasPrevious: Bool

    public init(total: Int, limit: Int, page: Int) {
        self.total = total
        self.limit = limit
        self.page = page
        self.totalPages = limit > 0 ? max(1, (total + limit - 1) / limit) : 1
        self.hasNext = page < totalPages
        self.hasPrevious = page > 1
    }

    public static let single = PageMeta(total: 1, limit: 1, page: 1)

    /// A list returned whole, on one page.
    public static func whole(_ count: Int) -> PageMeta { PageMeta(total: count, limit: max(count, 1), page: 1) }

    enum CodingKeys: String, CodingKey {
        case total, limit, page
        case totalPages = "total_pages"
        case hasNext = "has_next"
        case hasPrevious = "has_previous"
    }
}

public struct FieldError: Codable, Sendable, Equatable {
    public var field: String
    public var message: String
    public init(field: String, message: String) {
        self.field = field
        self.message = message
    }
}

/// The one response shape of every service.
public struct Envelope<Payload: Encodable & Sendable>: Encodable, Sendable {
    public var success: Bool
    public var data: Payload?
    public var error: String?
    public var message: String
    public var meta: PageMeta
    public var details: [FieldError]?

    public init(success: Bool, data: Payload?, error: String?, message: String, meta: PageMeta, details: [FieldError]? = nil) {
        self.success = success
        self.data = data
        self.error = error
        self.message = message
        self.meta = meta
        self.details = details
    }

    enum CodingKeys: String, CodingKey {
        case success, data, error, message, meta, details
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(success, forKey: .success)
        if let data { try container.encode(data, forKey: .data) } else { try container.encodeNil(forKey: .data) }
        if let error { try container.encode(error, forKey: .error) } else { try container.encodeNil(forKey: .error) }
        try container.encode(message, forKey: .message)
        try container.encode(meta, forKey: .meta)
        if let details { try container.encode(details, forKey: .details) }
    }
}

/// An empty `data` object for responses that carry only a message.
public struct EmptyPayload: Codable, Sendable {
    public init() {}
}

extension Response {
    /// A success response in the envelope.
    public static func envelope<Payload: Encodable & Sendable>(
        _ status: HTTPResponse.Status = .ok,
        data: Payload,
        message: String,
        meta: PageMeta = .single,
        headers: HTTPFields = [:]
    ) -> Response {
        let envelope = Envelope(success: true, data: data, error: nil, message: message, meta: meta)
        return .json(status, envelope, headers: headers)
    }

    static func json(_ status: HTTPResponse.Status, _ value: some Encodable, headers: HTTPFields = [:]) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        // Property names become the API's snake_case keys (`userID` → `user_id`); the keys of dictionaries (a
        // client's variables and metadata, preference categories) are left as they are. Types that are also decoded
        // (cached in Redis, read by another service) keep explicit CodingKeys: decoding `user_id` with the
        // matching strategy gives `userId`, not `userID`.
        encoder.keyEncodingStrategy = .convertToSnakeCase
        let data =
            (try? encoder.encode(value))
            ?? Data(
                #"{"success":false,"data":null,"error":"INTERNAL_ERROR","message":"Response could not be encoded","meta":{"total":0,"limit":0,"page":1,"total_pages":1,"has_next":false,"has_previous":false}}"#
                    .utf8
            )
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

extension HTTPField.Name {
    public static let correlationID = HTTPField.Name("X-Correlation-ID")!
    public static let apiKey = HTTPField.Name("X-API-Key")!
    public static let idempotencyKey = HTTPField.Name("Idempotency-Key")!
    public static let idempotentReplayed = HTTPField.Name("Idempotent-Replayed")!
}
