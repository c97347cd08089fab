import AsyncHTTPClient
import Breakers
import Broker
import Directory
import EmailProviders
import Foundation
import Hummingbird
import JobQueue
import Logging
import NotificationModel
import NotifyConfig
import NotifyHTTP
import OutboundPolicy
import PostgresAccess
import PostgresNIO
import PushTransport
import SMSProviders
import SMTPTransport
import ServiceLifecycle

public struct WorkerConfiguration: Sendable {
    public var channel: NotificationChannel
    public var listen: ListenSettings
    public var postgres: PostgresSettings
    public var rabbit: RabbitSettings
    public var serviceKey: ServiceKeySettings
    public var usersURL: String
    public var templatesURL: String
    public var prefetch: Int
    /// Jobs delivered at once (a message may carry a batch of them).
    public var concurrency: Int
    /// How long answers of the user service are kept in the process (0: not kept).
    public var directoryCacheSeconds: Double
    public var workerName: String
    public var leaseSeconds: Int
    public var retryBaseMilliseconds: Int
    public var retryCapSeconds: Int
    public var fallbackPollMilliseconds: Int
    /// Template categories combined per user and window (`NOTIFY_DIGEST_CATEGORIES`, the gateway's value).
    public var digests: DigestPolicy
    /// Seconds a job's outbox message may wait unpublished before a worker claims the job from PostgreSQL (0: never).
    public var unpublishedAfterSeconds: Int
    // email
    public var smtpURL: String
    public var smtpUsername: String?
    public var smtpPassword: String?
    public var smtpConnections: Int
    public var smtpSecurity: SMTPSecurity?
    public var smtpCAFile: String?
    /// The email providers in the order they are tried (`NOTIFY_EMAIL_PROVIDERS`, default `smtp`).
    public var emailProviders: [String]
    public var sendGridURL: String
    public var sendGridAPIKey: String?
    public var mailgunURL: String
    public var mailgunDomain: String?
    public var mailgunAPIKey: String?
    /// One-click unsubscribe: the public base URL of the user service's `/api/v1/unsubscribe` and the signing secret
    /// (`NOTIFY_UNSUBSCRIBE_URL`, `NOTIFY_UNSUBSCRIBE_SECRET`); both or neither.
    public var unsubscribe: UnsubscribeLinks?
    /// The sender addresses templates may name (`NOTIFY_MAIL_FROM_ALLOWED`), checked again at send time.
    public var senders = SenderPolicy("")
    public var mailFrom: String
    public var mailFromName: String
    public var messageIDDomain: String
    // push
    /// The push providers this worker sends through; each must be fully configured, or the worker does not start.
    public var pushProviders: Set<String>
    public var fcmURL: String
    public var fcmProject: String
    public var fcmTokenURL: String?
    public var fcmAccount: ServiceAccount?
    public var vapid: VAPIDKey?
    /// APNs: the `.p8` key with its key and team ids, the app's bundle id, and the host (production, sandbox or a URL).
    public var apnsKey: APNsKey?
    public var apnsTopic: String = ""
    public var apnsURL: String = APNsTransport.productionURL
    /// A CA file trusted instead of the system's roots for APNs (`NOTIFY_APNS_CA_FILE`).
    public var apnsCAFile: String?
    public var oneSignalURL: String = "https://api.onesignal.com"
    public var oneSignalAppID: String?
    public var oneSignalAPIKey: String?
    public var pushTimeToLive: Int
    /// Which Web Push endpoints may be sent to (`NOTIFY_WEBPUSH_ALLOWED_HOSTS`, `NOTIFY_WEBPUSH_ALLOW_LOOPBACK`).
    public var webPushPolicy: EndpointPolicy
    /// One push attempt's deadline, all devices together (`NOTIFY_PUSH_ATTEMPT_TIMEOUT_SECONDS`).
    public var pushAttemptSeconds: Int
    // sms
    /// The SMS providers in the order they are tried (`NOTIFY_SMS_PROVIDERS`, default `twilio`).
    public var smsProviders: [String] = []
    public var twilioURL = "https://api.twilio.com"
    public var twilioAccountSID: String?
    public var twilioAuthToken: String?
    public var twilioFrom: String?
    public var twilioMessagingServiceSID: String?
    public var vonageURL = "https://rest.nexmo.com"
    public var vonageAPIKey: String?
    public var vonageAPISecret: String?
    public var vonageFrom: String?
    /// The public URL of the gateway's Twilio status webhook (`NOTIFY_SMS_STATUS_CALLBACK_URL`), sent with each message.
    public var smsStatusCallback: String?

