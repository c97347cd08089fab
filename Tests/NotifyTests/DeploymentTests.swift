import Foundation
import Testing

/// The deployment files, checked without a container engine or a cluster: deploy/compose.yaml through Debian's
/// `docker-compose config`, deploy/k8s and .github/workflows through deploy/check_manifests.py (python3-yaml), and
/// deploy/Dockerfile as text. Nothing here needs the test infrastructure.
@Suite("Deployment files")
struct DeploymentTests {
    static let root = NotifyProcess.repositoryRoot
    static let dockerCompose = "/usr/bin/docker-compose"
    static let python = "/usr/bin/python3"

    static let processes: [String: Int] = [
        "gateway": 8000, "users": 8001, "templates": 8002, "email-worker": 8003, "push-worker": 8004, "admin": 8005, "relay": 8006,
        "sms-worker": 8007,
    ]
    static let infrastructure: Set<String> = ["postgres", "rabbitmq", "redis", "smtp"]

    struct Output {
        var status: Int32
        var stdout: Data
        var stderr: String
        var text: String { String(decoding: stdout, as: UTF8.self) }
    }

    static let secretNames: Set<String> = [
        "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_JWT_SECRET", "NOTIFY_SMTP_USERNAME",
        "NOTIFY_SMTP_PASSWORD", "NOTIFY_VAPID_PRIVATE_KEY", "NOTIFY_FCM_SERVICE_ACCOUNT", "NOTIFY_SENDGRID_API_KEY", "NOTIFY_MAILGUN_API_KEY",
        "NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY", "NOTIFY_MAILGUN_WEBHOOK_SIGNING_KEY", "NOTIFY_UNSUBSCRIBE_SECRET", "NOTIFY_APNS_KEY",
        "NOTIFY_ONESIGNAL_API_KEY", "NOTIFY_TWILIO_AUTH_TOKEN", "NOTIFY_VONAGE_API_SECRET", "NOTIFY_WEBHOOK_SECRET_KEY",
    ]
    /// Secrets a process may run without (features left off in the example): SMTP login, the FCM account, the APNs and
    /// OneSignal keys, the email providers' API and webhook keys, unsubscribe.
    static let optionalSecrets: Set<String> = [
        "NOTIFY_SMTP_USERNAME", "NOTIFY_SMTP_PASSWORD", "NOTIFY_FCM_SERVICE_ACCOUNT", "NOTIFY_SENDGRID_API_KEY", "NOTIFY_MAILGUN_API_KEY",
        "NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY", "NOTIFY_MAILGUN_WEBHOOK_SIGNING_KEY", "NOTIFY_UNSUBSCRIBE_SECRET", "NOTIFY_APNS_KEY",
        "NOTIFY_ONESIGNAL_API_KEY", "NOTIFY_TWILIO_AUTH_TOKEN", "NOTIFY_VONAGE_API_SECRET", "NOTIFY_WEBHOOK_SECRET_KEY",
    ]
    /// What each process uses: the push worker never holds the JWT key, nothing but the gateway and the user
    /// service does, the broker's password only where the broker is used.
    static let secretsUsed: [String: Set<String>] = [
        "gateway": [
            "NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_JWT_SECRET", "NOTIFY_SENDGRID_WEBHOOK_PUBLIC_KEY",
            "NOTIFY_MAILGUN_WEBHOOK_SIGNING_KEY", "NOTIFY_TWILIO_AUTH_TOKEN",
        ],
        "users": ["NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_JWT_SECRET", "NOTIFY_UNSUBSCRIBE_SECRET"],
        "templates": ["NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_SERVICE_KEY"],
        "email-worker": [
            "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_SMTP_USERNAME", "NOTIFY_SMTP_PASSWORD",
            "NOTIFY_SENDGRID_API_KEY", "NOTIFY_MAILGUN_API_KEY", "NOTIFY_UNSUBSCRIBE_SECRET",
        ],
        "push-worker": [
            "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_VAPID_PRIVATE_KEY", "NOTIFY_FCM_SERVICE_ACCOUNT",
            "NOTIFY_APNS_KEY", "NOTIFY_ONESIGNAL_API_KEY",
        ],
        "sms-worker": [
            "NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_SERVICE_KEY", "NOTIFY_TWILIO_AUTH_TOKEN", "NOTIFY_VONAGE_API_SECRET",
        ],
        "admin": ["NOTIFY_PG_PASSWORD", "NOTIFY_REDIS_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_WEBHOOK_SECRET_KEY", "NOTIFY_SERVICE_KEY"],
        "relay": ["NOTIFY_PG_PASSWORD", "NOTIFY_RABBIT_PASSWORD", "NOTIFY_WEBHOOK_SECRET_KEY"],
    ]

