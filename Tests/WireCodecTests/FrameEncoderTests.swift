// SPDX-License-Identifier: Apache-2.0

import Testing
import WireCodec

@Suite struct FrameEncoderTests {
    // MARK: RFC 6455 §5.7 vectors, byte for byte

    @Test func encodesUnmaskedHello() {
        #expect(FrameEncoder.encode(.text("Hello")) == [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
    }

    @Test func encodesMaskedHello() {
        #expect(
            FrameEncoder.encode(.text("Hello"), maskKey: rfcMaskKey)
                == [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
    }

    @Test func encodesFragmentedHello() {
        var out: [UInt8] = []
        FrameEncoder.append(WebSocketFrame(fin: false, opcode: .text, payload: [0x48, 0x65, 0x6c]), to: &out)
        FrameEncoder.append(WebSocketFrame(opcode: .continuation, payload: [0x6c, 0x6f]), to: &out)
        #expect(out == [0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f])
    }

    @Test func encodesPingAndMaskedPong() {
        #expect(FrameEncoder.encode(WebSocketFrame(opcode: .ping, payload: helloBytes)) == [0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f])
        #expect(
            FrameEncoder.encode(WebSocketFrame(opcode: .pong, payload: helloBytes), maskKey: rfcMaskKey)
                == [0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58])
    }

    @Test func encodesTheRFCVectorsExactly() {
        for vector in RFCVectors.client where vector.frames.count == 1 {
            #expect(FrameEncoder.encode(vector.frames[0]) == vector.wire, "\(vector.name)")
        }
        for vector in RFCVectors.server where vector.frames.count == 1 {
            #expect(FrameEncoder.encode(vector.frames[0], maskKey: rfcMaskKey) == vector.wire, "\(vector.name)")
        }
    }

    @Test func encodesRSV1() {
        #expect(FrameEncoder.encode(WebSocketFrame(rsv1: true, opcode: .binary, payload: [1])) == [0xc2, 0x01, 0x01])
    }

    // MARK: Length forms

    @Test(arguments: [
        (0, [UInt8(0x00)]), (1, [0x01]), (125, [0x7d]), (126, [0x7e, 0x00, 0x7e]), (127, [0x7e, 0x00, 0x7f]),
        (65535, [0x7e, 0xff, 0xff]), (65536, [0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
        (70000, [0x7f, 0, 0, 0, 0, 0, 0x01, 0x11, 0x70]),
    ])
    func usesTheShortestLengthForm(_ size: Int, _ lengthBytes: [UInt8]) {
        let frame = WebSocketFrame.binary(patternBytes(size))
        let plain = FrameEncoder.encode(frame)
        #expect(Array(plain[1..<(1 + lengthBytes.count)]) == lengthBytes)
        #expect(plain.count == 1 + lengthBytes.count + size)
        #expect(FrameEncoder.headerLength(payloadCount: size, masked: false) == 1 + lengthBytes.count)
        let masked = FrameEncoder.encode(frame, maskKey: rfcMaskKey)
        #expect(masked[1] == lengthBytes[0] | 0x80)
        #expect(Array(masked[2..<(1 + lengthBytes.count)]) == Array(lengthBytes.dropFirst()))
        #expect(Array(masked[(1 + lengthBytes.count)..<(5 + lengthBytes.count)]) == rfcMaskBytes)
        #expect(masked.count == 5 + lengthBytes.count + size)
        #expect(FrameEncoder.headerLength(payloadCount: size, masked: true) == 5 + lengthBytes.count)
    }

    // MARK: Round trip

    @Test(arguments: [0, 1, 125, 126, 127, 65535, 65536, 70000], [true, false])
    func roundTripsThroughTheParser(_ size: Int, _ masked: Bool) throws {
        let frames: [WebSocketFrame] = [.binary(patternBytes(size)), .text(String(repeating: "é", count: size / 2) + (size % 2 == 1 ? "x" : ""))]
        for frame in frames {
            #expect(frame.payload.count == size)
            let wire = FrameEncoder.encode(frame, maskKey: masked ? 0xa1b2_c3d4 : nil)
            var parser = FrameParser(role: masked ? .server : .client)
            #expect(try parser.feed(wire) == [frame])
            // And in awkward pieces: 7 bytes, then the rest.
            var split = FrameParser(role: masked ? .server : .client)
            #expect(try split.feed([wire.prefix(7), wire.dropFirst(7)]) == [frame])
        }
    }

    @Test func roundTripsFragmentsAndControlFrames() throws {
        let frames: [WebSocketFrame] = [
            WebSocketFrame(fin: false, rsv1: true, opcode: .text, payload: [0xff]),
            WebSocketFrame(opcode: .ping, payload: patternBytes(125)),
            WebSocketFrame(fin: false, opcode: .continuation, payload: patternBytes(300)),
            WebSocketFrame(opcode: .continuation),
            WebSocketFrame(opcode: .close, payload: ClosePayload(code: .normal, reason: "bye").encoded),
        ]
        var wire: [UInt8] = []
        for (i, frame) in frames.enumerated() { FrameEncoder.append(frame, maskKey: UInt32(i) &* 0x9e37_79b9, to: &wire) }
        var parser = FrameParser.server()
        parser.allowedReservedBits = 0x4
        #expect(try parser.feed(wire) == frames)
    }

    // MARK: Masking

    @Test(arguments: [0, 1, 2, 3, 4, 5, 7, 13])
    func masksLikeTheNaiveReferenceAtEveryOffset(_ offset: Int) {
        let key: [UInt8] = [0x01, 0x80, 0x5a, 0xff]
        let keyValue = UInt32(key[0]) | UInt32(key[1]) << 8 | UInt32(key[2]) << 16 | UInt32(key[3]) << 24
        for count in Array(0...40) + [63, 64, 65, 1000, 1001] {
            let input = patternBytes(count)
            var output = input
            output.withUnsafeMutableBytes { applyMask($0, key: keyValue, offset: offset) }
            guard output == naiveMask(input, key: key, offset: offset) else {
                Issue.record("offset \(offset), \(count) bytes")
                return
            }
        }
    }

    @Test func masksInPiecesLikeInOneGo() {
        let input = patternBytes(100)
        let whole = naiveMask(input, key: rfcMaskBytes)
        for cut in 0...input.count {
            var output = input
            output.withUnsafeMutableBytes { all in
                applyMask(UnsafeMutableRawBufferPointer(rebasing: all[..<cut]), key: rfcMaskKey, offset: 0)
                applyMask(UnsafeMutableRawBufferPointer(rebasing: all[cut...]), key: rfcMaskKey, offset: cut)
            }
            #expect(output == whole, "cut at \(cut)")
        }
    }

    @Test func maskingTwiceRestoresTheInput() {
        let input = patternBytes(77)
        var output = input
        output.withUnsafeMutableBytes { applyMask($0, key: 0xdead_beef, offset: 3) }
        #expect(output != input)
        output.withUnsafeMutableBytes { applyMask($0, key: 0xdead_beef, offset: 3) }
        #expect(output == input)
    }
}
