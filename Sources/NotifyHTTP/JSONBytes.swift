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

/// JSON written into a byte array: containers opened and closed in order, commas placed by the writer.
public struct JSONBytes {
    public private(set) var bytes: [UInt8] = []
    /// True right after a container opened: its first item needs no comma.
    var first = true

    public init(capacity: Int = 512) {
        bytes.reserveCapacity(capacity)
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        first = true
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        first = false
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        first = true
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        first = false
    }

    /// The key of the next member of the open object (written as it is: keys are the API's own names).
    public mutating func key(_ name: StaticString) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        raw(name)
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        first = true
    }

    /// ASCII written as it is.
    mutating func raw(_ text: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: text.utf8Start, count: text.utf8CodeUnitCount))
    }

    mutating func separate() {
        if !first { bytes.append(UInt8(ascii: ",")) }
        first = false
    }

    public mutating func null() {
        separate()
        raw("null")
    }

    public mutating func bool(_ value: Bool) {
        separate()
        if value { raw("true") } else { raw("false") }
    }

    public mutating func int(_ value: Int) {
        separate()
        bytes.append(contentsOf: String(value).utf8)
    }

    /// A string literal: quote, backslash and control characters escaped as `JSONEncoder` does; slashes and non-ASCII
    /// characters as they are.
    public mutating func string(_ value: String) {
        separate()
        CanonicalJSON.appendQuoted(value, to: &bytes)
    }

    public mutating func string(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    /// `2026-12-06T02:45:29Z`: UTC, whole seconds (what `JSONEncoder`'s `.iso8601` writes).
    public mutating func date(_ value: Date) {
        separate()
        var seconds = time_t(value.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ number: Int32, _ width: Int) {
            var divisor: Int32 = 1
            for _ in 1..<width { divisor *= 10 }
            var rest = number
            while divisor > 0 {
                bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
                rest %= divisor
                divisor /= 10
            }
        }
        bytes.append(UInt8(ascii: "\""))
        digits(parts.tm_year + 1900, 4)
        bytes.append(UInt8(ascii: "-"))
        digits(parts.tm_mon + 1, 2)
        bytes.append(UInt8(ascii: "-"))
        digits(parts.tm_mday, 2)
        bytes.append(UInt8(ascii: "T"))
        digits(parts.tm_hour, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(parts.tm_min, 2)
        bytes.append(UInt8(ascii: ":"))
        digits(parts.tm_sec, 2)
        raw("Z\"")
    }

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
