import Foundation

/// Which sender addresses templates may use (`NOTIFY_MAIL_FROM_ALLOWED`): exact addresses and whole domains
/// (`@example.com`), compared case-insensitively. The template service refuses others; the email worker checks again
/// at send time, because the list may have shrunk since the template was saved.
public struct SenderPolicy: Sendable, Equatable {
    public let addresses: Set<String>
    public let domains: Set<String>

    public init(_ list: String) {
        var addresses: Set<String> = []
        var domains: Set<String> = []
        for entry in list.split(separator: ",") {
            let item = entry.trimmingCharacters(in: .whitespaces).lowercased()
            if item.hasPrefix("@"), item.count > 1 {
                domains.insert(String(item.dropFirst()))
            } else if !item.isEmpty {
                addresses.insert(item)
            }
        }
        self.addresses = addresses
        self.domains = domains
    }

    public var isEmpty: Bool { addresses.isEmpty && domains.isEmpty }

    public func allows(_ address: String) -> Bool {
        let lowered = address.lowercased()
        if addresses.contains(lowered) { return true }
        guard let at = lowered.lastIndex(of: "@") else { return false }
        return domains.contains(String(lowered[lowered.index(after: at)...]))
    }
}
