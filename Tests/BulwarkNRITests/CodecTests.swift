import BulwarkNRI
import SwiftProtobuf
import Testing

func hex(_ s: String) -> [UInt8] {
    s.split(separator: " ").map { UInt8($0, radix: 16)! }
}

func ascii(_ s: String) -> [UInt8] { Array(s.utf8) }

/// The byte-level example of reference/nri-oci.md §3.8 (a plugin registering as `10-example`),
/// computed by hand from the wire format, against the codecs.
@Suite("NRI wire: mux and ttrpc frames")
struct CodecTests {
    static let registerRequest: [UInt8] =
        hex("0a 1c") + ascii("nri.pkg.api.v1alpha1.Runtime") + hex("12 0e") + ascii("RegisterPlugin")
        + hex("1a 16 0a 07") + ascii("example") + hex("12 02") + ascii("10") + hex("1a 07") + ascii("v0.12.2")
        + hex("20 80 e4 97 d0 12")
    static let registerFrame: [UInt8] =
        hex("00 00 00 02 00 00 00 56") + hex("00 00 00 4c 00 00 00 01 01 00") + registerRequest

    @Test func registerPluginIsEncodedByteForByte() throws {
        var r = Nri_Pkg_Api_V1alpha1_RegisterPluginRequest()
        r.pluginName = "example"
        r.pluginIdx = "10"
        r.nriVersion = "v0.12.2"
        var client = TTRPC.Client()
        let (stream, message) = client.request(
            service: "nri.pkg.api.v1alpha1.Runtime", method: "RegisterPlugin", payload: try r.serializedBytes(),
            timeoutNanoseconds: 5_000_000_000)
        #expect(stream == 1)
        #expect(Mux.encode(connection: Mux.runtimeService, message) == Self.registerFrame)
        // the next call takes the next odd id
        #expect(client.request(service: "s", method: "m", payload: [], timeoutNanoseconds: 0).stream == 3)
    }

    @Test func theFrameDecodesBackIntoTheCall() throws {
        var mux = Mux.Decoder()
        // byte by byte: frames are re-assembled whatever the read sizes
        var frames: [Mux.Frame] = []
        for b in Self.registerFrame {
            mux.feed([b])
            while let f = try mux.next() { frames.append(f) }
        }
        #expect(frames.count == 1)
        #expect(frames.first?.connection == 2)
        var ttrpc = TTRPC.Decoder()
        ttrpc.feed(frames[0].payload)
        var server = TTRPC.Server()
        guard let decoded = ttrpc.next(),
            case .call(let stream, let service, let method, let payload, let timeout) =
                server.receive(decoded)
        else {
            Issue.record("not a call")
            return
        }
        #expect(stream == 1)
        #expect(service == "nri.pkg.api.v1alpha1.Runtime")
        #expect(method == "RegisterPlugin")
        #expect(timeout == 5_000_000_000)
        let r = try Nri_Pkg_Api_V1alpha1_RegisterPluginRequest(serializedBytes: payload)
        #expect(r.pluginName == "example" && r.pluginIdx == "10" && r.nriVersion == "v0.12.2")
    }

    @Test func responsesAsTheGoServerWritesThem() {
        // success with an Empty reply: no status, no payload, zero-length data
        let ok = TTRPC.Server.response(stream: 1, payload: [])
        #expect(Mux.encode(connection: 2, ok) == hex("00 00 00 02 00 00 00 0a 00 00 00 00 00 00 00 01 02 00"))
        // failure: status{code: 2 Unknown, message: "boom"}
        let failure = TTRPC.Server.response(stream: 1, code: .unknown, message: "boom")
        #expect(Array(failure.dropFirst(10)) == hex("0a 08 08 02 12 04") + ascii("boom"))
        let m = TTRPC.Message(stream: 1, type: 2, data: Array(failure.dropFirst(10)))
        #expect(TTRPC.Client.outcome(m) == .failure(TTRPC.CallFailure(code: 2, message: "boom")))
        #expect(TTRPC.Client.outcome(TTRPC.Message(stream: 1, type: 2, data: [])) == .success([]))
        // "status present with code 0" is OK as well
        #expect(TTRPC.Client.outcome(TTRPC.Message(stream: 1, type: 2, data: hex("0a 00"))) == .success([]))
    }

    @Test func theEventMaskMatchesTheReferenceEncoding() throws {
        var r = Nri_Pkg_Api_V1alpha1_ConfigureResponse()
        r.events = 0x608
        #expect(try r.serializedBytes() == hex("10 88 0c"))
        // Bulwark's own mask: Create, Start, Stop, Remove container; valid on pre-v0.10 runtimes
        #expect(PluginCore.eventMask == 0x628)
        #expect(PluginCore.eventMask & ~0x07FF == 0)
    }

