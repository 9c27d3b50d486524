// SPDX-License-Identifier: Apache-2.0

// libFuzzer entry for `FrameParser` (server role, modest limits). Built by scripts/fuzz.sh:
//   swiftc -sanitize=fuzzer,address -parse-as-library -O Sources/WireCodec/*.swift Tests/Fuzz/Frames.swift
//
// Input layout:  [config] [frame bytes ...]
//   config bits 0-3: chunk size - 1 (the bytes arrive in reads of 1...16 bytes)
//   config bit  4:   RSV1 claimed by an extension (permessage-deflate)
//
// Checks, each a crash when it fails:
//   1. chunked and whole-buffer parsing give the same frames and the same error;
//   2. every frame respects the limits and the control-frame rules;
//   3. every complete uncompressed text message is valid UTF-8;
//   4. the accepted frames, re-encoded masked, parse back to the same frames;
//   5. every error maps to a close code that may go on the wire;
//   6. UTF8Validator, fed the raw input, agrees with Swift's own decoder on the verdict and on where
//      each invalid sequence is caught.

/// Limits small enough that the fuzzer reaches them.
private let limits = FrameLimits(maxFrameBytes: 1 << 12, maxMessageBytes: 1 << 14, maxFragments: 64)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let config = data[0]
    let bytes = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let reservedBits: UInt8 = config & 0x10 != 0 ? 0x4 : 0

    let chunked = run(bytes.chunks(of: Int(config & 0x0f) + 1), reservedBits: reservedBits)
    let whole = run([bytes[...]], reservedBits: reservedBits)
    check(chunked.frames == whole.frames, "chunking changed the frames")
    check(chunked.error == whole.error, "chunking changed the error: \(String(describing: chunked.error)) vs \(String(describing: whole.error))")
    if let error = chunked.error { check(CloseCode(error).isValidOnWire, "\(error) maps to a code we may not send") }

    checkUTF8(bytes.chunks(of: Int(config & 0x0f) + 1), whole: bytes)
    checkInvariants(chunked.frames)
    checkRoundTrip(chunked.frames, reservedBits: reservedBits, key: UInt32(truncatingIfNeeded: size &* 0x9e37_79b9))
    return 0
}

/// Feeds `chunks` one read at a time, collecting frames until the first error.
private func run(_ chunks: [ArraySlice<UInt8>], reservedBits: UInt8) -> (frames: [WebSocketFrame], error: WireError?) {
    var parser = FrameParser(role: .server, limits: limits)
    parser.allowedReservedBits = reservedBits
    var frames: [WebSocketFrame] = []
    for chunk in chunks {
        let before = parser
        do throws(WireError) {
            frames += try parser.feed([chunk])
        } catch {
            // `feed` drops the frames a failing call completed before its error. Recover them by
            // replaying the chunk byte by byte from the state before it; that must fail the same way.
            let (salvaged, replayError) = replay(chunk, from: before)
            check(replayError == error, "byte-by-byte replay disagrees: \(String(describing: replayError)) vs \(error)")
            return (frames + salvaged, error)
        }
    }
    return (frames, nil)
}

private func replay(_ chunk: ArraySlice<UInt8>, from state: FrameParser) -> ([WebSocketFrame], WireError?) {
    var parser = state
    var frames: [WebSocketFrame] = []
    for byte in chunk {
        do throws(WireError) {
            frames += try parser.feed([byte])
        } catch {
            return (frames, error)
        }
    }
    return (frames, nil)
}

/// The validator on its own, against Swift's decoder: the raw input is the text (masking would
/// hide UTF-8 structure from the fuzzer inside frames). Besides the whole-input verdict, each
/// stretch between Swift's errors must be accepted, and the validator must fail inside each
/// maximal invalid subpart Swift reports (Unicode §3.9 D93b): fail fast, but not early.
private func checkUTF8(_ chunks: [ArraySlice<UInt8>], whole bytes: [UInt8]) {
    var validator = UTF8Validator()
    let ok = chunks.allSatisfy { validator.validate($0) } && validator.isComplete
    check(ok == (String(validating: bytes, as: UTF8.self) != nil), "UTF8Validator disagrees with Swift")

    var parser = Unicode.UTF8.ForwardParser()
    var iterator = bytes.makeIterator()
    var start = 0   // where the current validator started
    var pos = 0     // bytes Swift has parsed
    while true {
        switch parser.parseScalar(from: &iterator) {
        case .valid(let scalar):
            pos += scalar.count
        case .emptyInput:
            var fresh = UTF8Validator()
            check(fresh.validate(bytes[start..<pos]) && fresh.isComplete, "rejected valid UTF-8 at \(start)..<\(pos)")
            return
        case .error(let length):
            var fresh = UTF8Validator()
            var failure: Int?
            for i in start..<Swift.min(pos + length + 1, bytes.count) where !fresh.validate(bytes[i...i]) {
                failure = i
                break
            }
            if let failure {
                check(failure >= pos && failure <= pos + length, "failed at \(failure); Swift's invalid subpart is \(pos)..<\(pos + length)")
            } else {
                // Only a sequence cut off by the end of input may go unrejected, and then it is open.
                check(pos + length == bytes.count && !fresh.isComplete, "accepted invalid UTF-8 at \(pos)..<\(pos + length)")
            }
            start = pos + length
            pos = start
        }
    }
}

private func checkInvariants(_ frames: [WebSocketFrame]) {
    var message: [UInt8]?
    var isText = false
    var compressed = false
    var fragments = 0
    for frame in frames {
        if frame.opcode.isControl {
            check(frame.fin && frame.payload.count <= 125 && !frame.rsv1, "bad control frame")
            if frame.opcode == .close {
                check((try? ClosePayload(decoding: frame.payload)) != nil, "close payload not re-decodable")
            }
            continue
        }
        check(frame.payload.count <= limits.maxFrameBytes, "frame over the limit")
        if frame.opcode == .continuation {
            check(message != nil, "continuation without a message")
            check(!frame.rsv1, "RSV1 on a continuation")
        } else {
            check(message == nil, "new message while one is open")
            (message, isText, compressed, fragments) = ([], frame.opcode == .text, frame.rsv1, 0)
        }
        message! += frame.payload
        fragments += 1
        check(message!.count <= limits.maxMessageBytes, "message over the limit")
        check(fragments <= limits.maxFragments, "too many fragments")
        if frame.fin {
            check(!isText || compressed || String(validating: message!, as: UTF8.self) != nil, "accepted invalid UTF-8")
            message = nil
        }
    }
}

private func checkRoundTrip(_ frames: [WebSocketFrame], reservedBits: UInt8, key: UInt32) {
    var wire: [UInt8] = []
    for (i, frame) in frames.enumerated() {
        FrameEncoder.append(frame, maskKey: key &+ UInt32(truncatingIfNeeded: i), to: &wire)
    }
    var parser = FrameParser(role: .server, limits: limits)
    parser.allowedReservedBits = reservedBits
    do throws(WireError) {
        let again = try parser.feed(wire)
        check(again == frames, "re-encoded frames parsed differently")
    } catch {
        fatalError("re-encoded frames were refused: \(error)")
    }
}

/// `precondition` that names the broken property in -O builds too (there `precondition` traps
/// without its message, and a fuzz report without the message is hard to read).
private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

extension Array {
    /// Consecutive slices of at most `size` elements.
    fileprivate func chunks(of size: Int) -> [ArraySlice<Element>] {
        stride(from: 0, to: count, by: size).map { self[$0..<Swift.min($0 + size, count)] }
    }
}
