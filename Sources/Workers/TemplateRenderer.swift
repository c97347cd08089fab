import Foundation
import NotificationModel

/// Fills `{{name}}` placeholders from the notification's variables. In HTML parts values are escaped unless the
/// template asks for raw output with `{{{name}}}`. Missing variables render as nothing.
public enum TemplateRenderer {
    public static func render(_ template: String, variables: [String: JSONValue], html: Bool) -> String {
        var output = ""
        output.reserveCapacity(template.utf8.count)
        var rest = Substring(template)
        while let open = rest.range(of: "{{") {
            output += rest[..<open.lowerBound]
            var afterOpen = rest[open.upperBound...]
            var raw = false
            if afterOpen.hasPrefix("{") {
                raw = true
                afterOpen = afterOpen.dropFirst()
            }
            guard let close = afterOpen.range(of: raw ? "}}}" : "}}") else {
                output += rest[open.lowerBound...]
                return output
            }
            var name = afterOpen[..<close.lowerBound].trimmingCharacters(in: .whitespaces)
            if name.hasPrefix("&") {
                raw = true
                name = String(name.dropFirst()).trimmingCharacters(in: .whitespaces)
            }
            let value = variables[name]?.renderedText ?? ""
            output += html && !raw ? escape(value) : value
            rest = afterOpen[close.upperBound...]
        }
        output += rest
        return output
    }

    public static func escape(_ text: String) -> String {
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count)
        for character in text {
            switch character {
            case "&": escaped += "&amp;"
            case "<": escaped += "&lt;"
            case ">": escaped += "&gt;"
            case "\"": escaped += "&quot;"
            case "'": escaped += "&#39;"
            default: escaped.append(character)
            }
        }
        return escaped
    }
}
