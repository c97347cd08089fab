import Foundation
import NIOHTTP1
import NotificationModel
import PostgresNIO
import Testing

/// Quiet hours and time zones: non-urgent notifications inside a user's window wait for its end; urgent ones go.
@Suite("Quiet hours")
struct QuietHoursTests {
    static func date(_ text: String) -> Date { ISO8601DateFormatter().date(from: text)! }

    @Test("windows on a fixed clock: same-day and across midnight, in the user's zone, across a daylight-saving change")
    func windows() {
        let berlin = TimeZone(identifier: "Europe/Berlin")!
        let night = QuietWindow(start: "22:00", end: "07:00")
        // 23:30 in Berlin (UTC+1 in December): until 07:00 the next morning.
        #expect(night.end(containing: Self.date("2026-12-05T22:30:00Z"), in: berlin) == Self.date("2026-12-06T06:00:00Z"))
        // 06:59 local: until 07:00 the same morning; 07:00 itself is outside; noon is outside.
        #expect(night.end(containing: Self.date("2026-12-06T05:59:00Z"), in: berlin) == Self.date("2026-12-06T06:00:00Z"))
        #expect(night.end(containing: Self.date("2026-12-06T06:00:00Z"), in: berlin) == nil)
        #expect(night.end(containing: Self.date("2026-12-06T11:00:00Z"), in: berlin) == nil)
        // The same instant is quiet in Berlin but not in New York (17:30 there).
        #expect(night.end(containing: Self.date("2026-12-05T22:30:00Z"), in: TimeZone(identifier: "America/New_York")!) == nil)
        let lunch = QuietWindow(start: "12:00", end: "13:30")
        #expect(lunch.end(containing: Self.date("2026-07-01T10:15:00Z"), in: berlin) == Self.date("2026-07-01T11:30:00Z"), "UTC+2 in July")
        #expect(lunch.end(containing: Self.date("2026-07-01T09:59:00Z"), in: berlin) == nil)
        // New York springs forward at 02:00 on 2026-03-08: a window 01:00–03:00 entered at 01:30 EST ends at 03:00 EDT.
        let early = QuietWindow(start: "01:00", end: "03:00")
        #expect(
            early.end(containing: Self.date("2026-03-08T06:30:00Z"), in: TimeZone(identifier: "America/New_York")!)
                == Self.date("2026-03-08T07:00:00Z")
        )
        #expect(QuietWindow(start: "7:00", end: "08:00").problem != nil)
        #expect(QuietWindow(start: "24:00", end: "08:00").problem != nil)
        #expect(QuietWindow(start: "08:00", end: "08:00").problem == "start and end must differ")
        #expect(night.problem == nil)
    }

    @Test("urgency: priority against the threshold of the template's category; a held notification goes at the window's end")
    func policy() {
        var problems: [String] = []
        let categories = QuietHoursPolicy.parseCategories("security=0, marketing=11", problems: &problems, variable: "V")
        #expect(problems.isEmpty)
        let policy = QuietHoursPolicy(urgentPriority: 8, byCategory: categories)
        #expect(policy.isUrgent(priority: 8, category: nil))
        #expect(!policy.isUrgent(priority: 7, category: "orders"))
        #expect(policy.isUrgent(priority: 0, category: "security"))
        #expect(!policy.isUrgent(priority: 10, category: "marketing"))
        let windows = ["email": QuietWindow(start: "22:00", end: "07:00")]
        let late = Self.date("2026-12-05T23:00:00Z")
        #expect(
            policy.hold(due: late, channel: "email", priority: 1, category: nil, quietHours: windows, timeZone: nil)
                == Self.date("2026-12-06T07:00:00Z")
        )
        #expect(policy.hold(due: late, channel: "email", priority: 9, category: nil, quietHours: windows, timeZone: nil) == nil)
        #expect(policy.hold(due: late, channel: "push", priority: 1, category: nil, quietHours: windows, timeZone: nil) == nil, "email only")
        #expect(
            policy.hold(due: late, channel: "email", priority: 1, category: nil, quietHours: windows, timeZone: "Asia/Tokyo") == nil,
            "08:00 in Tokyo"
        )
        _ = QuietHoursPolicy.parseCategories("security, x=12, =3", problems: &problems, variable: "V")
        #expect(problems.count == 3)
        #expect(TimeZoneName.validate("Europe/Berlin") == "Europe/Berlin")
        #expect(TimeZoneName.validate("Mars/Olympus") == nil)
        #expect(TimeZoneName.validate("UTC") == "UTC")
    }

    @Test("the user service keeps a time zone and quiet hours per channel, validated; null removes them")
    func userSettings() async throws {
        try await RouterHarness.with(.users) { stack in
            let id = try await stack.createUser()
            let url = "/api/v1/users/\(id)/"
            let bad = try await stack.call(
                .PATCH,
                url,
                json: [
                    "time_zone": "Mars/Olympus",
                    "quiet_hours": [
                        "email": ["start": "22:00", "end": "22:00"], "fax": ["start": "01:00", "end": "02:00"], "push": ["start": "9pm"],
                    ],
                ],
                headers: stack.serviceAuth
            )
            #expect(bad.status == 400)
            #expect(Set(bad.details.compactMap { $0["field"] }) == ["time_zone", "quiet_hours.email", "quiet_hours.fax", "quiet_hours.push"])
            let good = try await stack.call(
                .PATCH,
                url,
                json: ["time_zone": "Europe/Berlin", "quiet_hours": ["email": ["start": "22:00", "end": "07:00"]]],
                headers: stack.serviceAuth
            )
            #expect(good.status == 200, "\(good.json)")
            #expect(good.data["time_zone"] as? String == "Europe/Berlin")
            #expect(((good.data["quiet_hours"] as? [String: Any])?["email"] as? [String: String]) == ["start": "22:00", "end": "07:00"])
            let contact = try await stack.call(.GET, "/api/v1/users/\(id)/contact/", headers: stack.serviceAuth)
            #expect(contact.data["time_zone"] as? String == "Europe/Berlin", "the gateway reads them from the contact")
            let cleared = try await stack.call(.PATCH, url, json: ["time_zone": NSNull(), "quiet_hours": NSNull()], headers: stack.serviceAuth)
            #expect(cleared.data["time_zone"] is NSNull)
            #expect((cleared.data["quiet_hours"] as? [String: Any])?.isEmpty == true)
        }
    }

    @Test("the gateway holds non-urgent notifications inside the user's window until its end; urgent ones and other channels go at once")
    func gateway() async throws {
        try await RouterHarness.with(.gateway, extra: ["NOTIFY_QUIET_HOURS_URGENT_BY_CATEGORY": "security=0"]) { stack in
            try await stack.createTemplate(["code": "news", "name": "News", "channel": "email", "subject": "S", "body": "B"])
            try await stack.createTemplate([
                "code": "alert", "name": "Alert", "channel": "email", "category": "security", "subject": "S", "body": "B",
            ])
            let user = try await stack.createUser()
            // A window around now, in Tokyo: from an hour ago to an hour ahead (wall-clock minutes).
            let tokyo = TimeZone(identifier: "Asia/Tokyo")!
            var calendar = Calendar(identifier: .gregorian)
            calendar.timeZone = tokyo
            let formatter = DateFormatter()
            formatter.timeZone = tokyo
            formatter.dateFormat = "HH:mm"
            let start = formatter.string(from: Date().addingTimeInterval(-3600))
            let endInstant = Date().addingTimeInterval(3600)
            let end = formatter.string(from: endInstant)
            let expected = calendar.dateInterval(of: .minute, for: endInstant)!.start
            let set = try await stack.call(
                .PATCH,
                "\(stack.url(.users))/api/v1/users/\(user)/",
                json: ["time_zone": "Asia/Tokyo", "quiet_hours": ["email": ["start": start, "end": end]]],
                headers: stack.serviceAuth
            )
            #expect(set.status == 200, "\(set.json)")

            func send(_ code: String, _ requestID: String, priority: Int) async throws -> Stack.Reply {
                try await stack.send([
                    "notification_type": "email", "user_id": user, "template_code": code, "request_id": requestID, "priority": priority,
                ])
            }
            func jobState(_ reply: Stack.Reply) async throws -> String? {
                try await stack.scalar(
                    "SELECT state FROM jobs WHERE notification_id = \(UUID(uuidString: reply.data["notification_id"] as! String)!)",
                    as: String.self
                )
            }
            let quiet = try await send("news", "q-1", priority: 1)
            #expect(quiet.status == 202, "\(quiet.json)")
            let heldText = try #require(quiet.data["held_until"] as? String, "\(quiet.json)")
            let held = try #require(
                ISO8601DateFormatter().date(from: heldText)
                    ?? {
                        let fractional = ISO8601DateFormatter()
                        fractional.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
                        return fractional.date(from: heldText)
                    }()
            )
            #expect(abs(held.timeIntervalSince(expected)) < 1, "held until \(heldText), expected \(expected)")
            #expect(try await jobState(quiet) == "scheduled")
            let shown = try await stack.notification(quiet.data["notification_id"] as! String)
            #expect(shown.data["send_at"] as? String != nil)

            let urgent = try await send("news", "q-2", priority: 9)
            #expect(urgent.status == 202)
            #expect(urgent.data["held_until"] == nil)
            #expect(try await jobState(urgent) == "available")
            let security = try await send("alert", "q-3", priority: 0)
            #expect(security.data["held_until"] == nil, "security is urgent whatever its priority")
            #expect(try await jobState(security) == "available")
            // A replay answers as before (held_until is not part of what the request asked).
            #expect(try await send("news", "q-1", priority: 1).status == 200)
        }
    }
}
