// SPDX-License-Identifier: Apache-2.0
import Testing
@testable import WireDeflate

/// What the Autobahn client sends in cases 13.1-13.7 (`PerMessageDeflateOffer.getExtensionString`
/// in autobahn/websocket/compress_deflate.py): it always offers client_no_context_takeover and a
/// bare client_max_window_bits, and per case asks for the server parameters.
private let autobahnBase = "permessage-deflate; client_no_context_takeover; client_max_window_bits"

/// Autobahn's client-side check of a response (`PerMessageDeflateResponse.parse`): one
/// permessage-deflate element, known parameters at most once, takeover flags bare, window bits
/// 8...15. It does not compare the response with its offer.
private func autobahnAccepts(_ response: String) -> Bool {
    let elements = ExtensionOffer.parse([response])
    guard elements.count == 1, elements[0].name == "permessage-deflate" else { return false }
    var seen: Set<String> = []
    for parameter in elements[0].parameters {
        guard seen.insert(parameter.name).inserted else { return false }
        switch parameter.name {
        case "server_no_context_takeover", "client_no_context_takeover":
            guard parameter.value == nil else { return false }
        case "server_max_window_bits", "client_max_window_bits":
            guard let value = parameter.value, let bits = Int(value), (8...15).contains(bits) else { return false }
        default:
            return false
        }
    }
    return true
}

@Suite struct PerMessageDeflateTests {
    static let autobahnCases: [(offer: String, response: String, takeoverResponse: String, serverBits: Int)] = [
        (autobahnBase,
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
         "permessage-deflate; client_no_context_takeover", 15),
        (autobahnBase + "; server_no_context_takeover",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover", 15),
        (autobahnBase + "; server_max_window_bits=9",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9",
         "permessage-deflate; client_no_context_takeover; server_max_window_bits=9", 9),
        (autobahnBase + "; server_max_window_bits=15",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
         "permessage-deflate; client_no_context_takeover; server_max_window_bits=15", 15),
        (autobahnBase + "; server_no_context_takeover; server_max_window_bits=9",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9", 9),
        (autobahnBase + "; server_no_context_takeover; server_max_window_bits=15",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15",
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=15", 15),
    ]

    @Test(arguments: 0..<6)
    func answersEachAutobahnCase13Offer(_ index: Int) throws {
        let test = Self.autobahnCases[index]
        let plain = try #require(PerMessageDeflate.negotiate([test.offer]))
        #expect(plain.responseHeaderValue == test.response)
        #expect(plain.parameters == DeflateParameters(serverNoContextTakeover: true, clientNoContextTakeover: true,
                                                      serverMaxWindowBits: test.serverBits))
        #expect(autobahnAccepts(plain.responseHeaderValue))

        let takeover = try #require(PerMessageDeflate.negotiate([test.offer], configuration: DeflateConfiguration(contextTakeover: true)))
        #expect(takeover.responseHeaderValue == test.takeoverResponse)
        #expect(takeover.parameters.serverNoContextTakeover == test.offer.contains("server_no_context_takeover"))
        #expect(takeover.parameters.clientNoContextTakeover)
        #expect(autobahnAccepts(takeover.responseHeaderValue))
    }

    @Test func takesTheFirstOfAutobahnCase13_7ThreeOffers() throws {
        // 13.7 offers (no takeover, 9 bits), (no takeover), () in one header, in that order.
        let header = "\(autobahnBase); server_no_context_takeover; server_max_window_bits=9, "
            + "\(autobahnBase); server_no_context_takeover, \(autobahnBase)"
        let result = try #require(PerMessageDeflate.negotiate([header]))
        #expect(result.parameters.serverMaxWindowBits == 9)
        #expect(result.responseHeaderValue
            == "permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=9")
    }

