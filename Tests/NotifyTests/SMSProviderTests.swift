import AsyncHTTPClient
import Breakers
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NotificationModel
import Testing

@testable import SMSProviders

/// The SMS building blocks without a database: how a body is encoded and split, phone number normalization, Twilio's
/// webhook signature, the Twilio and Vonage providers against local stand-ins that check what the real APIs check,
/// and failover along the provider chain.
@Suite("SMS providers")
struct SMSProviderTests {
    static func message(to number: String, body: String = "Your code is 123456", callback: String? = nil) -> SMSMessage {
        SMSMessage(to: number, body: body, messageID: UUID().uuidString.lowercased(), statusCallback: callback)
    }

    static func withProviders<T: Sendable>(
        token: String = FakeSMSProviders.authToken,
        vonageSecret: String = FakeSMSProviders.vonageSecret,
        _ body: @Sendable (FakeSMSProviders, TwilioProvider, VonageProvider) async throws -> T
    ) async throws -> T {
        try await FakeSMSProviders.with { fake in
            let twilio = TwilioProvider(
                http: HTTPClient.shared,
                baseURL: fake.twilioURL,
                accountSID: FakeSMSProviders.accountSID,
                authToken: token,
                from: FakeSMSProviders.from,
                messagingServiceSID: nil
            )
            let vonage = VonageProvider(
                http: HTTPClient.shared,
                baseURL: fake.vonageURL,
                apiKey: FakeSMSProviders.vonageKey,
                apiSecret: vonageSecret,
                from: "NotifyTest"
            )
            return try await body(fake, twilio, vonage)
        }
    }

    /// A unique test number ending in `suffix`, which chooses the stand-ins' answer.
    static func number(endingIn suffix: String = "") -> String {
        let digits = String(UInt64.random(in: 100_000_000...999_999_999))
        return "+4915" + digits.prefix(9 - suffix.count) + suffix
    }

    // MARK: - Encoding and segments

    @Test("GSM-7: 160 septets are one segment, 161 are two of at most 153")
    func gsmBoundary() {
        let single = SMSText(String(repeating: "a", count: 160))
        #expect(single == SMSText(String(repeating: "a", count: 160)))
        #expect(single.encoding == .gsm7 && single.characters == 160 && single.segments == 1)
        let double = SMSText(String(repeating: "a", count: 161))
        #expect(double.encoding == .gsm7 && double.characters == 161 && double.segments == 2)
        #expect(SMSText(String(repeating: "a", count: 306)).segments == 2)
        #expect(SMSText(String(repeating: "a", count: 307)).segments == 3)
    }

    @Test("GSM-7 extension characters take two septets, and an escape pair is never split across segments")
    func gsmExtension() {
        for character in ["^", "{", "}", "\\", "[", "~", "]", "|", "€", "\u{0C}"] {
            let text = SMSText(character)
            #expect(text.encoding == .gsm7 && text.characters == 2, "\(character.debugDescription)")
        }
        #expect(SMSText(String(repeating: "a", count: 158) + "{").segments == 1)
        #expect(SMSText(String(repeating: "a", count: 159) + "{").segments == 2)
        // 306 septets would fill two parts, but the euro sign cannot start at the 153rd septet of the first.
        let straddling = SMSText(String(repeating: "a", count: 152) + "€" + String(repeating: "a", count: 152))
        #expect(straddling.characters == 306)
        #expect(straddling.segments == 3)
        // CR LF is one Swift Character but two septets.
        #expect(SMSText("a\r\nb").characters == 4)
    }

    @Test("é is in the GSM alphabet, ê is not and makes the whole body UCS-2")
    func accents() {
        let gsm = SMSText("Café Ça va? Ø Å ß Δ €")
        #expect(gsm.encoding == .gsm7)
        #expect(gsm.characters == 22)
        let ucs2 = SMSText("Fête")
        #expect(ucs2.encoding == .ucs2 && ucs2.characters == 4 && ucs2.segments == 1)
        #expect(SMSText("ç").encoding == .ucs2, "GSM 03.38 has only the capital Ç")
        #expect(SMSText("`").encoding == .ucs2)
    }

    @Test("UCS-2: 70 units are one segment, 71 are two of at most 67")
    func ucs2Boundary() {
        let single = SMSText(String(repeating: "ê", count: 70))
        #expect(single.encoding == .ucs2 && single.characters == 70 && single.segments == 1)
        let double = SMSText(String(repeating: "ê", count: 71))
        #expect(double.characters == 71 && double.segments == 2)
        #expect(SMSText(String(repeating: "ê", count: 134)).segments == 2)
        #expect(SMSText(String(repeating: "ê", count: 135)).segments == 3)
    }

