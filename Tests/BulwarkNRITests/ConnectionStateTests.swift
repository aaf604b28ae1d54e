import BulwarkNRI
import Foundation
import SwiftProtobuf
import Testing

/// The NRI connection state machine (pure): bytes in, actions out.
@Suite("NRI connection state machine")
struct ConnectionStateTests {
    /// A request from the runtime on the plugin's connection, as the runtime frames it.
    static func runtimeRequest(stream: UInt32, method: String, payload: [UInt8]) throws -> [UInt8] {
        var r = Ttrpc_Request()
        r.service = "nri.pkg.api.v1alpha1.Plugin"
        r.method = method
        r.payload = Data(payload)
        let m = TTRPC.Message(stream: stream, type: TTRPC.MessageType.request.rawValue, data: try r.serializedBytes())
        return Mux.encode(connection: Mux.pluginService, m.bytes)
    }

    /// The runtime's response to one of our calls, on the runtime's connection.
    static func runtimeResponse(stream: UInt32, payload: [UInt8], code: Int32 = 0) throws -> [UInt8] {
        var r = Ttrpc_Response()
        r.payload = Data(payload)
        if code != 0 {
            r.status.code = code
            r.status.message = "refused"
        }
        let m = TTRPC.Message(stream: stream, type: TTRPC.MessageType.response.rawValue, data: try r.serializedBytes())
        return Mux.encode(connection: Mux.runtimeService, m.bytes)
    }

    @Test func requestsBecomeHandleActionsInOrderWhateverTheReadSizes() throws {
        var c = NRIConnectionState<String>()
        let bytes =
            try Self.runtimeRequest(stream: 1, method: "Configure", payload: [1, 2])
            + Self.runtimeRequest(stream: 3, method: "Synchronize", payload: [3])
        var actions: [NRIConnectionState<String>.Action] = []
        for b in bytes { actions += try c.receive([b]) }
        #expect(
            actions == [
                .handle(stream: 1, service: "nri.pkg.api.v1alpha1.Plugin", method: "Configure", payload: [1, 2]),
                .handle(stream: 3, service: "nri.pkg.api.v1alpha1.Plugin", method: "Synchronize", payload: [3]),
            ])
        // the answer goes back on the plugin's connection, same stream
        let answer = nriAnswerFrame(stream: 3, result: .success([9]))
        var mux = Mux.Decoder()
        mux.feed(answer)
        let frame = try #require(try mux.next())
        #expect(frame.connection == Mux.pluginService)
        var d = TTRPC.Decoder()
        d.feed(frame.payload)
        guard case .message(let m)? = d.next() else {
            Issue.record("no message")
            return
        }
        #expect(m.stream == 3 && TTRPC.Client.outcome(m) == .success([9]))
    }

    @Test func onlyPendingCallsComplete() throws {
        var c = NRIConnectionState<String>()
        let (first, bytes) = c.call(
            service: "s", method: "RegisterPlugin", payload: [], timeoutNanoseconds: 1, waiting: "register")
        #expect(first == 1 && c.pending == [1: "register"])
        #expect(!bytes.isEmpty)
        let (second, _) = c.call(
            service: "s", method: "UpdateContainers", payload: [], timeoutNanoseconds: 1, waiting: "update")
        #expect(second == 3)
        // a response for a stream never asked for, then the real ones (one a failure)
        let actions =
            try c.receive(Self.runtimeResponse(stream: 7, payload: [0]))
            + c.receive(Self.runtimeResponse(stream: 3, payload: [], code: 9))
            + c.receive(Self.runtimeResponse(stream: 1, payload: [5]))
        #expect(
            actions == [
                .complete("update", .failure(TTRPC.CallFailure(code: 9, message: "refused"))),
                .complete("register", .success([5])),
            ])
        #expect(c.pending.isEmpty)
        // a call that timed out is abandoned: its late response is dropped
        let (late, _) = c.call(service: "s", method: "m", payload: [], timeoutNanoseconds: 1, waiting: "late")
        c.abandon(stream: late)
        #expect(try c.receive(Self.runtimeResponse(stream: late, payload: [])).isEmpty)
        // closing hands back whatever is still pending, to be failed
        _ = c.call(service: "s", method: "m", payload: [], timeoutNanoseconds: 1, waiting: "a")
        _ = c.call(service: "s", method: "m", payload: [], timeoutNanoseconds: 1, waiting: "b")
        #expect(c.close() == ["a", "b"])
        #expect(c.pending.isEmpty)
    }

    @Test func framesOfUnknownConnectionsAreDroppedAndGarbageThrows() throws {
        var c = NRIConnectionState<String>()
        #expect(try c.receive(Mux.encode(connection: 9, [1, 2, 3])).isEmpty)
        // a frame longer than the mux allows is not the protocol
        var garbage = Mux.encode(connection: Mux.pluginService, [0])
        garbage[4...7] = [0xFF, 0xFF, 0xFF, 0xFF][...]
        #expect(throws: Mux.Failure.self) { try c.receive(garbage) }
    }
}
