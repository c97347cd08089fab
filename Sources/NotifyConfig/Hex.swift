/// Lowercase hexadecimal digits.
private let hexDigits = Array("0123456789abcdef")

extension Sequence where Element == UInt8 {
    /// Lowercase hexadecimal, two digits a byte (without String(format:), which is slow).
    public var hexString: String {
        var text = ""
        for byte in self {
            text.append(hexDigits[Int(byte >> 4)])
            text.append(hexDigits[Int(byte & 0xF)])
        }
        return text
    }
}