    @Test("an emoji is a surrogate pair: two UCS-2 units, never split across segments")
    func surrogatePairs() {
        let emoji = SMSText("😀")
        #expect(emoji.encoding == .ucs2 && emoji.characters == 2 && emoji.segments == 1)
        let straddling = SMSText(String(repeating: "ê", count: 66) + "😀" + String(repeating: "ê", count: 66))
        #expect(straddling.characters == 134)
        #expect(straddling.segments == 3)
    }

    @Test("an empty body is no segment; ten parts is the most we send")
    func emptyAndLimit() {
        let empty = SMSText("")
        #expect(empty.encoding == .gsm7 && empty.characters == 0 && empty.segments == 0)
        #expect(SMSText.maxSegments == 10)
        #expect(SMSText(String(repeating: "a", count: 153 * 10)).segments == 10)
        #expect(SMSText(String(repeating: "a", count: 153 * 10 + 1)).segments == 11)
    }

    // MARK: - Phone numbers

    @Test("phone numbers: E.164 with spaces, hyphens, dots and parentheses is normalized; anything else is refused")
    func phoneNumbers() {
        #expect(PhoneNumber.normalize("+4915112345678") == "+4915112345678")
        #expect(PhoneNumber.normalize(" +49 151 1234-5678 ") == "+4915112345678")
        #expect(PhoneNumber.normalize("+1 (415) 555.0123") == "+14155550123")
        #expect(PhoneNumber.normalize("+12345678") == "+12345678", "8 digits")
        #expect(PhoneNumber.normalize("+123456789012345") == "+123456789012345", "15 digits")
        for refused in [
            "", "+", "4915112345678", "004915112345678", "+04915112345678", "+1234567", "+1234567890123456", "+49 151 CALL-ME",
            "++4915112345678", "+49+15112345678", "+４９１５１１２３４５６７８", "+49/151/12345678", "tel:+4915112345678",
        ] {
            #expect(PhoneNumber.normalize(refused) == nil, "\(refused.debugDescription)")
        }
        #expect(PhoneNumber.problem == "must be a phone number in E.164 form, e.g. +14155550123")
    }

    // MARK: - Form encoding and Twilio's signature

    @Test("form encoding round-trips, escapes everything outside the unreserved set, and decodes + as a space")
    func formEncoding() throws {
        let fields = [("Body", "Größe: 5 & 6 = 11 + 1% ~ok"), ("To", "+4915112345678"), ("empty", "")]
        let encoded = FormEncoding.encode(fields)
        #expect(encoded == "Body=Gr%C3%B6%C3%9Fe%3A%205%20%26%206%20%3D%2011%20%2B%201%25%20~ok&To=%2B4915112345678&empty=")
        let decoded = FormEncoding.decode(encoded)
        #expect(decoded.map(\.0) == fields.map(\.0) && decoded.map(\.1) == fields.map(\.1))
        let twilio = FormEncoding.decode("Body=STOP+now&From=%2B4915112345678&flag&bad=100%")
        #expect(twilio.map(\.0) == ["Body", "From", "flag", "bad"])
        #expect(twilio.map(\.1) == ["STOP now", "+4915112345678", "", "100%"])
    }

    static let twilioExampleURL = "https://mycompany.com/myapp.php?foo=1&bar=2"
    static let twilioExampleParameters = [
        ("CallSid", "CA1234567890ABCDE"), ("Caller", "+12349013030"), ("Digits", "1234"), ("From", "+12349013030"), ("To", "+18005551212"),
    ]

