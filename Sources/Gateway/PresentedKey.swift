// SPDX-License-Identifier: Apache-2.0
import WireCodec

/// Finds the API key a request presents: `X-API-Key`, `user-api-key`, `Authorization: apiKey <k>`
/// or `Authorization: Bearer <k>` (scheme case-insensitive). Two different keys are ambiguous: 400.
enum PresentedKey {
    static func find(in head: HTTPRequestHead) -> Result<String?, HandshakeRejection> {
        // One pass, no sets: this runs on every handshake.
        var found: Substring?
        for header in head.headers {
            let candidate: Substring
            switch header.name {
            case "x-api-key", "user-api-key":
                candidate = header.value[...].trimmingOWS
            case "authorization":
                let parts = header.value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
                guard parts.count == 2 else { continue }
                let scheme = parts[0].lowercased()
                guard scheme == "apikey" || scheme == "bearer" else { continue }
                candidate = parts[1].trimmingOWS
            default:
                continue
            }
            if let found, found != candidate { return .failure(HandshakeRejection(status: 400, reason: "conflicting_keys")) }
            found = candidate
        }
        return .success(found.map(String.init))
    }
}
