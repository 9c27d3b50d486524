import Crypto
import Foundation

/// Verifies that Doorman signed a forwarded call for this upstream, for an upstream written in
/// Swift (Linux and Apple platforms, on swift-crypto). `upstream` is our name in Doorman's
/// `--upstream` (a call signed for another upstream sharing the secret fails); `headers` maps
/// lowercased header names to values. Refusing replays is the caller's part: remember
/// `x-doorman-request-id` values for 600 s.
public func doormanSignatureIsValid(method: String, target: String, upstream: String, headers: [String: String], body: Data,
                                    secret: Data, now: Date = Date()) -> Bool {
    func h(_ name: String) -> String { headers[name] ?? "" }
    guard h("x-doorman-upstream") == upstream else { return false }
    guard let timestamp = Int(h("x-doorman-timestamp")), abs(Int(now.timeIntervalSince1970) - timestamp) <= 300 else { return false }
    let bodyDigest = SHA256.hash(data: body).map { String(format: "%02x", $0) }.joined()
    let canonical = ["v2", method, target, upstream, String(timestamp), h("x-doorman-request-id"), h("x-doorman-user"), h("x-doorman-key"),
                     h("x-doorman-scopes"), h("x-doorman-properties"), h("x-doorman-property"), bodyDigest].joined(separator: "\n")
    let given = h("x-doorman-signature")
    guard given.hasPrefix("v2="), let mac = Data(hex: String(given.dropFirst(3))) else { return false }
    return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: Data(canonical.utf8), using: SymmetricKey(data: secret))
}

extension Data {
    init?(hex: String) {
        var bytes: [UInt8] = []
        var it = hex.utf8.makeIterator()
        while let hi = it.next(), let lo = it.next() {
            guard let h = UInt8(String(UnicodeScalar(hi)), radix: 16), let l = UInt8(String(UnicodeScalar(lo)), radix: 16) else { return nil }
            bytes.append(h << 4 | l)
        }
        guard bytes.count * 2 == hex.utf8.count else { return nil }
        self.init(bytes)
    }
}
