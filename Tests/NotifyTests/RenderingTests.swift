import Foundation
import JobQueue
import NotificationModel
import Rendering
import SMTPTransport
import Testing
import Workers

@Suite("Rendering")
struct RenderingTests {
    @Test("Mustache: HTML parts escape values, text parts keep them; raw tags, sections, lists and inverted sections work")
    func rendersMustache() throws {
        let variables: [String: JSONValue] = [
            "name": .string("Ada & <Bob>"), "count": .number(3), "vip": .bool(true),
            "items": .array([.object(["title": .string("Tea")]), .object(["title": .string("<b>Cake</b>")])]),
        ]
        #expect(try TemplateRenderer.render("Hi {{name}}, {{ count }} new{{missing}}", variables: variables, as: .text) == "Hi Ada & <Bob>, 3 new")
        #expect(try TemplateRenderer.render("<b>{{name}}</b>", variables: variables, as: .html) == "<b>Ada &amp; &lt;Bob&gt;</b>")
        #expect(try TemplateRenderer.render("{{{name}}}|{{& name}}", variables: variables, as: .html) == "Ada & <Bob>|Ada & <Bob>")
        #expect(try TemplateRenderer.render("{{#items}}[{{title}}]{{/items}}", variables: variables, as: .html) == "[Tea][&lt;b&gt;Cake&lt;/b&gt;]")
        #expect(try TemplateRenderer.render("{{#vip}}VIP{{/vip}}{{^none}} none{{/none}}", variables: variables, as: .text) == "VIP none")
        #expect(throws: TemplateRenderer.InvalidTemplate.self) { try TemplateRenderer.render("{{#open}}", variables: [:], as: .text) }
    }

    @Test("required variables are the top-level tags and section names, not the fields inside sections")
    func requiredVariables() {
        let texts = ["Hi {{name}} {{{raw}}} {{#items}}{{title}}{{/items}} {{^empty}}{{other}}{{/empty}} {{! comment}} {{user.email}}"]
        #expect(TemplateVariables.names(in: texts) == ["name", "raw", "items", "empty", "user"])
        #expect(TemplateVariables.missing(in: texts, variables: ["name": .string("x"), "items": .array([])]) == ["raw", "empty", "user"])
    }

    @Test("an email is valid MIME: encoded UTF-8 subject, Message-ID, text and HTML parts in base64, no header injection")
    func composesMIME() throws {
        let message = EmailMessage(
            from: "notifications@notify.local",
            fromName: "Notify",
            to: "ada@example.com",
            toName: "Ada Lövelace",
            subject: "Grüße\r\nBcc: evil@example.com",
            text: "Hallo ✓",
            html: "<p>Hallo ✓</p>",
            messageID: "abc@notify.local",
            headers: [("X-Correlation-ID", "c-1")]
        )
        let raw = message.rendered(date: Date(timeIntervalSince1970: 0))
        let email = ReceivedEmail(raw: raw)
        #expect(email.subject == "Grüße  Bcc: evil@example.com")
        #expect(email.header("Bcc") == nil)
        #expect(email.messageID == "<abc@notify.local>")
        #expect(email.header("Date") == "Thu, 01 Jan 1970 00:00:00 +0000")
        for (seconds, expected) in [(1_795_300_805.9, "Sat, 21 Nov 2026 22:40:05 +0000"), (1_928_387_039, "Sun, 09 Feb 2031 07:03:59 +0000")] {
            #expect(ReceivedEmail(raw: message.rendered(date: Date(timeIntervalSince1970: seconds))).header("Date") == expected)
        }
        #expect(email.header("To") == "=?UTF-8?B?\(Data("Ada Lövelace".utf8).base64EncodedString())?= <ada@example.com>")
        #expect(email.header("X-Correlation-ID") == "c-1")
        #expect(email.text == "Hallo ✓")
        #expect(email.html == "<p>Hallo ✓</p>")
        #expect(raw.contains("\r\n"))
        #expect(!raw.replacingOccurrences(of: "\r\n", with: "").contains("\n"))
    }

    @Test("backoff grows exponentially, is jittered, and never exceeds the cap")
    func backoffBounds() {
        for attempt in 1...20 {
            let delay = Backoff.delay(attempt: attempt, base: .seconds(2), cap: .seconds(60))
            let ceiling = min(2.0 * pow(2, Double(attempt - 1)), 60)
            let seconds = Double(delay.components.seconds) + Double(delay.components.attoseconds) / 1e18
            #expect(
                seconds >= ceiling / 2 - 0.001 && seconds <= ceiling + 0.001,
                "attempt \(attempt): \(seconds)s outside [\(ceiling / 2), \(ceiling)]"
            )
        }
    }
}
