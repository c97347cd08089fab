import Crypto
import Foundation

/// Throttles password logins (users and operators): each attempt takes one unit from the account's bucket and one
/// from the client address's bucket; either empty refuses the attempt before any password is checked (no bcrypt
/// work), whether the password would have been right or not, until the bucket refills (`Retry-After`). A
/// successful login refills the account's bucket. The buckets live in Redis, shared by every replica, with the
/// rate limiter's in-process fallback while Redis is unavailable.
public struct LoginThrottle: Sendable {
    let limiter: RateLimiter
    let scope: String
    public let perAccount: RateLimit
    public let perAddress: RateLimit

    /// `attemptsPerAccount` and `attemptsPerAddress` attempts at once, refilled evenly over `windowSeconds`.
    public init(limiter: RateLimiter, scope: String, attemptsPerAccount: Int, attemptsPerAddress: Int, windowSeconds: Int) {
        self.limiter = limiter
        self.scope = scope
        let window = Double(max(1, windowSeconds))
        perAccount = RateLimit(perSecond: Double(max(1, attemptsPerAccount)) / window, burst: max(1, attemptsPerAccount))
        perAddress = RateLimit(perSecond: Double(max(1, attemptsPerAddress)) / window, burst: max(1, attemptsPerAddress))
    }

    /// Takes an attempt; the refusing decision (with its Retry-After) when the account or the address has none left.
    public func admit(account: String, address: String?) async -> RateDecision? {
        let accountDecision = await limiter.check(accountKey(account), limit: perAccount)
        var refusals = accountDecision.allowed ? [] : [accountDecision]
        if let address {
            let addressDecision = await limiter.check("\(scope):login:addr:\(address)", limit: perAddress)
            if !addressDecision.allowed { refusals.append(addressDecision) }
        }
        return refusals.max { $0.retryAfterSeconds < $1.retryAfterSeconds }
    }

    /// After a successful login: the account's earlier failures no longer count.
    public func succeeded(account: String) async {
        await limiter.reset(accountKey(account))
    }

    /// The account (an email) is hashed: no address appears in Redis keys.
    func accountKey(_ account: String) -> String {
        let digest = SHA256.hash(data: Data(account.lowercased().trimmingCharacters(in: .whitespaces).utf8))
        return "\(scope):login:acct:" + digest.prefix(16).map { String(format: "%02x", $0) }.joined()
    }
}