    public init(channel: NotificationChannel, _ env: EnvironmentReader) throws {
        var problems: [String] = []
        self.channel = channel
        let (portKey, defaultPort) =
            switch channel {
            case .email: ("NOTIFY_EMAIL_WORKER_PORT", 8003)
            case .push: ("NOTIFY_PUSH_WORKER_PORT", 8004)
            case .sms: ("NOTIFY_SMS_WORKER_PORT", 8007)
            }
        listen = ListenSettings(env, portKey: portKey, defaultPort: defaultPort, problems: &problems)
        postgres = PostgresSettings(env, problems: &problems)
        rabbit = RabbitSettings(env, problems: &problems)
        serviceKey = ServiceKeySettings(env, problems: &problems)
        usersURL = env.string("NOTIFY_USERS_URL", default: "http://127.0.0.1:8001")
        templatesURL = env.string("NOTIFY_TEMPLATES_URL", default: "http://127.0.0.1:8002")
        prefetch = env.int("NOTIFY_WORKER_PREFETCH", default: 64, problems: &problems)
        concurrency = env.int("NOTIFY_WORKER_CONCURRENCY", default: 256, problems: &problems)
        if prefetch < 1 { problems.append("NOTIFY_WORKER_PREFETCH must be at least 1") }
        if concurrency < 1 { problems.append("NOTIFY_WORKER_CONCURRENCY must be at least 1") }
        directoryCacheSeconds = Double(env.int("NOTIFY_DIRECTORY_CACHE_SECONDS", default: 5, problems: &problems))
        if directoryCacheSeconds < 0 { problems.append("NOTIFY_DIRECTORY_CACHE_SECONDS must not be negative") }
        leaseSeconds = env.int("NOTIFY_JOB_LEASE_SECONDS", default: 60, problems: &problems)
        retryBaseMilliseconds = env.int("NOTIFY_RETRY_BASE_MS", default: 5000, problems: &problems)
        digests = DigestPolicy.parse(env.optionalString("NOTIFY_DIGEST_CATEGORIES"), problems: &problems)
        retryCapSeconds = env.int("NOTIFY_RETRY_CAP_SECONDS", default: 3600, problems: &problems)
        fallbackPollMilliseconds = env.int("NOTIFY_WORKER_FALLBACK_POLL_MS", default: 1000, problems: &problems)
        if fallbackPollMilliseconds < 1 { problems.append("NOTIFY_WORKER_FALLBACK_POLL_MS must be positive") }
        unpublishedAfterSeconds = env.int("NOTIFY_WORKER_UNPUBLISHED_AFTER_SECONDS", default: 10, problems: &problems)
        if unpublishedAfterSeconds < 0 { problems.append("NOTIFY_WORKER_UNPUBLISHED_AFTER_SECONDS must not be negative") }
        // Host and pid: unique across machines and containers (where every pid is 1), and readable in `attempted_by`.
        workerName = env.string(
            "NOTIFY_WORKER_NAME",
            default: "\(channel.rawValue)-worker-\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)"
        )
        let smtpHost = env.string("NOTIFY_SMTP_HOST", default: "127.0.0.1")
        let smtpPort = env.int("NOTIFY_SMTP_PORT", default: 2525, problems: &problems)
        smtpURL = env.string("NOTIFY_SMTP_URL", default: "smtp://\(smtpHost):\(smtpPort)")
        smtpUsername = env.optionalString("NOTIFY_SMTP_USERNAME")
        smtpPassword = env.optionalString("NOTIFY_SMTP_PASSWORD")
        smtpConnections = env.int("NOTIFY_SMTP_CONNECTIONS", default: 32, problems: &problems)
        if let security = env.optionalString("NOTIFY_SMTP_TLS") {
            smtpSecurity = SMTPSecurity(rawValue: security.lowercased())
            if smtpSecurity == nil {
                problems.append("NOTIFY_SMTP_TLS must be one of \(SMTPSecurity.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        smtpCAFile = env.optionalString("NOTIFY_SMTP_CA_FILE")
        emailProviders = env.string("NOTIFY_EMAIL_PROVIDERS", default: "smtp").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        sendGridURL = env.string("NOTIFY_SENDGRID_URL", default: "https://api.sendgrid.com")
        sendGridAPIKey = env.optionalString("NOTIFY_SENDGRID_API_KEY")
        mailgunURL = env.string("NOTIFY_MAILGUN_URL", default: "https://api.mailgun.net")
        mailgunDomain = env.optionalString("NOTIFY_MAILGUN_DOMAIN")
        mailgunAPIKey = env.optionalString("NOTIFY_MAILGUN_API_KEY")
        mailFrom = env.string("NOTIFY_MAIL_FROM", default: "notifications@notify.local")
        mailFromName = env.string("NOTIFY_MAIL_FROM_NAME", default: "Notify")
        messageIDDomain = env.string("NOTIFY_MESSAGE_ID_DOMAIN", default: "notify.local")
        pushProviders = Set(
            env.string("NOTIFY_PUSH_PROVIDERS", default: "fcm,webpush").split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty }
        )
        fcmURL = env.string("NOTIFY_FCM_URL", default: "https://fcm.googleapis.com")
        fcmProject = env.string("NOTIFY_FCM_PROJECT", default: "")
        fcmTokenURL = env.optionalString("NOTIFY_FCM_TOKEN_URL")
        pushTimeToLive = env.int("NOTIFY_PUSH_TTL_SECONDS", default: 86_400, problems: &problems)
        webPushPolicy = EndpointPolicy(environment: { env.optionalString($0) })
        pushAttemptSeconds = env.int("NOTIFY_PUSH_ATTEMPT_TIMEOUT_SECONDS", default: 30, problems: &problems)
        senders = SenderPolicy(env.string("NOTIFY_MAIL_FROM_ALLOWED", default: ""))
        let unsubscribeURL = env.optionalString("NOTIFY_UNSUBSCRIBE_URL")
        let unsubscribeSecret = env.optionalString("NOTIFY_UNSUBSCRIBE_SECRET")
        let transactional = Set(
            env.string("NOTIFY_TRANSACTIONAL_CATEGORIES", default: "transactional").split(separator: ",")
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        )
        if channel == .email {
            switch (unsubscribeURL, unsubscribeSecret) {
            case (let url?, let secret?):
                if secret.utf8.count < UnsubscribeSigner.minimumSecretLength {
                    problems.append("NOTIFY_UNSUBSCRIBE_SECRET must be at least \(UnsubscribeSigner.minimumSecretLength) bytes")
                }
                if let problem = UnsubscribeLinks.problem(url) { problems.append(problem) }
                unsubscribe = UnsubscribeLinks(baseURL: url, signer: UnsubscribeSigner(secret: secret), transactional: transactional)
            case (nil, nil): break
            default: problems.append("NOTIFY_UNSUBSCRIBE_URL and NOTIFY_UNSUBSCRIBE_SECRET go together")
            }
            let known = ["smtp", "sendgrid", "mailgun"]
            let unknown = emailProviders.filter { !known.contains($0) }
            if !unknown.isEmpty {
                problems.append("NOTIFY_EMAIL_PROVIDERS: unknown \(unknown.joined(separator: ", ")) (known: \(known.joined(separator: ", ")))")
            }
            if emailProviders.isEmpty { problems.append("NOTIFY_EMAIL_PROVIDERS names no provider (\(known.joined(separator: ", ")))") }
            if Set(emailProviders).count != emailProviders.count { problems.append("NOTIFY_EMAIL_PROVIDERS names a provider twice") }
            if emailProviders.contains("smtp") { problems += smtpConfiguration.problems }
            if emailProviders.contains("sendgrid"), sendGridAPIKey == nil { problems.append("NOTIFY_SENDGRID_API_KEY is required for sendgrid") }
            if emailProviders.contains("mailgun") {
                if mailgunAPIKey == nil { problems.append("NOTIFY_MAILGUN_API_KEY is required for mailgun") }
                if mailgunDomain == nil { problems.append("NOTIFY_MAILGUN_DOMAIN is required for mailgun (the sending domain)") }
            }
        }
        if channel == .push {
            let known = ["fcm", "apns", "webpush", "onesignal"]
            let unknown = pushProviders.subtracting(known)
            if !unknown.isEmpty {
                problems.append(
                    "NOTIFY_PUSH_PROVIDERS: unknown \(unknown.sorted().joined(separator: ", ")) (known: \(known.joined(separator: ", ")))"
                )
            }
            if pushProviders.isEmpty { problems.append("NOTIFY_PUSH_PROVIDERS names no provider (\(known.joined(separator: ", ")))") }
            if pushProviders.contains("apns") { readAPNs(env, problems: &problems) }
            if pushProviders.contains("onesignal") {
                oneSignalURL = env.string("NOTIFY_ONESIGNAL_URL", default: oneSignalURL)
                oneSignalAppID = env.optionalString("NOTIFY_ONESIGNAL_APP_ID")
                oneSignalAPIKey = env.optionalString("NOTIFY_ONESIGNAL_API_KEY")
                if oneSignalAppID.flatMap(UUID.init(text:)) == nil {
                    problems.append("NOTIFY_ONESIGNAL_APP_ID is required for onesignal (the app's id, a UUID)")
                }
                if oneSignalAPIKey == nil { problems.append("NOTIFY_ONESIGNAL_API_KEY is required for onesignal (the app's REST API key)") }
            }
            if pushProviders.contains("fcm") {
                fcmAccount = Self.serviceAccount(env, problems: &problems)
                if fcmProject.isEmpty { fcmProject = fcmAccount?.projectID ?? "" }
            }
            if pushProviders.contains("webpush") {
                let key = env.optionalString("NOTIFY_VAPID_PRIVATE_KEY")
                let subject = env.optionalString("NOTIFY_VAPID_SUBJECT")
                if key == nil { problems.append("NOTIFY_VAPID_PRIVATE_KEY is required for Web Push (make one with `notify admin vapid-keys`)") }
                if subject == nil { problems.append("NOTIFY_VAPID_SUBJECT is required for Web Push (mailto: or https: contact)") }
                if let key, let subject {
                    do { vapid = try VAPIDKey(privateKeyBase64URL: key, subject: subject) } catch { problems.append("NOTIFY_VAPID_*: \(error)") }
                }
            }
        }
        if channel == .sms { readSMS(env, problems: &problems) }
        if !problems.isEmpty { throw ConfigurationError(problems: problems) }
    }
}

extension WorkerConfiguration {
    public var smtpConfiguration: SMTPTransport.Configuration {
        .init(
            url: smtpURL,
            username: smtpUsername,
            password: smtpPassword,
            connections: smtpConnections,
            security: smtpSecurity,
            caFile: smtpCAFile
        )
    }

    /// SMS providers: Twilio (account SID, auth token, a sender number or messaging service) and Vonage (API key and
    /// secret, a sender), tried in the order of NOTIFY_SMS_PROVIDERS.
    mutating func readSMS(_ env: EnvironmentReader, problems: inout [String]) {
        smsProviders = env.string("NOTIFY_SMS_PROVIDERS", default: "twilio").split(separator: ",")
            .map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
        let known = ["twilio", "vonage"]
        let unknown = smsProviders.filter { !known.contains($0) }
        if !unknown.isEmpty {
            problems.append("NOTIFY_SMS_PROVIDERS: unknown \(unknown.joined(separator: ", ")) (known: \(known.joined(separator: ", ")))")
        }
        if smsProviders.isEmpty { problems.append("NOTIFY_SMS_PROVIDERS names no provider (\(known.joined(separator: ", ")))") }
        if Set(smsProviders).count != smsProviders.count { problems.append("NOTIFY_SMS_PROVIDERS names a provider twice") }
        if smsProviders.contains("twilio") {
            twilioURL = env.string("NOTIFY_TWILIO_URL", default: twilioURL)
            twilioAccountSID = env.optionalString("NOTIFY_TWILIO_ACCOUNT_SID")
            twilioAuthToken = env.optionalString("NOTIFY_TWILIO_AUTH_TOKEN")
            twilioFrom = env.optionalString("NOTIFY_TWILIO_FROM").map { PhoneNumber.normalize($0) ?? $0 }
            twilioMessagingServiceSID = env.optionalString("NOTIFY_TWILIO_MESSAGING_SERVICE_SID")
            if twilioAccountSID == nil { problems.append("NOTIFY_TWILIO_ACCOUNT_SID is required for twilio") }
            if twilioAuthToken == nil { problems.append("NOTIFY_TWILIO_AUTH_TOKEN is required for twilio") }
            if twilioFrom == nil, twilioMessagingServiceSID == nil {
                problems.append("twilio needs a sender: NOTIFY_TWILIO_FROM (E.164) or NOTIFY_TWILIO_MESSAGING_SERVICE_SID")
            }
        }
        if smsProviders.contains("vonage") {
            vonageURL = env.string("NOTIFY_VONAGE_URL", default: vonageURL)
            vonageAPIKey = env.optionalString("NOTIFY_VONAGE_API_KEY")
            vonageAPISecret = env.optionalString("NOTIFY_VONAGE_API_SECRET")
            vonageFrom = env.optionalString("NOTIFY_VONAGE_FROM")
            if vonageAPIKey == nil { problems.append("NOTIFY_VONAGE_API_KEY is required for vonage") }
            if vonageAPISecret == nil { problems.append("NOTIFY_VONAGE_API_SECRET is required for vonage") }
            if vonageFrom == nil { problems.append("NOTIFY_VONAGE_FROM is required for vonage (a number or an alphanumeric sender id)") }
        }
        smsStatusCallback = env.optionalString("NOTIFY_SMS_STATUS_CALLBACK_URL")
        if let url = smsStatusCallback, URL(string: url)?.scheme.map({ ["https", "http"].contains($0) }) != true {
            problems.append("NOTIFY_SMS_STATUS_CALLBACK_URL must be an absolute http(s) URL")
        }
    }

    /// APNs token authentication: the key (NOTIFY_APNS_KEY_FILE, the `.p8` path, or NOTIFY_APNS_KEY, its PEM), its id,
    /// the team id, the bundle id as topic, and where to send (NOTIFY_APNS_ENVIRONMENT production or sandbox, or
    /// NOTIFY_APNS_URL).
    mutating func readAPNs(_ env: EnvironmentReader, problems: inout [String]) {
        // A PEM in an env file is one line, its line breaks written `\n`.
        var pem = env.optionalString("NOTIFY_APNS_KEY")?.replacingOccurrences(of: "\\n", with: "\n")
        if pem == nil, let path = env.optionalString("NOTIFY_APNS_KEY_FILE") {
            if let contents = FileManager.default.contents(atPath: path) {
                pem = String(decoding: contents, as: UTF8.self)
            } else {
                problems.append("NOTIFY_APNS_KEY_FILE: cannot read \(path)")
            }
        } else if pem == nil {
            problems.append("APNs needs its signing key: NOTIFY_APNS_KEY_FILE (path of the .p8 file) or NOTIFY_APNS_KEY (its PEM)")
        }
        let keyID = env.optionalString("NOTIFY_APNS_KEY_ID")
        let teamID = env.optionalString("NOTIFY_APNS_TEAM_ID")
        if keyID == nil { problems.append("NOTIFY_APNS_KEY_ID is required for apns (the key's 10-character id)") }
        if teamID == nil { problems.append("NOTIFY_APNS_TEAM_ID is required for apns (the developer team's 10-character id)") }
        if let pem, let keyID, let teamID {
            do { apnsKey = try APNsKey(p8: pem, keyID: keyID, teamID: teamID) } catch { problems.append("APNs: \(error)") }
        }
        apnsTopic = env.string("NOTIFY_APNS_TOPIC", default: "")
        if apnsTopic.isEmpty { problems.append("NOTIFY_APNS_TOPIC is required for apns (the app's bundle id)") }
        switch env.string("NOTIFY_APNS_ENVIRONMENT", default: "production").lowercased() {
        case "production": apnsURL = APNsTransport.productionURL
        case "sandbox", "development": apnsURL = APNsTransport.sandboxURL
        default: problems.append("NOTIFY_APNS_ENVIRONMENT must be production or sandbox")
        }
        apnsURL = env.string("NOTIFY_APNS_URL", default: apnsURL)
        if !apnsURL.hasPrefix("https://") { problems.append("NOTIFY_APNS_URL must be https:// (APNs speaks HTTP/2 over TLS only)") }
        apnsCAFile = env.optionalString("NOTIFY_APNS_CA_FILE")
        if let apnsCAFile, !FileManager.default.isReadableFile(atPath: apnsCAFile) {
            problems.append("NOTIFY_APNS_CA_FILE: cannot read \(apnsCAFile)")
        }
    }

    /// The FCM service account from NOTIFY_FCM_SERVICE_ACCOUNT (the JSON itself) or NOTIFY_FCM_SERVICE_ACCOUNT_FILE.
    static func serviceAccount(_ env: EnvironmentReader, problems: inout [String]) -> ServiceAccount? {
        let data: Data
        if let json = env.optionalString("NOTIFY_FCM_SERVICE_ACCOUNT") {
            data = Data(json.utf8)
        } else if let path = env.optionalString("NOTIFY_FCM_SERVICE_ACCOUNT_FILE") {
            guard let contents = FileManager.default.contents(atPath: path) else {
                problems.append("NOTIFY_FCM_SERVICE_ACCOUNT_FILE: cannot read \(path)")
                return nil
            }
            data = contents
        } else {
            problems.append("FCM needs a service account: NOTIFY_FCM_SERVICE_ACCOUNT_FILE (path) or NOTIFY_FCM_SERVICE_ACCOUNT (JSON)")
            return nil
        }
        do {
            return try ServiceAccount.parse(data)
        } catch {
            problems.append("FCM service account: \(error)")
            return nil
        }
    }
}

/// Shuts the Web Push clients down with the process.
struct PinnedClientsService: Service {
    let clients: PinnedHTTPClients
    func run() async throws {
        try? await gracefulShutdown()
        await clients.shutdown()
    }
}

/// An email, push or SMS worker: the AMQP consumer and delivery loop, plus an HTTP port for /health.
public func buildWorker(_ configuration: WorkerConfiguration, logger: Logger) -> some ApplicationProtocol {
    let postgres = Database(
        configuration.postgres,
        database: .notifications,
        applicationName: "notify-\(configuration.channel.rawValue)-worker",
        logger: logger
    )
    // Providers and the directory never redirect; a redirect is an answer, not an instruction.
    let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
    // A lost broker connection opens the consume circuit at once (the fallback takes over); reconnect probes back off
    // from 0.5 s to 5 s, so recovery is noticed within seconds.
    let brokerBreaker = CircuitBreaker(
        name: "rabbitmq",
        configuration: .init(consecutiveFailures: 1, baseOpen: .milliseconds(500), maximumOpen: .seconds(5)),
        logger: logger
    )
    let consumer = AMQPConsumer(
        configuration: .init(server: AMQPServer(configuration.rabbit), queue: configuration.channel.queueName, prefetch: configuration.prefetch),
        breaker: brokerBreaker,
        logger: logger
    )
    // Jobs wait (snoozed, no attempt spent) while these are open: at most 5 s between probes.
    let directoryBreakers = CircuitBreaker.Configuration(maximumOpen: .seconds(5))
    let usersBreaker = CircuitBreaker(name: "users-service", configuration: directoryBreakers, logger: logger)
    let templatesBreaker = CircuitBreaker(name: "templates-service", configuration: directoryBreakers, logger: logger)
    let directory = PlatformDirectory(
        http: http,
        usersURL: configuration.usersURL,
        templatesURL: configuration.templatesURL,
        serviceKey: configuration.serviceKey.key,
        usersBreaker: usersBreaker,
        templatesBreaker: templatesBreaker,
        cacheSeconds: configuration.directoryCacheSeconds,
        pinnedTemplateSeconds: 30
    )
    let deliverer: any Deliverer
    let providerBreakers: [CircuitBreaker]
    var breakerGroups: [BreakerGroup] = []
    var pinnedClients: PinnedHTTPClients?
    /// What the deliveries use and must outlive them: listed before the worker, so they stop after it (a service
    /// group stops its services in reverse order).
    var resources: [any Service] = []
    switch configuration.channel {
    case .email:
        var links: [EmailProviderChain.Link] = []
        for name in configuration.emailProviders {
            let provider: any EmailProvider
            switch name {
            case "sendgrid":
                provider = SendGridProvider(http: http, baseURL: configuration.sendGridURL, apiKey: configuration.sendGridAPIKey ?? "")
            case "mailgun":
                provider = MailgunProvider(
                    http: http,
                    baseURL: configuration.mailgunURL,
                    domain: configuration.mailgunDomain ?? "",
                    apiKey: configuration.mailgunAPIKey ?? ""
                )
            default:
                let smtp = SMTPTransport(configuration: configuration.smtpConfiguration)
                resources.append(SMTPTransportService(smtp))
                provider = SMTPProvider(transport: smtp)
            }
            links.append(.init(provider: provider, breaker: CircuitBreaker(name: name, logger: logger)))
        }
        providerBreakers = links.map(\.breaker)
        deliverer = EmailDeliverer(
            chain: EmailProviderChain(links),
            deliveries: EmailDeliveryStore(client: postgres, logger: logger),
            suppressions: SuppressionCheck(list: SuppressionList(client: postgres, logger: logger), deadline: postgres.operationTimeout),
            unsubscribe: configuration.unsubscribe,
            senders: configuration.senders,
            from: configuration.mailFrom,
            fromName: configuration.mailFromName,
            messageIDDomain: configuration.messageIDDomain
        )
    case .sms:
        var links: [SMSProviderChain.Link] = []
        for name in configuration.smsProviders {
            let provider: any SMSProvider =
                name == "vonage"
                ? VonageProvider(
                    http: http,
                    baseURL: configuration.vonageURL,
                    apiKey: configuration.vonageAPIKey ?? "",
                    apiSecret: configuration.vonageAPISecret ?? "",
                    from: configuration.vonageFrom ?? ""
                )
                : TwilioProvider(
                    http: http,
                    baseURL: configuration.twilioURL,
                    accountSID: configuration.twilioAccountSID ?? "",
                    authToken: configuration.twilioAuthToken ?? "",
                    from: configuration.twilioFrom,
                    messagingServiceSID: configuration.twilioMessagingServiceSID
                )
            links.append(.init(provider: provider, breaker: CircuitBreaker(name: name, logger: logger)))
        }
        providerBreakers = links.map(\.breaker)
        deliverer = SMSDeliverer(
            chain: SMSProviderChain(links),
            deliveries: EmailDeliveryStore(client: postgres, logger: logger),
            suppressions: SuppressionCheck(list: SuppressionList(client: postgres, logger: logger), deadline: postgres.operationTimeout),
            statusCallback: configuration.smsStatusCallback
        )
    case .push:
        let apnsClient = configuration.apnsKey.map { _ in APNsTransport.makeClient(caFile: configuration.apnsCAFile) }
        if let apnsClient { resources.append(HTTPClientService(client: apnsClient)) }
        let providers = PushProviders(
            fcm: configuration.fcmAccount.map { account in
                FCMTransport(
                    http: http,
                    baseURL: configuration.fcmURL,
                    projectID: configuration.fcmProject,
                    tokens: FCMAccessTokens(account: account, tokenURL: configuration.fcmTokenURL, http: http, logger: logger)
                )
            },
            apns: configuration.apnsKey.flatMap { key in
                apnsClient.map {
                    APNsTransport(http: $0, baseURL: configuration.apnsURL, topic: configuration.apnsTopic, tokens: APNsTokens(key: key))
                }
            },
            oneSignal: configuration.oneSignalAPIKey.map { key in
                OneSignalTransport(http: http, baseURL: configuration.oneSignalURL, appID: configuration.oneSignalAppID ?? "", apiKey: key)
            },
            webPush: configuration.vapid.map { vapid in
                let clients = PinnedHTTPClients(policy: configuration.webPushPolicy)
                pinnedClients = clients
                return WebPushTransport(clients: clients, vapid: vapid)
            },
            logger: logger
        )
        providerBreakers = providers.providerBreakers
        breakerGroups = [providers.originBreakers]
        deliverer = PushDeliverer(
            providers: providers,
            directory: directory,
            outcomes: PushOutcomeStore(client: postgres, logger: logger),
            timeToLive: configuration.pushTimeToLive,
            attemptDeadline: .seconds(configuration.pushAttemptSeconds)
        )
    }
    let worker = DeliveryWorker(
        consumer: consumer,
        postgres: postgres,
        directory: directory,
        deliverer: deliverer,
        configuration: .init(
            workerName: configuration.workerName,
            slots: configuration.concurrency,
            lease: .seconds(configuration.leaseSeconds),
            retryBase: .milliseconds(configuration.retryBaseMilliseconds),
            retryCap: .seconds(configuration.retryCapSeconds),
            fallbackPoll: .milliseconds(configuration.fallbackPollMilliseconds),
            unpublishedAfter: configuration.unpublishedAfterSeconds > 0 ? .seconds(configuration.unpublishedAfterSeconds) : nil,
            digests: configuration.digests
        ),
        logger: logger
    )

    let router = serviceRouter(
        service: "\(configuration.channel.rawValue)-worker",
        checks: [
            .timed("postgres") { try await postgres.check() },
            HealthCheck("rabbitmq", critical: false) {
                consumer.isConnected
                    ? DependencyHealth(status: .up) : DependencyHealth(status: .degraded, detail: "not consuming: delivering from PostgreSQL")
            },
            .breaker(brokerBreaker), .breaker(usersBreaker), .breaker(templatesBreaker),
        ] + providerBreakers.map { .breaker($0) }
            + breakerGroups.map { group in
                // Counts only: the origins are push services users chose.
                HealthCheck("circuit:\(group.name)", critical: false) {
                    let open = group.notClosed.count
                    return DependencyHealth(status: open == 0 ? .up : .degraded, detail: open == 0 ? "closed" : "\(open) origin(s) not closed")
                }
            },
        unavailable: Database.isUnavailable
    )

    return Application(
        router: router,
        configuration: .init(
            address: .hostname(configuration.listen.host, port: configuration.listen.port),
            serverName: "notify-\(configuration.channel.rawValue)-worker"
        ),
        services: [postgres, HTTPClientService(client: http)] + resources + (pinnedClients.map { [PinnedClientsService(clients: $0)] } ?? [])
            + [worker],
        logger: logger
    )
}
