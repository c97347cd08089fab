import Foundation
import Synchronization

/// A message the SMTP sink stored in its Maildir, parsed just enough to check what we sent.
struct ReceivedEmail {
    let raw: String
    let headers: [(String, String)]
    let body: String

    init(raw: String) {
        self.raw = raw
        let normalized = raw.replacingOccurrences(of: "\r\n", with: "\n")
        let split = normalized.components(separatedBy: "\n\n")
        var headers: [(String, String)] = []
        for line in split[0].split(separator: "\n", omittingEmptySubsequences: false) {
            if line.first == " " || line.first == "\t", let last = headers.popLast() {
                headers.append((last.0, last.1 + line.trimmingCharacters(in: .whitespaces)))
            } else if let colon = line.firstIndex(of: ":") {
                headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
            }
        }
        self.headers = headers
        self.body = split.dropFirst().joined(separator: "\n\n")
    }

    func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    var messageID: String? { header("Message-ID") }

    /// The subject with RFC 2047 encoded words decoded.
    var subject: String? {
        guard let value = header("Subject") else { return nil }
        if value.hasPrefix("=?UTF-8?B?"), value.hasSuffix("?=") {
            let encoded = value.dropFirst(10).dropLast(2)
            return Data(base64Encoded: String(encoded)).map { String(decoding: $0, as: UTF8.self) }
        }
        return value
    }

    var text: String? { part("text/plain") }
    var html: String? { part("text/html") }

    /// The decoded content of the first MIME part of this type.
    func part(_ type: String) -> String? {
        let sections: [String]
        if let contentType = header("Content-Type"), contentType.contains("boundary=") {
            let boundary = contentType.components(separatedBy: "boundary=")[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
            sections = body.components(separatedBy: "--\(boundary)")
        } else {
            sections = [
                (headers.filter { $0.0.lowercased().hasPrefix("content-") }.map { "\($0.0): \($0.1)" }.joined(separator: "\n")) + "\n\n" + body
            ]
        }
        for section in sections {
            let trimmed = section.trimmingCharacters(in: .newlines)
            let pieces = trimmed.components(separatedBy: "\n\n")
            guard pieces.count >= 2, pieces[0].lowercased().contains("content-type: \(type)") else { continue }
            let content = pieces.dropFirst().joined(separator: "\n\n")
            if pieces[0].lowercased().contains("base64") {
                let joined = content.split(separator: "\n").joined()
                return Data(base64Encoded: joined).map { String(decoding: $0, as: UTF8.self) }
            }
            return content
        }
        return nil
    }

    /// Message-ID of every file seen so far, by path. A stored message never changes, so each poll reads only the
    /// files that arrived since the last one (the Maildir holds every test's mail, tens of thousands after scale-out).
    static let seen = Mutex<[String: String]>([:])

    static func with(messageID: String, in maildir: URL) -> [ReceivedEmail] {
        let wanted = "<\(messageID)>"
        var found: [ReceivedEmail] = []
        for folder in ["new", "cur"] {
            let directory = maildir.appendingPathComponent(folder)
            let files = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            for file in files {
                let path = directory.appendingPathComponent(file).path
                guard Self.messageID(atPath: path) == wanted, let raw = try? String(contentsOfFile: path, encoding: .utf8) else { continue }
                found.append(ReceivedEmail(raw: raw))
            }
        }
        return found
    }

    /// The Message-ID header of the stored message at `path` ("" when it has none; nil when it cannot be read).
    static func messageID(atPath path: String) -> String? {
        if let known = seen.withLock({ $0[path] }) { return known }
        // Only the head of a new file: reading and parsing every whole file of a Maildir holding thousands made one
        // poll take longer than a test's deadline on a loaded machine.
        guard let id = messageIDHeader(of: path) else { return nil }
        seen.withLock { $0[path] = id }
        return id
    }

    /// The Message-ID header of a stored message ("" when it has none), read from the first 8 KiB only.
    private static func messageIDHeader(of path: String) -> String? {
        guard let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = String(decoding: (try? handle.read(upToCount: 8192)) ?? Data(), as: UTF8.self)
        for line in head.replacingOccurrences(of: "\r\n", with: "\n").split(separator: "\n", omittingEmptySubsequences: false) {
            if line.isEmpty { break }
            if line.lowercased().hasPrefix("message-id:") {
                return line.dropFirst("message-id:".count).trimmingCharacters(in: .whitespaces)
            }
        }
        return ""
    }
}
