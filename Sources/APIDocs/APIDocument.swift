import Foundation

/// The OpenAPI 3.1 documents the gateway, user, template and admin services serve at `/openapi.json`.
///
/// They are resources of this module (`Resources/*.json`, loaded through `Bundle.module`): each service's file holds
/// its `info`, `servers`, `paths` and the `components` of its own; `common.json` holds what every document shares
/// (the envelope, the error responses, pagination, security schemes, the health and metrics paths), so every
/// document describes the same envelope the same way. A service's component replaces a shared one of the same name
/// (the admin API describes its bearer credential and adds the operator's session cookie).
public enum APIDocument {
    public static let gateway = build("gateway")
    public static let users = build("users")
    public static let templates = build("templates")
    public static let admin = build("admin")

    /// Every document by its resource name, for the tests.
    public static var all: [String: Data] { ["gateway": gateway, "users": users, "templates": templates, "admin": admin] }

    /// The whole document as JSON bytes (keys sorted). A missing or malformed resource is a packaging or
    /// programming error: it stops the process when its router is built, and the tests catch it.
    static func build(_ service: String) -> Data {
        let common = load("common")
        let own = load(service)
        var paths = own["paths"] as? [String: Any] ?? [:]
        for (path, item) in common["paths"] as? [String: Any] ?? [:] { paths[path] = item }
        // The health report under the API prefix too.
        if var health = paths["/health"] as? [String: Any], var get = health["get"] as? [String: Any] {
            get["operationId"] = "healthV1"
            health["get"] = get
            paths["/api/v1/health/"] = health
        }
        var components = common["components"] as? [String: Any] ?? [:]
        for (section, entries) in own["components"] as? [String: Any] ?? [:] {
            var merged = components[section] as? [String: Any] ?? [:]
            for (name, entry) in entries as? [String: Any] ?? [:] { merged[name] = entry }
            components[section] = merged
        }
        var info = own["info"] as? [String: Any] ?? [:]
        info["version"] = "1.0.0"
        let document: [String: Any] = [
            "openapi": "3.1.0",
            "info": info,
            "servers": own["servers"] ?? [],
            "security": [["bearer": [String]()], ["apiKey": [String]()]],
            "paths": paths,
            "components": components,
        ]
        guard let data = try? JSONSerialization.data(withJSONObject: document, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            preconditionFailure("the OpenAPI document of \(service) cannot be serialised")
        }
        return data
    }

    /// One resource file as a JSON object.
    static func load(_ name: String) -> [String: Any] {
        guard let url = Bundle.module.url(forResource: name, withExtension: "json"),
            let data = try? Data(contentsOf: url),
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { preconditionFailure("the OpenAPI resource \(name).json is missing or not a JSON object") }
        return object
    }
}
