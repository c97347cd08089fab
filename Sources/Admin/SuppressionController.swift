import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyHTTP

/// `/api/v1/admin/suppressions/`: the global suppression list. List (filtered by part of an address or by reason),
/// add an address by hand, and remove one so that it may be mailed again. Admin scope only. An entry is an email address
/// or, for SMS, a phone number in E.164 (STOP replies land here with reason `opt_out`).
struct SuppressionController: Sendable {
    let list: SuppressionList

    func register(on router: some RouterMethods<NotifyRequestContext>) {
        router.get("/api/v1/admin/suppressions", use: index)
        router.post("/api/v1/admin/suppressions", use: add)
        router.get("/api/v1/admin/suppressions/:address", use: show)
        router.delete("/api/v1/admin/suppressions/:address", use: remove)
    }

    static let notFound = APIError.notFound(.suppressionNotFound, "This address is not on the suppression list")

    @Sendable func index(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var errors: [FieldError] = []
        let (page, limit) = request.pagination(into: &errors)
        let query = request.uri.queryParameters
        let address = query.get("address")
        if let address, address.isEmpty || address.count > 254 || address.unicodeScalars.contains("\u{0}") {
            errors.append(FieldError(field: "address", message: "must be 1 to 254 characters"))
        }
        var reason: Suppression.Reason?
        if let raw = query.get("reason") {
            reason = Suppression.Reason(rawValue: raw)
            if reason == nil {
                errors.append(
                    FieldError(field: "reason", message: "must be one of \(Suppression.Reason.allCases.map(\.rawValue).joined(separator: ", "))")
                )
            }
        }
        if !errors.isEmpty { throw APIError.validation(errors) }
        let (items, total) = try await list.list(matching: address, reason: reason, limit: limit, offset: (page - 1) * limit)
        return .envelope(data: items, message: "Suppressions retrieved successfully", meta: PageMeta(total: total, limit: limit, page: page))
    }

    @Sendable func add(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        var fields = FieldValidator(try await request.jsonObject(limit: 16 << 10))
        let raw = fields.string("address", required: true, maxLength: 254)
        var address: String?
        if let raw {
            // An address with an @ is an email; anything else must be a phone number.
            if raw.contains("@") {
                address = fields.email("address")
            } else if let phone = PhoneNumber.normalize(raw) {
                address = phone
            } else {
                fields.fail("address", "must be an email address or a phone number in E.164 form, e.g. +14155550123")
            }
        }
        let detail = fields.string("detail", required: false, maxLength: 500)
        try fields.check()
        guard let address else { throw APIError.internalError }
        let (entry, created) = try await list.add(address, detail: detail)
        context.logger.info("suppression added", metadata: ["reason": "manual"])
        return .envelope(created ? .created : .ok, data: entry, message: created ? "Address suppressed" : "Address already suppressed")
    }

    /// The entry named in the path: an email address as written, a phone number in its E.164 form (`+1 415-555-0123`
    /// names `+14155550123`).
    static func address(_ context: NotifyRequestContext) -> String? {
        guard let text = context.parameters.get("address")?.removingPercentEncoding else { return nil }
        if !text.contains("@"), let phone = PhoneNumber.normalize(text) { return phone }
        return text
    }

    @Sendable func show(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let address = Self.address(context), let entry = try await list.list(exactly: address) else { throw Self.notFound }
        return .envelope(data: entry, message: "Suppression retrieved successfully")
    }

    @Sendable func remove(_ request: Request, context: NotifyRequestContext) async throws -> Response {
        try context.requireIdentity().require(.admin)
        guard let address = Self.address(context), let entry = try await list.list(exactly: address),
            try await list.remove(address)
        else { throw Self.notFound }
        context.logger.info("suppression removed", metadata: ["reason": .string(entry.reason.rawValue)])
        return .envelope(data: entry, message: "Address removed from the suppression list; it may be sent to again")
    }
}