    /// The PostgreSQL role each process logs in as: the role of its database, made by `notify migrate`.
    static let postgresRole: [String: String] = [
        "users": "notify_svc_users", "templates": "notify_svc_templates", "gateway": "notify_svc_notifications",
        "email-worker": "notify_svc_notifications", "push-worker": "notify_svc_notifications", "sms-worker": "notify_svc_notifications",
        "admin": "notify_svc_notifications",
        "relay": "notify_svc_notifications",
    ]

    /// Runs a program to completion with a small, fixed environment (so that the test runner's NOTIFY_* variables,
    /// which compose would prefer to the env file, cannot change the outcome).
    static func run(_ executable: String, _ arguments: [String], input: Data? = nil) throws -> Output {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        process.currentDirectoryURL = root
        process.environment = ["PATH": "/usr/bin:/bin", "HOME": FileManager.default.temporaryDirectory.path, "LANG": "C.UTF-8"]
        let stdout = Pipe()
        let stderr = FileManager.default.temporaryDirectory.appendingPathComponent("notify-deploy-\(UUID().uuidString).stderr")
        _ = FileManager.default.createFile(atPath: stderr.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: stderr) }
        let stderrHandle = try FileHandle(forWritingTo: stderr)
        process.standardOutput = stdout
        process.standardError = stderrHandle
        let stdin = Pipe()
        process.standardInput = stdin
        try process.run()
        if let input { stdin.fileHandleForWriting.write(input) }
        try stdin.fileHandleForWriting.close()
        let output = stdout.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        try stderrHandle.close()
        let errors = String(decoding: (try? Data(contentsOf: stderr)) ?? Data(), as: UTF8.self)
        return Output(status: process.terminationStatus, stdout: output, stderr: errors)
    }

    static func requireTool(_ path: String) throws {
        try #require(FileManager.default.isExecutableFile(atPath: path), "\(path) is missing: run deploy/local/install-deps")
    }

    /// YAML text → the same data as JSON objects, through Debian's PyYAML.
    static func parseYAML(_ text: Data) throws -> [String: Any] {
        let script = "import sys, json, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
        let output = try run(python, ["-c", script], input: text)
        try #require(output.status == 0, "PyYAML could not read the text: \(output.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any])
    }

    /// A service's `depends_on`, as dependency → condition.
    static func conditions(_ service: [String: Any]?) -> [String: String] {
        let dependencies = service?["depends_on"] as? [String: [String: Any]] ?? [:]
        return dependencies.compactMapValues { $0["condition"] as? String }
    }

    /// `docker-compose config` of deploy/compose.yaml with the given env file, parsed.
    static func composeConfig(envFile: String) throws -> (Output, [String: Any]?) {
        try requireTool(dockerCompose)
        let output = try run(dockerCompose, ["--env-file", envFile, "-f", "deploy/compose.yaml", "config"])
        guard output.status == 0 else { return (output, nil) }
        return (output, try parseYAML(output.stdout))
    }

    @Test("compose: docker-compose config accepts deploy/compose.yaml with .env.example and defines the whole platform")
    func composeIsValid() throws {
        let (output, parsed) = try Self.composeConfig(envFile: "deploy/.env.example")
        #expect(output.status == 0, "docker-compose config failed: \(output.stderr)")
        let config = try #require(parsed)
        let services = try #require(config["services"] as? [String: [String: Any]])
        let expected = Self.infrastructure.union(["migrate"]).union(Self.processes.keys)
        #expect(Set(services.keys) == expected)
        for name in expected.sorted() { #expect(output.text.contains("\n  \(name):\n"), "the printed config names \(name)") }

        // The one-shot migration waits for a healthy PostgreSQL and is never restarted.
        let migrate = try #require(services["migrate"])
        #expect(migrate["command"] as? [String] == ["migrate"])
        #expect(migrate["restart"] as? String == "no")
        #expect(Self.conditions(migrate) == ["postgres": "service_healthy"])

        // Every dependency condition names a service that can satisfy it.
        for (name, service) in services {
            for (dependency, condition) in Self.conditions(service) {
                switch condition {
                case "service_healthy":
                    #expect(services[dependency]?["healthcheck"] != nil, "\(name) waits for \(dependency) to be healthy, which has no healthcheck")
                case "service_completed_successfully":
                    #expect(dependency == "migrate", "\(name) waits for \(dependency) to complete")
                default:
                    Issue.record("\(name) depends on \(dependency) with condition \(condition)")
                }
            }
        }
        for name in Self.infrastructure { #expect(services[name]?["healthcheck"] != nil, "\(name) has a healthcheck") }

        // The eight processes: one image, after the migration, probed on their own /health, configured for the network.
        let image = migrate["image"] as? String
        for (name, port) in Self.processes {
            let service = try #require(services[name], "no service \(name)")
            #expect(service["image"] as? String == image, "\(name) runs the same image as migrate")
            #expect(Self.conditions(service)["migrate"] == "service_completed_successfully", "\(name) starts after the migration")
            let test = (service["healthcheck"] as? [String: Any])?["test"] as? [String] ?? []
            #expect(test.contains("http://127.0.0.1:\(port)/health"), "\(name)'s healthcheck probes its /health on \(port): \(test)")
            let environment = service["environment"] as? [String: Any] ?? [:]
            // Each process holds the secrets it uses and no other (least privilege).
            let secrets = Set(environment.keys.filter { Self.secretNames.contains($0) })
            #expect(secrets == Self.secretsUsed[name], "\(name) holds \(secrets.sorted())")
            // Required ones carry a value; the optional ones are features the example leaves off.
            for key in secrets.subtracting(Self.optionalSecrets) {
                #expect((environment[key] as? String)?.isEmpty == false, "\(name) gets \(key)")
            }
            // PostgreSQL as the role of its database, with that role's password; only migrate is the owner.
            let role = try #require(Self.postgresRole[name])
            #expect(environment["NOTIFY_PG_USER"] as? String == role, "\(name) logs in as \(role)")
            #expect(environment["NOTIFY_PG_PASSWORD"] as? String != "dev-only-postgres-password", "\(name) does not hold the owner's password")
            #expect(
                environment["NOTIFY_PG_PASSWORD"] as? String
                    == (migrate["environment"] as? [String: Any])?["NOTIFY_PG_\(role.dropFirst("notify_svc_".count).uppercased())_ROLE_PASSWORD"]
                    as? String,
                "\(name) holds the password migrate gives \(role)"
            )
            #expect(environment["NOTIFY_LISTEN_HOST"] as? String == "0.0.0.0")
            #expect(environment["NOTIFY_PG_HOST"] as? String == "postgres")
            let command = (service["entrypoint"] as? [String] ?? []) + (service["command"] as? [String] ?? [])
            #expect(command.contains { $0 == name || $0.hasSuffix("/app/notify \(name)") }, "\(name) runs notify \(name): \(command)")
        }
        // Workers name themselves after their container: the default name (channel + PID) is the same in every container.
        for worker in ["email-worker", "push-worker", "sms-worker"] {
            let entrypoint = (services[worker]?["entrypoint"] as? [String] ?? []).joined(separator: " ")
            #expect(entrypoint.contains("NOTIFY_WORKER_NAME="), "\(worker) sets NOTIFY_WORKER_NAME")
        }
        let emailEnvironment = services["email-worker"]?["environment"] as? [String: Any] ?? [:]
        #expect(emailEnvironment["NOTIFY_SMTP_HOST"] as? String == "smtp")
        let pushEnvironment = services["push-worker"]?["environment"] as? [String: Any] ?? [:]
        #expect(pushEnvironment["NOTIFY_PUSH_PROVIDERS"] as? String == "webpush")
        #expect((pushEnvironment["NOTIFY_VAPID_PRIVATE_KEY"] as? String)?.count == 43, "the example's VAPID key is a base64url P-256 key")
    }

    @Test("compose: a missing secret stops docker-compose config and names the variable")
    func composeRequiresSecrets() throws {
        let example = try String(contentsOf: Self.root.appendingPathComponent("deploy/.env.example"), encoding: .utf8)
        let withoutKey = example.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { !$0.hasPrefix("NOTIFY_SERVICE_KEY=") }.joined(separator: "\n")
        #expect(withoutKey != example)
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("notify-env-\(UUID().uuidString)")
        try withoutKey.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        let (output, _) = try Self.composeConfig(envFile: file.path)
        #expect(output.status != 0)
        #expect(output.stderr.contains("NOTIFY_SERVICE_KEY"), "the error names the variable: \(output.stderr)")
    }

    /// Runs deploy/check_manifests.py on a repository root and returns its exit status and report.
    static func checkManifests(root: URL) throws -> (Int32, [String: Any]) {
        try requireTool(python)
        let output = try run(python, [Self.root.appendingPathComponent("deploy/check_manifests.py").path, root.path])
        let report = try #require(
            try JSONSerialization.jsonObject(with: output.stdout) as? [String: Any],
            "check_manifests.py printed no report: \(output.stderr)"
        )
        return (output.status, report)
    }

    @Test("Kubernetes: probes on /health, a Service and a PDB per Deployment, HPAs for the workers, a migrate Job; workflows")
    func kubernetesManifests() throws {
        let (status, report) = try Self.checkManifests(root: Self.root)
        let problems = report["problems"] as? [String] ?? ["no problems list"]
        #expect(problems.isEmpty, "\(problems.joined(separator: "\n"))")
        #expect(status == 0)

        let deployments = try #require(report["deployments"] as? [String: [String: Any]])
        #expect(Set(deployments.keys) == Set(Self.processes.keys))
        for (name, port) in Self.processes {
            for probe in ["readinessProbe", "livenessProbe"] {
                let facts = deployments[name]?[probe] as? [String: Any]
                #expect(facts?["path"] as? String == "/health", "\(name) \(probe)")
                #expect(facts?["port"] as? Int == port, "\(name) \(probe) on its container port \(port)")
            }
            #expect(deployments[name]?["memory_limit"] as? String == "256Mi", "\(name) memory limit")
            #expect(Set(deployments[name]?["secrets"] as? [String] ?? []) == Self.secretsUsed[name], "\(name)'s secrets in Kubernetes")
            let role = try #require(Self.postgresRole[name])
            #expect(deployments[name]?["pg_user"] as? String == role, "\(name) logs in to PostgreSQL as \(role)")
            #expect(
                deployments[name]?["pg_password_key"] as? String == "NOTIFY_PG_\(role.dropFirst("notify_svc_".count).uppercased())_ROLE_PASSWORD",
                "\(name) takes its role's password"
            )
        }
        // Network policies: default deny; only the four services that take traffic are reachable; the workers' way
        // to the internet excludes every internal range.
        let policies = try #require(report["network_policies"] as? [String: Any])
        #expect((policies["default_deny"] as? [String])?.isEmpty == false)
        #expect(policies["ingress_to"] as? [String] == ["admin", "gateway", "templates", "users"])
        let egress = policies["internet_egress"] as? [String: [String]] ?? [:]
        #expect(egress.values.allSatisfy { Set($0).isSuperset(of: ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16"]) })
        #expect(!egress.isEmpty)
        let hpaTargets = Set((report["hpas"] as? [String: [String: Any]] ?? [:]).values.compactMap { $0["target"] as? String })
        #expect(hpaTargets.isSuperset(of: ["email-worker", "push-worker", "sms-worker", "gateway"]))
        let pdbs = report["pdbs"] as? [String: [String]] ?? [:]
        #expect(Set(pdbs.keys) == Set(Self.processes.keys), "one PodDisruptionBudget per Deployment")
        let jobs = report["jobs"] as? [String: [[String]]] ?? [:]
        #expect(jobs.values.contains { $0.contains { $0.contains("migrate") } }, "a Job runs notify migrate")

        let workflows = try #require(report["workflows"] as? [String: [String: Any]])
        let ci = try #require(workflows["ci.yml"]?["jobs"] as? [String: [String]])
        #expect(Set(ci.keys).isSuperset(of: ["test", "image", "compose"]))
        #expect(ci["test"]?.contains("bash .ci/run") == true, "CI runs the project's test command")
        #expect(ci["image"]?.contains { $0.hasPrefix("docker/build-push-action") } == true)
    }

    @Test("the manifest checker fails on a Deployment without a liveness probe and on a missing PodDisruptionBudget")
    func manifestCheckerCatchesMistakes() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("notify-manifests-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: copy) }
        let manager = FileManager.default
        try manager.createDirectory(at: copy.appendingPathComponent("deploy"), withIntermediateDirectories: true)
        try manager.createDirectory(at: copy.appendingPathComponent(".github"), withIntermediateDirectories: true)
        try manager.copyItem(at: Self.root.appendingPathComponent("deploy/k8s"), to: copy.appendingPathComponent("deploy/k8s"))
        try manager.copyItem(at: Self.root.appendingPathComponent(".github/workflows"), to: copy.appendingPathComponent(".github/workflows"))

        let relay = copy.appendingPathComponent("deploy/k8s/relay.yaml")
        let relayText = try String(contentsOf: relay, encoding: .utf8)
        #expect(relayText.contains("livenessProbe:"))
        try relayText.replacingOccurrences(of: "livenessProbe:", with: "startupProbe:").write(to: relay, atomically: true, encoding: .utf8)
        let admin = copy.appendingPathComponent("deploy/k8s/admin.yaml")
        let adminDocuments = try String(contentsOf: admin, encoding: .utf8).components(separatedBy: "\n---\n")
        #expect(adminDocuments.count == 3 && adminDocuments[2].contains("kind: PodDisruptionBudget"))
        try adminDocuments.prefix(2).joined(separator: "\n---\n").write(to: admin, atomically: true, encoding: .utf8)

        let (status, report) = try Self.checkManifests(root: copy)
        let problems = report["problems"] as? [String] ?? []
        #expect(status == 1)
        #expect(problems.contains("Deployment relay: no livenessProbe with httpGet"), "\(problems)")
        #expect(problems.contains("Deployment admin: covered by [] PodDisruptionBudgets, expected one"), "\(problems)")
        #expect(problems.count == 2, "\(problems)")
    }

    @Test("Dockerfile: static Swift stdlib release build, resources and sql/ shipped, a non-root user, one entrypoint for every process")
    func dockerfile() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("deploy/Dockerfile"), encoding: .utf8)
        // instructions with their continuation lines joined
        let instructions = text.replacingOccurrences(of: "\\\n", with: " ").split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let stages = instructions.indices.filter { instructions[$0].uppercased().hasPrefix("FROM ") }
        #expect(stages.count >= 2, "a multi-stage build")
        let build = instructions.filter { $0.hasPrefix("RUN ") && $0.contains("swift build") }
        #expect(build.contains { $0.contains("-c release") && $0.contains("--static-swift-stdlib") && $0.contains("--product notify") })
        let final = instructions[(stages.last ?? 0)...]
        #expect(final.first?.contains("debian:bookworm-slim") == true)
        let users = final.filter { $0.hasPrefix("USER ") }.map { String($0.dropFirst(5)).trimmingCharacters(in: .whitespaces) }
        let user = try #require(users.last, "the runtime stage sets USER")
        let name = user.split(separator: ":").first.map { String($0) } ?? user
        #expect(!["root", "0"].contains(name), "runs as \(user)")
        #expect(final.contains { $0.hasPrefix("COPY ") && $0.split(separator: " ").contains("sql") && $0.hasSuffix("/app/sql") })
        // The binary finds its resource bundles (OpenAPI documents, dashboard templates) beside itself, in /app.
        #expect(build.contains { $0.contains("notify_*.resources /staging/") && $0.contains("/notify\" /staging/notify") })
        #expect(final.contains("COPY --from=build /staging/ /app/"))
        #expect(final.contains { $0.hasPrefix("ENV ") && $0.contains("NOTIFY_SQL_DIR=/app/sql") && $0.contains("NOTIFY_LISTEN_HOST=0.0.0.0") })
        #expect(final.contains("ENTRYPOINT [\"/app/notify\"]"))
        for library in ["librabbitmq4", "libcurl4", "libpq5", "ca-certificates"] {
            #expect(final.contains { $0.hasPrefix("RUN ") && $0.contains(library) }, "the runtime stage installs \(library)")
        }
        let ignored = try String(contentsOf: Self.root.appendingPathComponent(".dockerignore"), encoding: .utf8)
            .split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        for entry in [".build", ".local", ".git"] { #expect(ignored.contains(entry), ".dockerignore leaves out \(entry)") }
    }
}
