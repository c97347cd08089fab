import Foundation
import Mustache

/// The admin dashboard's HTML: Mustache templates in `Resources/` (the login page, the dashboard, and the CSS both
/// share as the partial `base_styles`), loaded through `Bundle.module`; inline CSS and JS, no external resources.
///
/// Both pages talk only to this origin's admin API: `POST /api/v1/admin/login/` (sets the HttpOnly cookie
/// `notify_admin`), `POST /api/v1/admin/logout/`, `GET /api/v1/admin/overview/`, `GET /api/v1/admin/dead-letters/`
/// and `POST /api/v1/admin/dead-letters/{id}/replay/`. Every call that changes state sends
/// `X-Requested-With: notify-dashboard`; any 401 sends the browser to `/admin/login`. Server data reaches the
/// page only through `textContent`, attributes and DOM APIs, never `innerHTML`.
///
/// They need no more than this Content-Security-Policy (`'unsafe-inline'` for the one inline script and style):
/// `default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:; connect-src 'self';
/// form-action 'self'; base-uri 'none'; frame-ancestors 'none'`.
public enum DashboardPages {
    /// The templates, parsed once. A missing or malformed resource is a packaging or programming error: it stops
    /// the process when its router is built, and the tests catch it.
    static let library: MustacheLibrary = {
        var library = MustacheLibrary()
        for name in ["base_styles", "login", "dashboard"] {
            guard let url = Bundle.module.url(forResource: name, withExtension: "mustache"),
                let source = try? String(contentsOf: url, encoding: .utf8),
                let template = try? MustacheTemplate(string: source)
            else { preconditionFailure("the dashboard template \(name).mustache is missing or does not parse") }
            library.register(template, named: name)
        }
        return library
    }()

    /// The login form; `error`, when set, is shown (Mustache escapes it for HTML).
    public static func login(error: String? = nil) -> String {
        render("login", error.map { ["error": $0] } ?? [:])
    }

    /// The dashboard. Its script polls the overview every 2 s and the dead letters every 5 s.
    public static let dashboard = render("dashboard", [:])

    static func render(_ name: String, _ context: [String: String]) -> String {
        guard let page = library.render(context, withTemplate: name) else { preconditionFailure("no dashboard template \(name)") }
        return page
    }
}
