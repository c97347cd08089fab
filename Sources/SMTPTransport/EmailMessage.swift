import Foundation

/// One email, composed into an RFC 5322 / MIME message: UTF-8 headers encoded per RFC 2047, text and HTML parts
/// base64-encoded in a multipart/alternative body, and a `Message-ID` derived from the notification id so that a
/// receiver can discard the rare at-least-once resend.
public struct EmailMessage: Sendable {
    public var from: String
    public var fromName: String?
    public var to: String
    public var toName: String?
    public var subject: String
    public var text: String
    public var html: String?
    public var messageID: String
    public var headers: [(String, String)]
    public var replyTo: String?
    /// Values an HTTP provider echoes back in its event webhooks (SendGrid custom args, Mailgun user variables), so an
    /// event finds its notification. Not rendered into the MIME message.
    public var tracking: [String: String]

    public init(
        from: String,
        fromName: String?,
        to: String,
        toName: String?,
        subject: String,
        text: String,
        html: String?,
        messageID: String,
        headers: [(String, String)] = [],
        replyTo: String? = nil,
        tracking: [String: String] = [:]
    ) {
        self.replyTo = replyTo
        self.tracking = tracking
        self.from = from
        self.fromName = fromName
        self.to = to
        self.toName = toName
        self.subject = subject
        self.text = text
        self.html = html
        self.messageID = messageID
        self.headers = headers
    }

    public func rendered(date: Date = Date()) -> String {
        var lines: [String] = []
        lines.append("From: " + Self.mailbox(name: fromName, address: from))
        lines.append("To: " + Self.mailbox(name: toName, address: to))
        lines.append("Subject: " + Self.encodedWord(subject))
        lines.append("Date: " + Self.rfc5322Date(date))
        lines.append("Message-ID: <\(messageID)>")
        if let replyTo { lines.append("Reply-To: <\(Self.headerSafe(replyTo))>") }
        for (name, value) in headers { lines.append("\(name): \(Self.headerSafe(value))") }
        lines.append("MIME-Version: 1.0")
        if let html {
            let boundary = "=_notify_" + messageID.filter { $0.isLetter || $0.isNumber }
            lines.append("Content-Type: multipart/alternative; boundary=\"\(boundary)\"")
            lines.append("")
            lines.append("--\(boundary)")
            lines.append(contentsOf: Self.part(type: "text/plain", content: text))
            lines.append("--\(boundary)")
            lines.append(contentsOf: Self.part(type: "text/html", content: html))
            lines.append("--\(boundary)--")
        } else {
            lines.append(contentsOf: Self.part(type: "text/plain", content: text))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static func part(type: String, content: String) -> [String] {
        ["Content-Type: \(type); charset=UTF-8", "Content-Transfer-Encoding: base64", ""] + base64Lines(content)
    }

    static func base64Lines(_ text: String) -> [String] {
        let encoded = Data(text.utf8).base64EncodedString()
        var lines: [String] = []
        var index = encoded.startIndex
        while index < encoded.endIndex {
            let end = encoded.index(index, offsetBy: 76, limitedBy: encoded.endIndex) ?? encoded.endIndex
            lines.append(String(encoded[index..<end]))
            index = end
        }
        return lines.isEmpty ? [""] : lines
    }

    /// RFC 2047 encoded word when the text is not plain printable ASCII.
    static func encodedWord(_ text: String) -> String {
        let safe = headerSafe(text)
        if safe.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) { return safe }
        return "=?UTF-8?B?" + Data(safe.utf8).base64EncodedString() + "?="
    }

    public static func mailbox(name: String?, address: String) -> String {
        guard let name, !name.isEmpty else { return "<\(headerSafe(address))>" }
        let word = encodedWord(name)
        if word.hasPrefix("=?") { return "\(word) <\(headerSafe(address))>" }
        return "\"\(quotedString(word))\" <\(headerSafe(address))>"
    }

    /// The content of an RFC 5322 quoted-string: backslashes and double quotes escaped with a backslash.
    static func quotedString(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 == UInt8(ascii: "\\") || $0 == UInt8(ascii: "\"") }) else { return text }
        var scalars = String.UnicodeScalarView()
        for scalar in text.unicodeScalars {
            if scalar == "\\" || scalar == "\"" { scalars.append("\\") }
            scalars.append(scalar)
        }
        return String(scalars)
    }

    /// Header values never carry line breaks (header injection).
    public static func headerSafe(_ value: String) -> String {
        // Most values have none: returned as they are. (CR and LF bytes occur in UTF-8 only as those characters.)
        guard value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A }) else { return value }
        // On scalars, not Characters: "\r\n" is a single Character and would slip past a Character comparison.
        var scalars = String.UnicodeScalarView()
        for scalar in value.unicodeScalars { scalars.append(scalar == "\r" || scalar == "\n" ? " " : scalar) }
        return String(scalars)
    }

    static let dayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// `Sat, 21 Nov 2026 22:40:05 +0000`, built from `gmtime_r` (a DateFormatter per message, through ICU, was 9 % of
    /// the email worker's CPU).
    static func rfc5322Date(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(dayNames[Int(parts.tm_wday)]), \(two(parts.tm_mday)) \(monthNames[Int(parts.tm_mon)]) \(parts.tm_year + 1900) "
            + "\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)) +0000"
    }
}
