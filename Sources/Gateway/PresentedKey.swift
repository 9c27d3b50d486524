// SPDX-License-Identifier: Apache-2.0
import WireCodec

/// Finds the API key a request presents: `X-API-Key`, `user-api-key`, `Authorization: apiKey <k>`
/// or `Authorization: Bearer <k>` (scheme case-insensitive). Two different keys are ambiguous: 400.
enum PresentedKey {
    static func find(in head: HTTPRequestHead) -> Result<String?, HandshakeRejection> {
        var found: [String] = head.values("x-api-key") + head.values("user-api-key")
        for value in head.values("authorization") {
            let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
            guard parts.count == 2 else { continue }
            let scheme = parts[0].lowercased()
            if scheme == "apikey" || scheme == "bearer" { found.append(String(parts[1].trimmingOWS)) }
        }
        let distinct = Set(found.map { String($0[...].trimmingOWS) })
        guard distinct.count <= 1 else { return .failure(HandshakeRejection(status: 400, reason: "conflicting_keys")) }
        return .success(distinct.first)
    }
}
