import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NotificationModel
import NotifyHTTP

/// One-click unsubscribe (RFC 8058), public: the signed token in the path is the credential, and it can only turn one
/// category's email off for one user. `POST /api/v1/unsubscribe/{token}` (what a mailbox provider sends, body
/// `List-Unsubscribe=One-Click`, or the confirmation page's button) turns it off, idempotently; `GET` only shows a
/// confirmation page, because link scanners and previews fetch URLs in mail.
struct UnsubscribeController: Sendable {
    let signer: UnsubscribeSigner?
    let repository: UserRepository
    let invalidate: @Sendable (UUID) async -> Void

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.get("/api/v1/unsubscribe/:token", use: confirm)
        router.post("/api/v1/unsubscribe/:token", use: unsubscribe)
    }

    @Sendable func confirm(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let (_, category) = verified(context) else { return Self.invalid }
        let name = Self.escaped(category)
        return Self.page(
            .ok,
            title: "Unsubscribe",
            body: """
                <h1>Unsubscribe from \(name) emails?</h1>
                <p>You will no longer receive emails of the category <strong>\(name)</strong>. Other emails, such as
                security and account messages, are not affected.</p>
                <form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
                <button type="submit">Unsubscribe</button></form>
                """
        )
    }

    @Sendable func unsubscribe(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        guard let (userID, category) = verified(context) else { return Self.invalid }
        // The body (List-Unsubscribe=One-Click) carries nothing the token does not; it is read and bounded only.
        _ = try await request.body.collect(upTo: 16 << 10)
        guard try await repository.optOut(id: userID, category: category, channel: "email") else { return Self.invalid }
        await invalidate(userID)
        context.logger.info("unsubscribed", metadata: ["user_id": .string(userID.lowercased), "category": .string(category)])
        return Self.page(
            .ok,
            title: "Unsubscribed",
            body: "<h1>You are unsubscribed</h1><p>You will no longer receive <strong>\(Self.escaped(category))</strong> emails.</p>"
        )
    }

    func verified(_ context: NotifyRequestContext) -> (UUID, String)? {
        guard let signer, let token = context.parameters.get("token") else { return nil }
        return signer.verify(token)
    }

    static var invalid: Response {
        page(.notFound, title: "Link not valid", body: "<h1>This unsubscribe link is not valid</h1><p>Use the link in a recent email.</p>")
    }

    static func escaped(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    static func page(_ status: HTTPResponse.Status, title: String, body: String) -> Response {
        let html = """
            <!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
            <title>\(title)</title><style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}
            button{font-size:1rem;padding:.5rem 1rem}</style></head><body>\(body)</body></html>
            """
        return Response(
            status: status,
            headers: [
                .contentType: "text/html; charset=utf-8",
                .cacheControl: "no-store",
                HTTPField.Name("Content-Security-Policy")!:
                    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
                HTTPField.Name("X-Content-Type-Options")!: "nosniff",
                HTTPField.Name("Referrer-Policy")!: "no-referrer",
            ],
            body: .init(byteBuffer: ByteBuffer(string: html))
        )
    }
}