    @Test("Twilio's signature: the published example, in any parameter order")
    func twilioSignatureExample() {
        let signature = TwilioSignature.sign(url: Self.twilioExampleURL, parameters: Self.twilioExampleParameters, authToken: "12345")
        #expect(signature == "0/KCTR6DLpKmkAf8muzZqo1nDgQ=")
        #expect(
            TwilioSignature.verify(
                signature: "0/KCTR6DLpKmkAf8muzZqo1nDgQ=",
                url: Self.twilioExampleURL,
                parameters: Self.twilioExampleParameters.reversed(),
                authToken: "12345"
            )
        )
        #expect(
            FakeSMSProviders.twilioSignature(url: Self.twilioExampleURL, fields: Self.twilioExampleParameters, token: "12345")
                == signature,
            "the stand-in signs as Twilio does"
        )
    }

    @Test("Twilio's signature: a tampered parameter, another URL, another token or garbage fails")
    func twilioSignatureTampered() {
        let good = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        var tampered = Self.twilioExampleParameters
        tampered[2] = ("Digits", "1235")
        #expect(!TwilioSignature.verify(signature: good, url: Self.twilioExampleURL, parameters: tampered, authToken: "12345"))
        #expect(
            !TwilioSignature.verify(
                signature: good,
                url: Self.twilioExampleURL,
                parameters: Self.twilioExampleParameters + [("Extra", "")],
                authToken: "12345"
            )
        )
        #expect(
            !TwilioSignature.verify(
                signature: good,
                url: "https://mycompany.com/myapp.php?foo=1&bar=3",
                parameters: Self.twilioExampleParameters,
                authToken: "12345"
            )
        )
        #expect(!TwilioSignature.verify(signature: good, url: Self.twilioExampleURL, parameters: Self.twilioExampleParameters, authToken: "12346"))
        for garbage in ["", "not base64!", "AAAA", String(good.dropLast(2)) + "A="] {
            #expect(
                !TwilioSignature.verify(signature: garbage, url: Self.twilioExampleURL, parameters: Self.twilioExampleParameters, authToken: "12345")
            )
        }
    }

    @Test("repeated parameter names are signed sorted by value")
    func twilioSignatureRepeatedNames() {
        let ordered = TwilioSignature.sign(url: "https://x.test/h", parameters: [("A", "1"), ("A", "2"), ("B", "3")], authToken: "t")
        let shuffled = TwilioSignature.sign(url: "https://x.test/h", parameters: [("B", "3"), ("A", "2"), ("A", "1")], authToken: "t")
        #expect(ordered == shuffled)
        #expect(ordered == FakeSMSProviders.twilioSignature(url: "https://x.test/h", fields: [("A", "1"), ("A", "2"), ("B", "3")], token: "t"))
    }

    @Test("the stand-in's status callbacks and inbound messages verify with TwilioSignature and decode with FormEncoding")
    func playedWebhooksVerify() async throws {
        let received = NIOLockedValueBox<[(valid: Bool, fields: [(String, String)])]>([])
        let port = NIOLockedValueBox(0)
        let router = Router()
        router.post("/webhooks/sms/twilio") { request, _ -> Response in
            let fields = FormEncoding.decode(String(buffer: try await request.body.collect(upTo: 1 << 16)))
            let valid = TwilioSignature.verify(
                signature: request.headers[HTTPField.Name("X-Twilio-Signature")!] ?? "",
                url: "http://127.0.0.1:\(port.withLockedValue { $0 })\(request.uri.string)",
                parameters: fields,
                authToken: FakeSMSProviders.authToken
            )
            received.withLockedValue { $0.append((valid, fields)) }
            return Response(status: valid ? .noContent : .forbidden)
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in port.withLockedValue { $0 = channel.localAddress?.port ?? 0 } }
        )
        try await Self.withProviders { fake, twilio, _ in
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await app.run() }
                defer { group.cancelAll() }
                let listening = try await eventually("webhook receiver listening") { port.withLockedValue { $0 > 0 ? $0 : nil } }
                let url = "http://127.0.0.1:\(listening)/webhooks/sms/twilio?notification_id=n-1&x=a%20b"
                let number = Self.number()
                let sid = try await twilio.send(Self.message(to: number))

                #expect(
                    try await fake.sendStatusCallback(
                        to: url,
                        sid: sid,
                        status: "undelivered",
                        errorCode: "30003",
                        signWith: FakeSMSProviders.authToken
                    ) == 204
                )
                let callback = try #require(received.withLockedValue { $0.last })
                #expect(callback.valid)
                let fields = Dictionary(callback.fields, uniquingKeysWith: { $1 })
                #expect(fields["MessageSid"] == sid && fields["MessageStatus"] == "undelivered" && fields["ErrorCode"] == "30003")
                #expect(fields["To"] == number && fields["From"] == FakeSMSProviders.from && fields["AccountSid"] == FakeSMSProviders.accountSID)

                #expect(
                    try await fake.sendInbound(
                        to: url,
                        from: number,
                        to: FakeSMSProviders.from,
                        body: "STOP please + thanks",
                        signWith: FakeSMSProviders.authToken
                    ) == 204
                )
                let inbound = Dictionary(try #require(received.withLockedValue { $0.last }).fields, uniquingKeysWith: { $1 })
                #expect(inbound["Body"] == "STOP please + thanks" && inbound["From"] == number && inbound["NumMedia"] == "0")

                #expect(try await fake.sendStatusCallback(to: url, sid: sid, status: "delivered", signWith: "another-token") == 403)
            }
        }
    }

    // MARK: - Twilio

    @Test("Twilio: the fields Twilio takes, Basic auth, and the message sid returned")
    func twilioSends() async throws {
        try await Self.withProviders { fake, twilio, _ in
            let number = Self.number()
            let message = Self.message(to: number, body: "Größe: 5 & 6 + 1", callback: "https://notify.test/webhooks/sms/twilio?notification_id=n-1")
            let sid = try await twilio.send(message)
            #expect(sid.hasPrefix("SM") && sid.count == 34)
            let sent = try #require(fake.sent(id: sid))
            #expect(sent.provider == "twilio")
            #expect(sent.to == number)
            #expect(sent.from == FakeSMSProviders.from, "the configured sender, the message naming none")
            #expect(sent.messagingServiceSID == nil)
            #expect(sent.body == "Größe: 5 & 6 + 1")
            #expect(sent.statusCallback == "https://notify.test/webhooks/sms/twilio?notification_id=n-1")

            var own = Self.message(to: number)
            own.from = "+15005550009"
            let ownSid = try await twilio.send(own)
            #expect(fake.sent(id: ownSid)?.from == "+15005550009", "a message's own sender wins")
        }
    }

    @Test("Twilio: a messaging service is sent instead of From")
    func twilioMessagingService() async throws {
        try await FakeSMSProviders.with { fake in
            let twilio = TwilioProvider(
                http: HTTPClient.shared,
                baseURL: fake.twilioURL,
                accountSID: FakeSMSProviders.accountSID,
                authToken: FakeSMSProviders.authToken,
                from: nil,
                messagingServiceSID: "MG0123456789abcdef0123456789abcdef"
            )
            let sid = try await twilio.send(Self.message(to: Self.number()))
            let sent = try #require(fake.sent(id: sid))
            #expect(sent.messagingServiceSID == "MG0123456789abcdef0123456789abcdef")
            #expect(sent.from == nil)
            #expect(sent.statusCallback == nil)
        }
    }

    @Test("Twilio: invalid number, opted out, rate limited and down are classified by Twilio's error code and status")
    func twilioErrors() async throws {
        try await Self.withProviders { fake, twilio, _ in
            let invalid = await #expect(throws: SMSProviderError.self) { try await twilio.send(Self.message(to: Self.number(endingIn: "0000"))) }
            #expect(invalid?.code == .invalidNumber && invalid?.permanent == true && invalid?.status == 400)
            #expect(invalid?.detail.contains("21211") == true, "operators see Twilio's code")
            #expect(invalid?.clientText == "invalid_number: \(SMSErrorCode.invalidNumber.reason) (400)", "clients never see Twilio's words")

            let optedOut = await #expect(throws: SMSProviderError.self) { try await twilio.send(Self.message(to: Self.number(endingIn: "0001"))) }
            #expect(optedOut?.code == .recipientOptedOut && optedOut?.permanent == true)

            let limited = await #expect(throws: SMSProviderError.self) { try await twilio.send(Self.message(to: Self.number(endingIn: "0429"))) }
            #expect(limited?.code == .rateLimited && limited?.permanent == false && limited?.retryAfterSeconds == 1)

            let flaky = Self.number(endingIn: "0503")
            let down = await #expect(throws: SMSProviderError.self) { try await twilio.send(Self.message(to: flaky)) }
            #expect(down?.code == .providerUnavailable && down?.permanent == false && down?.status == 503)
            let sid = try await twilio.send(Self.message(to: flaky))
            #expect(fake.sent(id: sid)?.to == flaky, "the second try goes through")
            #expect(fake.requestCount("twilio") == 5)
        }
    }

    @Test("Twilio's error codes, whatever the status they come with")
    func twilioCodes() {
        let expected: [(Int, SMSErrorCode, Bool)] = [
            (21211, .invalidNumber, true), (21614, .invalidNumber, true), (21217, .invalidNumber, true),
            (21610, .recipientOptedOut, true), (21612, .unreachableNumber, true), (21408, .unreachableNumber, true),
            (30003, .unreachableNumber, true), (30006, .unreachableNumber, true), (21602, .rejectedByProvider, true),
        ]
        for (code, errorCode, permanent) in expected {
            let error = TwilioProvider.classify(status: 400, code: code, message: "m", retryAfter: nil)
            #expect(error.code == errorCode && error.permanent == permanent, "\(code)")
        }
        #expect(TwilioProvider.classify(status: 403, code: 20003, message: "", retryAfter: nil).code == .providerAuthFailed)
        #expect(TwilioProvider.classify(status: 502, code: nil, message: "", retryAfter: "7").retryAfterSeconds == 7)
    }

    @Test("Twilio: refused credentials are an auth failure that never carries the token")
    func twilioAuthFailure() async throws {
        let token = "wrong-token-\(UUID().uuidString)"
        try await Self.withProviders(token: token) { fake, twilio, _ in
            let error = await #expect(throws: SMSProviderError.self) { try await twilio.send(Self.message(to: Self.number())) }
            #expect(error?.code == .providerAuthFailed && error?.status == 401)
            #expect(error?.permanent == false, "a configuration problem: the next provider should send")
            #expect(error.map { !$0.detail.contains(token) && !"\($0)".contains(token) && !$0.clientText.contains(token) } == true)
            let basic = Data("\(FakeSMSProviders.accountSID):\(token)".utf8).base64EncodedString()
            #expect(error.map { !$0.detail.contains(basic) } == true)
            #expect(fake.sent.withLockedValue { $0.isEmpty })
        }
    }

    @Test("a provider that cannot be reached is unavailable, transient")
    func unreachable() async throws {
        let twilio = TwilioProvider(
            http: HTTPClient.shared,
            baseURL: "http://127.0.0.1:1",
            accountSID: FakeSMSProviders.accountSID,
            authToken: FakeSMSProviders.authToken,
            from: FakeSMSProviders.from,
            messagingServiceSID: nil,
            timeout: .milliseconds(300)
        )
        let error = await #expect(throws: SMSProviderError.self) { try await twilio.send(Self.message(to: Self.number())) }
        #expect(error?.code == .providerUnavailable && error?.permanent == false)
        #expect(error?.detail.contains(FakeSMSProviders.authToken) == false)
    }

    @Test("a body over ten segments is refused before any request")
    func tooLong() async throws {
        try await Self.withProviders { fake, twilio, vonage in
            let body = String(repeating: "ê", count: 67 * 10 + 1)
            for provider in [twilio, vonage] as [any SMSProvider] {
                let error = await #expect(throws: SMSProviderError.self) { try await provider.send(Self.message(to: Self.number(), body: body)) }
                #expect(error?.code == .messageTooLong && error?.permanent == true)
            }
            #expect(fake.requestCount("twilio") == 0 && fake.requestCount("vonage") == 0)
        }
    }

    // MARK: - Vonage

    @Test("Vonage: digits without +, client-ref, callback, unicode only for UCS-2, and the message id returned")
    func vonageSends() async throws {
        try await Self.withProviders { fake, _, vonage in
            let number = Self.number()
            var message = Self.message(to: number, body: "Hello & welcome", callback: "https://notify.test/webhooks/sms/vonage")
            let id = try await vonage.send(message)
            let sent = try #require(fake.sent(id: id))
            #expect(sent.provider == "vonage")
            #expect(sent.to == String(number.dropFirst()))
            #expect(sent.from == "NotifyTest")
            #expect(sent.body == "Hello & welcome")
            #expect(sent.type == nil, "GSM-7 is Vonage's default")
            #expect(sent.clientRef == message.messageID)
            #expect(sent.statusCallback == "https://notify.test/webhooks/sms/vonage")

            message = Self.message(to: number, body: "Fête 😀")
            message.from = "+15005550006"
            let unicode = try #require(fake.sent(id: try await vonage.send(message)))
            #expect(unicode.type == "unicode")
            #expect(unicode.body == "Fête 😀")
            #expect(unicode.from == "15005550006")
            #expect(unicode.statusCallback == nil)
        }
    }

    @Test("Vonage: a refused number is permanent, refused credentials an auth failure without the secret")
    func vonageErrors() async throws {
        try await Self.withProviders { _, _, vonage in
            let invalid = await #expect(throws: SMSProviderError.self) { try await vonage.send(Self.message(to: Self.number(endingIn: "0000"))) }
            #expect(invalid?.code == .invalidNumber && invalid?.permanent == true)
            #expect(invalid?.detail.contains("Invalid to number") == true)
        }
        let secret = "wrong-secret-\(UUID().uuidString)"
        try await Self.withProviders(vonageSecret: secret) { fake, _, vonage in
            let error = await #expect(throws: SMSProviderError.self) { try await vonage.send(Self.message(to: Self.number())) }
            #expect(error?.code == .providerAuthFailed && error?.permanent == false)
            #expect(error.map { !$0.detail.contains(secret) && !"\($0)".contains(secret) } == true)
            #expect(fake.sent.withLockedValue { $0.isEmpty })
        }
    }

    @Test("Vonage's status table")
    func vonageStatuses() {
        let expected: [(String, SMSErrorCode, Bool)] = [
            ("1", .rateLimited, false), ("2", .rejectedByProvider, true), ("3", .invalidNumber, true), ("4", .providerAuthFailed, false),
            ("5", .providerUnavailable, false), ("6", .invalidNumber, true), ("7", .unreachableNumber, true),
            ("8", .providerAuthFailed, false), ("9", .rejectedByProvider, false), ("15", .rejectedByProvider, true),
            ("29", .unreachableNumber, true),
        ]
        for (status, code, permanent) in expected {
            let error = VonageProvider.classify(status: status, text: "t")
            #expect(error.code == code && error.permanent == permanent, "status \(status)")
        }
    }

    // MARK: - The chain

    static func chain(_ providers: [any SMSProvider], breakers: [CircuitBreaker]? = nil) -> SMSProviderChain {
        SMSProviderChain(
            providers.enumerated().map { index, provider in
                SMSProviderChain.Link(provider: provider, breaker: breakers?[index] ?? CircuitBreaker(name: "sms-test-\(provider.name)"))
            }
        )
    }

    @Test("chain: Twilio down, Vonage takes the message in the same attempt")
    func failover() async throws {
        try await Self.withProviders { fake, twilio, vonage in
            let chain = Self.chain([twilio, vonage])
            #expect(chain.names == ["twilio", "vonage"])
            let number = Self.number(endingIn: "0503")
            let result = await chain.send(Self.message(to: number), logger: Logger(label: "test"))
            #expect(result.attempts.map(\.provider) == ["twilio", "vonage"])
            #expect(result.attempts.map(\.outcome) == [.failed, .accepted])
            #expect(result.attempts[0].errorCode == "provider_unavailable")
            #expect(result.attempts[0].error == "provider_unavailable: \(SMSErrorCode.providerUnavailable.reason) (503)")
            let sent = try #require(result.sent)
            #expect(sent.provider == "vonage")
            #expect(fake.sent(id: try #require(sent.providerMessageID))?.to == String(number.dropFirst()))
            #expect(!result.permanent && !result.allSkipped)
        }
    }

    @Test("chain: an invalid number is permanent, and Vonage is not tried")
    func permanentStops() async throws {
        try await Self.withProviders { fake, twilio, vonage in
            let result = await Self.chain([twilio, vonage]).send(Self.message(to: Self.number(endingIn: "0000")), logger: Logger(label: "test"))
            #expect(result.attempts.map(\.provider) == ["twilio"])
            #expect(result.attempts.map(\.outcome) == [.rejected])
            #expect(result.attempts[0].errorCode == "invalid_number")
            #expect(result.permanent && result.sent == nil)
            #expect(fake.requestCount("vonage") == 0)
        }
    }

    @Test("chain: an open circuit is skipped without a request, its wait becomes the retry time")
    func openCircuitSkipped() async throws {
        try await Self.withProviders { fake, twilio, vonage in
            let clock = ManualClock()
            let breaker = CircuitBreaker(
                name: "sms-test-open",
                configuration: .init(consecutiveFailures: 1, baseOpen: .seconds(5)),
                clock: clock
            )
            _ = breaker.allow()
            breaker.record(success: false)
            let result = await Self.chain([twilio, vonage], breakers: [breaker, CircuitBreaker(name: "sms-test-vonage")])
                .send(Self.message(to: Self.number()), logger: Logger(label: "test"))
            #expect(result.attempts.map(\.outcome) == [.skipped, .accepted])
            #expect(result.attempts[0].errorCode == "circuit_open")
            #expect(result.retryAfter == .seconds(5))
            #expect(fake.requestCount("twilio") == 0)
        }
    }
}
