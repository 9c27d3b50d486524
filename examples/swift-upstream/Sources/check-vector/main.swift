import DoormanVerify
import Foundation

// The vector of Tests/GatewayCoreTests/UpstreamSignatureTests.swift (also checked by examples/upstream.py --self-test).
let headers = [
    "x-doorman-timestamp": "1795400000", "x-doorman-request-id": "abc123", "x-doorman-user": "usr_1", "x-doorman-key": "key_1",
    "x-doorman-scopes": #"["pms:*","caf\u00e9"]"#, "x-doorman-properties": #"["hotel-1"]"#, "x-doorman-property": "hotel-1",
    "x-doorman-signature": "v1=a091c675ddd24bfa455b2f5d0a07bebeb26c2379840a649da824814dda5bf0de",
]
let body = Data(#"{"room":101}"#.utf8)
let secret = Data("0123456789abcdef0123".utf8)
let at = Date(timeIntervalSince1970: 1_795_400_000)
var ok = doormanSignatureIsValid(method: "POST", target: "/api/checkIn?x=1", headers: headers, body: body, secret: secret, now: at)
ok = ok && !doormanSignatureIsValid(method: "POST", target: "/api/checkIn?x=1", headers: headers, body: Data(#"{"room":102}"#.utf8), secret: secret, now: at)
ok = ok && !doormanSignatureIsValid(method: "POST", target: "/api/checkIn?x=1", headers: headers, body: body, secret: secret, now: at.addingTimeInterval(301))
print(ok ? "swift verify: vector ok" : "swift verify: vector FAILED")
exit(ok ? 0 : 1)
