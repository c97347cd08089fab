import APIDocs
import Admin
import Foundation
import NIOHTTP1
import NotifyHTTP
import Testing

/// The OpenAPI 3.1 documents describe what the code does: checked by schemathesis against the live services.
@Suite("OpenAPI documents", .serialized)
struct OpenAPITests {
    static let documented: [Stack.Service] = [.gateway, .users, .templates, .admin]

    @Test("the OpenAPI resources of gateway, users, templates and admin load as OpenAPI 3.1 documents; every $ref resolves")
    func documents() throws {
        let documents = APIDocument.all
        #expect(documents.keys.sorted() == ["admin", "gateway", "templates", "users"])
        for (service, data) in documents {
            let document = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any], "\(service)")
            #expect(document["openapi"] as? String == "3.1.0")
            #expect((document["info"] as? [String: Any])?["title"] as? String == "notify \(service)")
            let paths = try #require(document["paths"] as? [String: Any])
            #expect(paths["/health"] != nil && paths["/api/v1/health/"] != nil && paths["/metrics"] != nil, "\(service)")
            var operationIDs: [String] = []
            for (_, item) in paths {
                for (method, operation) in item as? [String: Any] ?? [:] where method != "parameters" {
                    let operation = try #require(operation as? [String: Any])
                    operationIDs.append(try #require(operation["operationId"] as? String))
                    #expect(operation["responses"] is [String: Any])
                }
            }
            #expect(operationIDs.count > 3, "\(service)")
            #expect(Set(operationIDs).count == operationIDs.count, "operationIds are unique")
            var unresolved: [String] = []
            Self.walk(document) { reference in
                if Self.resolve(reference, in: document) == nil { unresolved.append(reference) }
            }
            #expect(unresolved.isEmpty, "\(service): \(unresolved)")
        }
        let gateway = try #require(try JSONSerialization.jsonObject(with: APIDocument.gateway) as? [String: Any])
        #expect((gateway["paths"] as? [String: Any])?["/api/v1/notifications/bulk/"] != nil)
        // The admin document has the operator's session cookie as a security scheme of its own, and its own
        // description of the bearer credential over the shared one.
        let admin = try #require(try JSONSerialization.jsonObject(with: APIDocument.admin) as? [String: Any])
        #expect((admin["paths"] as? [String: Any])?["/api/v1/admin/api-keys/{key_id}/"] != nil)
        let schemes = (admin["components"] as? [String: Any])?["securitySchemes"] as? [String: Any]
        #expect((schemes?["session"] as? [String: Any])?["in"] as? String == "cookie")
        #expect(schemes?["apiKey"] != nil)
        #expect(((schemes?["bearer"] as? [String: Any])?["description"] as? String)?.contains("`admin` scope") == true)
        let shared = (gateway["components"] as? [String: Any])?["securitySchemes"] as? [String: Any]
        #expect(shared?["session"] == nil)
        // The documented error codes are exactly the ones the code can answer (schemathesis checks every answer's
        // `error` against this list).
        let errorCode = ((gateway["components"] as? [String: Any])?["schemas"] as? [String: Any])?["ErrorCode"] as? [String: Any]
        #expect((errorCode?["enum"] as? [String])?.sorted() == ErrorCode.allCases.map(\.rawValue).sorted())
    }

    @Test("the dashboard's Mustache templates render: shared styles included, every tag resolved, the login error escaped")
    func dashboardTemplates() {
        let dashboard = DashboardPages.dashboard
        let login = DashboardPages.login()
        for page in [dashboard, login] {
            #expect(page.hasPrefix("<!doctype html>"))
            #expect(page.contains("--accent: #2457c5"), "the base styles partial")
            #expect(!page.contains("{{") && !page.contains("}}"))
        }
        #expect(dashboard.contains("/api/v1/admin/overview/"))
        #expect(login.contains(#"role="alert" hidden></p>"#))
        let failed = DashboardPages.login(error: #"<script>alert("x")</script> & more"#)
        #expect(failed.contains(#"role="alert">&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; more</p>"#))
        #expect(!failed.contains("<script>alert"))
    }

    @Test("schemathesis against the live gateway, users, templates and admin: no 5xx, no response outside the documents")
    func schemathesis() async throws {
        let executable = try Self.schemathesisExecutable()
        try await Stack.with(services: Self.documented) { stack in
            try await stack.createTemplate(["code": "welcome", "name": "Welcome", "channel": "email", "subject": "Hi", "body": "Hi {{name}}"])
            _ = try await stack.createUser()
            let gatewayKey = try await stack.createKey(scopes: ["notifications:write", "notifications:read", "service"])
            // The admin API takes only keys with the `admin` scope (the service key gets 401). Schemathesis reuses ids
            // it saw in responses, so with the list of keys in reach it would revoke the key it runs with: revocation
            // runs on its own, with only the keys that run creates.
            let adminKey = try await stack.createKey(scopes: ["admin"])
            let runs: [(Stack.Service, String, [String])] = [
                (.gateway, gatewayKey, []), (.users, stack.infra.serviceKey, []), (.templates, stack.infra.serviceKey, []),
                (.admin, adminKey, ["--exclude-operation-id", "revokeAPIKey"]),
                (.admin, adminKey, ["--include-operation-id", "createAPIKey", "--include-operation-id", "revokeAPIKey"]),
            ]
            // Each service serves its document from the resources.
            for (service, name) in [(Stack.Service.gateway, "gateway"), (.users, "users"), (.templates, "templates"), (.admin, "admin")] {
                let served = try await stack.call(.GET, "\(stack.url(service))/openapi.json")
                #expect(served.status == 200)
                let document = try #require(APIDocument.all[name])
                let expected = try #require(try JSONSerialization.jsonObject(with: document) as? NSDictionary)
                #expect(NSDictionary(dictionary: served.json).isEqual(expected), "\(name)")
            }
            // The services' runs at once, each schemathesis on a thread of its own; the admin's two one after the other.
            let groups: [[(Stack.Service, String, [String])]] = [[runs[0]], [runs[1]], [runs[2]], [runs[3], runs[4]]]
            try await withThrowingTaskGroup(of: [(String, Int32, String)].self) { group in
                for runs in groups {
                    group.addTask {
                        var results: [(String, Int32, String)] = []
                        for (service, credential, filters) in runs {
                            var arguments: [String] = [
                                "run", "\(stack.url(service))/openapi.json",
                                "--header", "Authorization: Bearer \(credential)",
                                "--checks",
                                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
                                "--max-examples", Self.setting("NOTIFY_SCHEMATHESIS_EXAMPLES", default: "25"),
                                "--seed", Self.setting("NOTIFY_SCHEMATHESIS_SEED", default: "20261121"),
                                "--workers", "1",
                                "--request-timeout", "10",
                                "--no-color",
                            ]
                            arguments += filters
                            let started = ContinuousClock.now
                            let (status, output) = try await onOwnThread { [arguments] in try Self.run(executable, arguments) }
                            let label = ([service.rawValue] + filters).joined(separator: " ")
                            print("schemathesis against \(label): exit \(status) after \(ContinuousClock.now - started)")
                            results.append((label, status, output))
                        }
                        return results
                    }
                }
                for try await results in group {
                    for (label, status, output) in results {
                        #expect(status == 0, "schemathesis against \(label):\n\(output.suffix(6000))")
                        #expect(output.contains("passed"), "\(label): \(output.suffix(2000))")
                    }
                }
            }
        }
    }

    /// CI runs a fixed seed; a longer hunt sets NOTIFY_SCHEMATHESIS_SEED and NOTIFY_SCHEMATHESIS_EXAMPLES.
    static func setting(_ name: String, default value: String) -> String {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 } ?? value
    }

    /// `NOTIFY_SCHEMATHESIS`, or the one `deploy/local/test` installs into `.local/venv`.
    static func schemathesisExecutable() throws -> String {
        if let path = ProcessInfo.processInfo.environment["NOTIFY_SCHEMATHESIS"], FileManager.default.isExecutableFile(atPath: path) {
            return path
        }
        let path = NotifyProcess.repositoryRoot.appendingPathComponent(".local/venv/bin/schemathesis").path
        guard FileManager.default.isExecutableFile(atPath: path) else { throw SchemathesisMissing(path: path) }
        return path
    }

    struct SchemathesisMissing: Error, CustomStringConvertible {
        var path: String
        var description: String { "schemathesis not found at \(path): run deploy/local/test, which installs it" }
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (Int32, String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var environment = ProcessInfo.processInfo.environment
        environment["NO_COLOR"] = "1"
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    static func walk(_ value: Any, _ visit: (String) -> Void) {
        if let object = value as? [String: Any] {
            if let reference = object["$ref"] as? String { visit(reference) }
            for (_, child) in object { walk(child, visit) }
        } else if let array = value as? [Any] {
            for child in array { walk(child, visit) }
        }
    }

    static func resolve(_ reference: String, in document: [String: Any]) -> Any? {
        guard reference.hasPrefix("#/") else { return nil }
        var current: Any = document
        for part in reference.dropFirst(2).split(separator: "/") {
            guard let object = current as? [String: Any], let next = object[String(part)] else { return nil }
            current = next
        }
        return current
    }
}
