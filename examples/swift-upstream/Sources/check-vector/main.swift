import DoormanVerify
import Foundation

// The vector of Tests/GatewayCoreTests/UpstreamSignatureTests.swift (also checked by examples/upstream.py --self-test).
let headers = [
    "x-doorman-upstream": "pms", "x-doorman-timestamp": "1795400000", "x-doorman-request-id": "abc123", "x-doorman-user": "usr_1", "x-doorman-key": "key_1",
    "x-doorman-scopes": #"["pms:*","caf\u00e9"]"#, "x-doorman-properties": #"["hotel-1"]"#, "x-doorman-property": "hotel-1",
    "x-doorman-signature": "v2=c3dbd9c326ef240051ba72a3a9c7a15225d4270e188e2982887731c3cb5a8e76",
]
let body = Data(#"{"room":101}"#.utf8)
let secret = Data("0123456789abcdef0123".utf8)
let at = Date(timeIntervalSince1970: 1_795_400_000)
func valid(_ upstream: String = "pms", headers: [String: String] = headers, body: Data = body, at: Date = at) -> Bool {
    doormanSignatureIsValid(method: "POST", target: "/api/checkIn?x=1", upstream: upstream, headers: headers, body: body, secret: secret, now: at)
}
var ok = valid()
ok = ok && !valid(body: Data(#"{"room":102}"#.utf8))
ok = ok && !valid(at: at.addingTimeInterval(301))
ok = ok && !valid("billing")   // signed for pms: another upstream sharing the secret refuses it
ok = ok && !valid("billing", headers: headers.merging(["x-doorman-upstream": "billing"]) { $1 })
print(ok ? "swift verify: vector ok" : "swift verify: vector FAILED")
exit(ok ? 0 : 1)
