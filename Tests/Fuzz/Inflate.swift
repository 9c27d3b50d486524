// SPDX-License-Identifier: Apache-2.0
import CZlib

// libFuzzer entry for `MessageInflater`: arbitrary bytes as permessage-deflate payloads, under a
// small message limit. Built by scripts/fuzz.sh with the codec and WireDeflate in one module:
//   swiftc -sanitize=fuzzer,address -parse-as-library -O -I Sources/CZlib \
//     Sources/WireCodec/*.swift Sources/WireDeflate/*.swift Tests/Fuzz/Inflate.swift
//
// Input layout:  [config] [payload bytes ...]
//   config bits 0-3: fragment size - 1 (the payload arrives in frames of 1...16 bytes)
//   config bit  4:   context takeover: the payload is two messages, split at the middle
//   config bits 5-7: the message limit, 2^(7 + bits) bytes (128 B ... 16 KiB)
//
// Checks, each a crash when it fails:
//   1. no message yields more than the limit, and the output array never reserves much more;
//   2. fragmenting the payload changes neither the output nor the verdict;
//   3. the loop-wide shared inflater, used by every previous input, agrees with a fresh one
//      (no state leaks from one message, good or bad, into the next);
//   4. every accepted message deflates and inflates back to itself.

/// Reused across inputs, as one per loop is in the server. Safe as `nonisolated(unsafe)`:
/// libFuzzer calls the entry point from one thread.
nonisolated(unsafe) private let sharedInflater = MessageInflater(contextTakeover: false, maxMessageBytes: 1 << 14)
nonisolated(unsafe) private let sharedDeflater = MessageDeflater(windowBits: 15, memLevel: 1, level: 1, contextTakeover: false)

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzInflate(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size > 0 else { return 0 }
    let config = data[0]
    let payload = Array(UnsafeBufferPointer(start: data + 1, count: size - 1))
    let fragmentSize = Int(config & 0x0f) + 1
    let takeover = config & 0x10 != 0
    let limit = 1 << (7 + Int(config >> 5))

    let messages = takeover ? [payload[..<(payload.count / 2)], payload[(payload.count / 2)...]] : [payload[...]]
    let whole = run(messages.map { [$0] }, takeover: takeover, limit: limit)
    let chunked = run(messages.map { $0.chunks(of: fragmentSize) }, takeover: takeover, limit: limit)
    check(whole.outputs == chunked.outputs, "fragmenting changed the output")
    check((whole.error == nil) == (chunked.error == nil),
          "fragmenting changed the verdict: \(String(describing: whole.error)) vs \(String(describing: chunked.error))")

    if !takeover {
        sharedInflater.maxMessageBytes = limit
        let shared: Result<[UInt8], DeflateError>
        do throws(DeflateError) {
            shared = .success(try sharedInflater.inflateMessage(payload.chunks(of: fragmentSize)))
        } catch {
            shared = .failure(error)
        }
        switch shared {
        case .success(let output): check(whole.outputs == [output], "the shared inflater disagrees")
        case .failure: check(whole.error != nil, "the shared inflater failed alone")
        }
        check(!sharedInflater.isMidMessage, "the shared inflater was left mid-message")
    }

    for output in whole.outputs {
        do throws(DeflateError) {
            let again = try sharedDeflater.compress(output)
            let back = try MessageInflater(contextTakeover: false, maxMessageBytes: limit).inflateMessage([again])
            check(back == output, "round trip changed the message")
        } catch {
            fatalError("round trip failed: \(error)")
        }
    }
    return 0
}

/// Inflates each message from its fragments with one inflater; stops at the first error.
private func run(_ messages: [[ArraySlice<UInt8>]], takeover: Bool, limit: Int) -> (outputs: [[UInt8]], error: DeflateError?) {
    let inflater = MessageInflater(contextTakeover: takeover, maxMessageBytes: limit)
    var outputs: [[UInt8]] = []
    for fragments in messages {
        var output: [UInt8] = []
        for (i, fragment) in fragments.enumerated() {
            do throws(DeflateError) {
                try inflater.inflate(fragment, isFinal: i == fragments.count - 1, appendingTo: &output)
            } catch {
                check(output.count <= limit, "\(output.count) bytes out under a limit of \(limit)")
                check(output.capacity <= max(limit, MessageInflater.minimumStep) + 64, "capacity \(output.capacity) under a limit of \(limit)")
                return (outputs, error)
            }
            check(output.count <= limit, "\(output.count) bytes out under a limit of \(limit)")
        }
        if fragments.isEmpty {
            do throws(DeflateError) { try inflater.inflate([UInt8](), isFinal: true, appendingTo: &output) } catch { return (outputs, error) }
        }
        outputs.append(output)
    }
    return (outputs, nil)
}

/// `precondition` that names the broken property in -O builds too.
private func check(_ condition: Bool, _ message: @autoclosure () -> String) {
    if !condition { fatalError(message()) }
}

extension ArraySlice {
    /// Consecutive slices of at most `size` elements (one empty slice for an empty input, so a
    /// message always has a final frame).
    fileprivate func chunks(of size: Int) -> [ArraySlice<Element>] {
        if isEmpty { return [self] }
        return stride(from: startIndex, to: endIndex, by: size).map { self[$0..<Swift.min($0 + size, endIndex)] }
    }
}

extension Array {
    fileprivate func chunks(of size: Int) -> [ArraySlice<Element>] { self[...].chunks(of: size) }
}
