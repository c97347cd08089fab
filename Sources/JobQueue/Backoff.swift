import Foundation
import NotificationModel

/// Exponential backoff with jitter, capped: attempt n waits between half and all of `base * 2^(n-1)`.
public enum Backoff {
    public static func delay(attempt: Int, base: Duration, cap: Duration) -> Duration {
        let exponent = min(max(attempt - 1, 0), 30)
        let ceiling = min(base.inSeconds * pow(2, Double(exponent)), cap.inSeconds)
        let jittered = Double.random(in: (ceiling / 2)...max(ceiling, ceiling / 2 + 0.001))
        return .milliseconds(Int64(jittered * 1000))
    }
}
