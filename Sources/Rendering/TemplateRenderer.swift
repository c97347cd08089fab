import Foundation
import Mustache
import NotificationModel
import Synchronization

/// Renders Mustache templates (swift-mustache) with a notification's variables: HTML parts escape values, text parts
/// (subjects, plain bodies, push titles) do not; sections and lists work as Mustache defines them.
public enum TemplateRenderer {
    public enum Part: Sendable {
        case text, html
    }

    public struct InvalidTemplate: Error, CustomStringConvertible {
        public var description: String
    }

    public static func render(_ template: String, variables: [String: JSONValue], as part: Part) throws -> String {
        let source = part == .text ? "{{% CONTENT_TYPE: TEXT}}" + template : template
        return try parsed(source).render(context(variables))
    }

    /// Parsed templates by source text: a worker renders the same few templates over and over, and parsing was
    /// its largest rendering cost. Bounded: emptied when it holds `parsedLimit` entries.
    static let parsedTemplates = Mutex<[String: MustacheTemplate]>([:])
    static let parsedLimit = 512

    static func parsed(_ source: String) throws -> MustacheTemplate {
        if let template = parsedTemplates.withLock({ $0[source] }) { return template }
        let template: MustacheTemplate
        do {
            template = try MustacheTemplate(string: source)
        } catch {
            throw InvalidTemplate(description: "the template does not parse as Mustache")
        }
        parsedTemplates.withLock { cache in
            if cache.count >= parsedLimit { cache.removeAll(keepingCapacity: true) }
            cache[source] = template
        }
        return template
    }

    /// Checks that the text parses as a Mustache template.
    public static func validate(_ template: String) -> Bool {
        (try? MustacheTemplate(string: template)) != nil
    }

    static func context(_ variables: [String: JSONValue]) -> [String: Any] {
        variables.mapValues(plain)
    }

    static func plain(_ value: JSONValue) -> Any {
        switch value {
        case .null: return NSNull()
        case .bool(let bool): return bool
        case .number(let number): return number.rounded() == number && abs(number) < 9e15 ? Int(number) as Any : number
        case .string(let string): return string
        case .array(let array): return array.map(plain)
        case .object(let object): return object.mapValues(plain)
        }
    }
}

/// The variables a template needs at the top level: plain `{{name}}` tags outside sections, and section names.
/// (Names used inside a section refer to the section's items.)
public enum TemplateVariables {
    /// The names by template texts: the workers and the template service check the same few templates over and over
    /// (scanning them each time was 2 % of the email worker's CPU). Bounded like `TemplateRenderer`'s parsed templates.
    static let scanned = Mutex<[[String]: [String]]>([:])
    static let scannedLimit = 512

    public static func names(in texts: [String]) -> [String] {
        if let names = scanned.withLock({ $0[texts] }) { return names }
        let names = scan(texts)
        scanned.withLock { cache in
            if cache.count >= scannedLimit { cache.removeAll(keepingCapacity: true) }
            cache[texts] = names
        }
        return names
    }

    static func scan(_ texts: [String]) -> [String] {
        var names: [String] = []
        for text in texts {
            var depth = 0
            var rest = Substring(text)
            while let open = rest.range(of: "{{") {
                rest = rest[open.upperBound...]
                let triple = rest.hasPrefix("{")
                guard let close = rest.range(of: triple ? "}}}" : "}}") else { break }
                var tag = rest[..<close.lowerBound].trimmingCharacters(in: .whitespaces)
                rest = rest[close.upperBound...]
                if triple { tag = String(tag.dropFirst()).trimmingCharacters(in: .whitespaces) }
                guard let sigil = tag.first else { continue }
                var name = tag
                switch sigil {
                case "#", "^":
                    name = String(tag.dropFirst()).trimmingCharacters(in: .whitespaces)
                    if depth == 0 { append(name, to: &names) }
                    depth += 1
                    continue
                case "/":
                    depth = max(0, depth - 1)
                    continue
                case "!", ">", "%", "=", "<", "$":
                    continue
                case "&":
                    name = String(tag.dropFirst()).trimmingCharacters(in: .whitespaces)
                default:
                    break
                }
                if depth == 0 { append(name, to: &names) }
            }
        }
        return names
    }

    static func append(_ name: String, to names: inout [String]) {
        let root = String(name.split(separator: ".").first ?? "")
        guard let first = root.first, first.isLetter || first == "_", !names.contains(root) else { return }
        names.append(root)
    }

    /// The required variables missing from `variables`.
    public static func missing(in texts: [String], variables: [String: JSONValue]) -> [String] {
        names(in: texts).filter { variables[$0] == nil }
    }
}
