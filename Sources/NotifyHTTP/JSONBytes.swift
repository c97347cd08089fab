import Foundation
import Hummingbird
import NotificationModel

/// A value that writes its own JSON, for the answers of the hot paths (a create's 202, a bulk's results): the same
/// document `JSONEncoder` makes from its `Encodable` form (the envelope's keys, snake_case names, ISO-8601 dates,
/// unescaped slashes), written straight into bytes. `JSONEncoder` with its key conversion cost a tenth of the
/// gateway's CPU per create.
public protocol JSONWritable: Sendable {
    func write(to json: inout JSONBytes)
}

/// The writer of those answers: `CanonicalJSON` (the same escapes; the answers' keys are written in the order given).
public typealias JSONBytes = CanonicalJSON

extension CanonicalJSON {
    public mutating func value(_ value: some JSONWritable) {
        value.write(to: &self)
    }

    public mutating func value(_ value: (some JSONWritable)?) {
        if let value { value.write(to: &self) } else { null() }
    }

    public mutating func array(_ values: some Sequence<some JSONWritable>) {
        beginArray()
        for value in values { value.write(to: &self) }
        endArray()
    }
}

extension PageMeta: JSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.key("total")
        json.int(total)
        json.key("limit")
        json.int(limit)
        json.key("page")
        json.int(page)
        json.key("total_pages")
        json.int(totalPages)
        json.key("has_next")
        json.bool(hasNext)
        json.key("has_previous")
        json.bool(hasPrevious)
        json.endObject()
    }
}

extension FieldError: JSONWritable {
    public func write(to json: inout JSONBytes) {
        json.beginObject()
        json.key("field")
        json.string(field)
        json.key("message")
        json.string(message)
        json.endObject()
    }
}

extension Response {
    /// A success response in the envelope, its payload writing its own JSON (see `JSONWritable`).
    public static func envelope(
        _ status: HTTPResponse.Status = .ok,
        writing data: some JSONWritable,
        message: String,
        meta: PageMeta = .single,
        headers: HTTPFields = [:]
    ) -> Response {
        var json = JSONBytes()
        json.beginObject()
        json.key("success")
        json.bool(true)
        json.key("data")
        json.value(data)
        json.key("error")
        json.null()
        json.key("message")
        json.string(message)
        json.key("meta")
        json.value(meta)
        json.endObject()
        var fields = headers
        fields[.contentType] = "application/json; charset=utf-8"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: json.bytes)))
    }
}