    @Test func answersABrowserOffer() throws {
        let result = try #require(PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits"]))
        #expect(result.responseHeaderValue == "permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        let takeover = try #require(PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits"],
                                                                configuration: DeflateConfiguration(contextTakeover: true)))
        #expect(takeover.responseHeaderValue == "permessage-deflate")
        #expect(takeover.parameters == DeflateParameters())
    }

    @Test(arguments: [
        "permessage-deflate; foo",                                              // unknown parameter
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",   // duplicate
        "permessage-deflate; client_max_window_bits; client_max_window_bits=10",  // duplicate
        "permessage-deflate; server_max_window_bits",                           // value required
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=08",                        // leading zero
        "permessage-deflate; server_max_window_bits=+9",
        "permessage-deflate; client_max_window_bits=0x9",
        "permessage-deflate; client_max_window_bits=",
        "permessage-deflate; server_no_context_takeover=true",                  // takes no value
        "permessage-deflate; client_no_context_takeover=\"\"",
        "permessage-deflate; server_max_window_bits=8",                         // zlib cannot deflate with 8
        "permessage-deflate; server_max_window_bits=\"1 0\"",                   // quoted, not a token
        "permessage-deflate server_no_context_takeover",                        // not the grammar
        "permessage-deflate;",
        "permessage-deflate; =9",
        "x-webkit-deflate-frame",
        "",
    ])
    func declinesAnOfferItMustNotOrCannotAccept(_ offer: String) {
        #expect(PerMessageDeflate.negotiate([offer]) == nil)
        // ... and falls back to the next offer, in the same header or the next one.
        #expect(PerMessageDeflate.negotiate([offer + ", permessage-deflate; server_max_window_bits=10"])?
            .parameters.serverMaxWindowBits == 10)
        #expect(PerMessageDeflate.negotiate([offer, "permessage-deflate"]) != nil)
    }

    @Test func readsQuotedValuesAndIgnoresCase() throws {
        let result = try #require(PerMessageDeflate.negotiate(["Permessage-Deflate; Server_Max_Window_Bits=\"10\"; CLIENT_MAX_WINDOW_BITS"]))
        #expect(result.parameters.serverMaxWindowBits == 10)
        #expect(result.responseHeaderValue.hasSuffix("; server_max_window_bits=10"))
    }

    @Test func neverAnswersClientMaxWindowBitsUnlessOffered() throws {   // RFC 7692 §7.1.2.2
        let small = DeflateConfiguration(clientMaxWindowBits: 10)
        let unoffered = try #require(PerMessageDeflate.negotiate(["permessage-deflate"], configuration: small))
        #expect(!unoffered.responseHeaderValue.contains("client_max_window_bits"))
        #expect(unoffered.parameters.clientMaxWindowBits == 15)

        let bare = try #require(PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits"], configuration: small))
        #expect(bare.responseHeaderValue.hasSuffix("; client_max_window_bits=10"))
        #expect(bare.parameters.clientMaxWindowBits == 10)

        let hinted = try #require(PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits=12"]))
        #expect(hinted.responseHeaderValue.hasSuffix("; client_max_window_bits=12"))
        let lower = try #require(PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits=9"], configuration: small))
        #expect(lower.parameters.clientMaxWindowBits == 9)
    }

    @Test func neverAsksAClientForAnEightBitWindow() throws {
        let result = try #require(PerMessageDeflate.negotiate(["permessage-deflate; client_max_window_bits=8"]))
        #expect(!result.responseHeaderValue.contains("client_max_window_bits"))
        #expect(result.parameters.clientMaxWindowBits == 15)
        #expect(MessageInflater(parameters: result.parameters, maxMessageBytes: 1).windowBits == 15)
    }

    @Test func announcesAServerWindowBelowFifteenAndNeverAboveTheOffer() throws {   // RFC 7692 §7.1.2.1
        let small = DeflateConfiguration(serverMaxWindowBits: 12)
        let unoffered = try #require(PerMessageDeflate.negotiate(["permessage-deflate"], configuration: small))
        #expect(unoffered.responseHeaderValue.hasSuffix("; server_max_window_bits=12"))
        let lower = try #require(PerMessageDeflate.negotiate(["permessage-deflate; server_max_window_bits=10"], configuration: small))
        #expect(lower.parameters.serverMaxWindowBits == 10)
        let higher = try #require(PerMessageDeflate.negotiate(["permessage-deflate; server_max_window_bits=15"], configuration: small))
        #expect(higher.parameters.serverMaxWindowBits == 12)
        #expect(higher.responseHeaderValue.hasSuffix("; server_max_window_bits=12"))
    }

    @Test func skipsOtherExtensionsAndPicksTheFirstAcceptableOffer() throws {
        let result = try #require(PerMessageDeflate.negotiate([
            "x-webkit-deflate-frame; no_context_takeover, permessage-deflate; server_max_window_bits=8",
            "foo; bar=\"a,b\", permessage-deflate; server_max_window_bits=11, permessage-deflate",
        ]))
        #expect(result.parameters.serverMaxWindowBits == 11)
    }

    @Test func negotiatesNothingWithoutAnOffer() {
        #expect(PerMessageDeflate.negotiate([]) == nil)
        #expect(PerMessageDeflate.negotiate(["foo, bar; baz=1"]) == nil)
    }

    @Test func parsesTheExtensionListGrammar() {   // RFC 6455 §9.1
        #expect(ExtensionOffer.parse([" a ; b = 1 ;c=\"x\\yz\" ,, d\t;e"]) == [
            ExtensionOffer(name: "a", parameters: [.init("b", "1"), .init("c", "xyz")]),
            ExtensionOffer(name: "d", parameters: [.init("e")]),
        ])
        // A malformed element is left out; the rest of the list is still read.
        #expect(ExtensionOffer.parse(["a; b=\"1,2\", c, d e, f;"]) == [ExtensionOffer(name: "c")])
        // An unterminated quoted string takes the rest of its header value with it.
        #expect(ExtensionOffer.parse(["a; b=\"1, c", "d"]) == [ExtensionOffer(name: "d")])
        #expect(ExtensionOffer.parse(["é; x"]).isEmpty)
    }
}