    /// Writes never put more than 4096 payload bytes in a frame (the Go reader's buffer), and a
    /// reader gets the same bytes back.
    @Test func largeMessagesAreSplitIntoFramesOf4096Bytes() throws {
        let big = (0..<10_000).map { UInt8($0 % 251) }
        let bytes = Mux.encode(connection: 1, big)
        var d = Mux.Decoder()
        d.feed(bytes)
        var joined: [UInt8] = []
        var sizes: [Int] = []
        while let f = try d.next() {
            #expect(f.connection == 1)
            sizes.append(f.payload.count)
            joined += f.payload
        }
        #expect(sizes == [4096, 4096, 1808])
        #expect(joined == big)
        #expect(Mux.encode(connection: 1, []) == hex("00 00 00 01 00 00 00 00"))
    }

    // MARK: Hostile input

    @Test func hostileMuxHeadersAreErrorsNotAllocations() throws {
        var d = Mux.Decoder()
        d.feed(hex("00 00 00 01 ff ff ff ff"))
        #expect(throws: Mux.Failure.oversizedFrame(connection: 1, length: 0xffff_ffff)) { try d.next() }
        var zero = Mux.Decoder()
        zero.feed(hex("00 00 00 00 00 00 00 01 00"))
        #expect(throws: Mux.Failure.reservedConnection) { try zero.next() }
        // the largest legal frame is accepted
        var max = Mux.Decoder()
        max.feed(hex("00 00 00 02 00 40 00 0a"))
        #expect(try max.next() == nil)
    }

    @Test func ttrpcProtocolErrorsAreAnsweredLikeTheGoServer() throws {
        var server = TTRPC.Server()
        func status(_ bytes: [UInt8]) throws -> (UInt32, Int32, String) {
            var d = TTRPC.Decoder()
            d.feed(bytes)
            guard case .message(let m)? = d.next() else { throw TTRPC.CallFailure(code: -1, message: "none") }
            let r = try Ttrpc_Response(serializedBytes: m.data)
            return (m.stream, r.status.code, r.status.message)
        }
        var req = Ttrpc_Request()
        req.service = "s"
        req.method = "m"
        let data = try req.serializedBytes() as [UInt8]
        // even stream id
        guard case .reply(let even) = server.receive(.message(.init(stream: 2, type: 1, data: data))) else {
            Issue.record("even id accepted")
            return
        }
        #expect(try status(even) == (2, 3, "StreamID must be odd for client initiated streams"))
        guard case .call = server.receive(.message(.init(stream: 5, type: 1, data: data))) else {
            Issue.record("valid call refused")
            return
        }
        // re-used / decreasing id
        guard case .reply(let reused) = server.receive(.message(.init(stream: 3, type: 1, data: data))) else {
            Issue.record("re-used id accepted")
            return
        }
        #expect(try status(reused) == (3, 3, "StreamID cannot be re-used and must increment"))
        // garbage envelope
        guard case .reply(let garbage) = server.receive(.message(.init(stream: 7, type: 1, data: [0xff, 0xff])))
        else {
            Issue.record("garbage accepted")
            return
        }
        #expect(try status(garbage).1 == 3)
        // a data message (streaming) is ignored
        guard case .ignore = server.receive(.message(.init(stream: 9, type: 3, data: []))) else {
            Issue.record("data message not ignored")
            return
        }
    }

    /// A message longer than 4 MiB: its data is skipped as it arrives (never held), the stream is
    /// answered ResourceExhausted, and the next message decodes normally.
    @Test func anOversizedMessageIsSkippedAndTheConnectionLivesOn() throws {
        var d = TTRPC.Decoder()
        let length = UInt32(TTRPC.maxData + 1)
        d.feed(
            [UInt8(length >> 24), UInt8(length >> 16 & 0xff), UInt8(length >> 8 & 0xff), UInt8(length & 0xff)]
                + hex("00 00 00 09 01 00"))
        guard case .oversized(let stream, _, let n)? = d.next() else {
            Issue.record("oversized not reported")
            return
        }
        #expect(stream == 9 && n == length)
        var fed = 0
        while fed < Int(length) {
            let n = min(1 << 20, Int(length) - fed)
            d.feed([UInt8](repeating: 0xAA, count: n))
            fed += n
            #expect(d.pending == 0, "skipped data is not kept")
        }
        let next = TTRPC.Message(stream: 11, type: 1, data: [1, 2, 3])
        d.feed(next.bytes)
        #expect(d.next() == .message(next))
        var server = TTRPC.Server()
        guard case .reply(let bytes) = server.receive(.oversized(stream: 9, type: 1, length: length)) else {
            Issue.record("no reply")
            return
        }
        var rd = TTRPC.Decoder()
        rd.feed(bytes)
        guard case .message(let m)? = rd.next() else { return }
        #expect(try Ttrpc_Response(serializedBytes: m.data).status.code == 8)
    }

    /// Random bytes never crash the decoders and never make them hold more than one frame.
    @Test func randomBytesNeverCrash() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<200 {
            var mux = Mux.Decoder()
            var tt = TTRPC.Decoder()
            var server = TTRPC.Server()
            let bytes = (0..<Int.random(in: 0..<512, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            mux.feed(bytes)
            tt.feed(bytes)
            while let f = try? mux.next() { _ = f }
            while let m = tt.next() { _ = server.receive(m) }
            #expect(mux.pending <= Mux.headerLength + Mux.maxPayload)
        }
    }
}
