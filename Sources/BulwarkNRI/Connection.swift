/// One NRI connection as a state machine, pure (no I/O, no threads): bytes from the runtime in,
/// actions out. The multiplexer carries two ttrpc roles (§2.2): on connection 1 the runtime calls
/// the plugin's service (requests to handle), on connection 2 the plugin calls the runtime's
/// (responses to our pending calls, by stream id). `NRIConnection` in BulwarkNRIPlugin does the
/// reads, writes and waiting; the plugin's per-method handlers answer `.handle`. `Pending` is what
/// the caller keeps per outstanding call (the waiter to wake): the machine is the only record of
/// which calls are outstanding.
public struct NRIConnectionState<Pending: Sendable>: Sendable {
    public enum Action: Sendable {
        /// Mux-framed bytes to write (the server's own answers, e.g. to an oversized request).
        case send([UInt8])
        /// A request from the runtime to answer with `answer(stream:result:)`, in arrival order.
        case handle(stream: UInt32, service: String, method: String, payload: [UInt8])
        /// The response to one of our pending calls.
        case complete(Pending, Result<[UInt8], TTRPC.CallFailure>)
    }

    var mux = Mux.Decoder()
    var plugin = TTRPC.Decoder()
    var runtime = TTRPC.Decoder()
    var server = TTRPC.Server()
    var client = TTRPC.Client()
    /// Our calls still waiting for their response, by stream id.
    public private(set) var pending: [UInt32: Pending] = [:]

    public init() {}

    /// Feeds bytes read from the socket. Throws on input that is not the protocol (the
    /// connection is then closed); frames of connections we did not open are dropped, as the Go
    /// mux does; a response to a stream we are not waiting for (timed out, or never asked) is
    /// dropped.
    public mutating func receive(_ bytes: some Sequence<UInt8>) throws(Mux.Failure) -> [Action] {
        mux.feed(bytes)
        var actions: [Action] = []
        while let frame = try mux.next() {
            switch frame.connection {
            case Mux.pluginService:
                plugin.feed(frame.payload)
                while let m = plugin.next() {
                    switch server.receive(m) {
                    case .ignore: break
                    case .reply(let bytes): actions.append(.send(Mux.encode(connection: Mux.pluginService, bytes)))
                    case .call(let stream, let service, let method, let payload, _):
                        actions.append(.handle(stream: stream, service: service, method: method, payload: payload))
                    }
                }
            case Mux.runtimeService:
                runtime.feed(frame.payload)
                while let m = runtime.next() {
                    guard case .message(let message) = m, message.type == TTRPC.MessageType.response.rawValue,
                        let waiting = pending.removeValue(forKey: message.stream)
                    else { continue }
                    actions.append(.complete(waiting, TTRPC.Client.outcome(message)))
                }
            default:
                break
            }
        }
        return actions
    }

    /// A call on the runtime's service, `waiting` kept until its response: the stream id and the
    /// bytes to write.
    public mutating func call(
        service: String, method: String, payload: [UInt8], timeoutNanoseconds: Int64, waiting: Pending
    ) -> (stream: UInt32, bytes: [UInt8]) {
        let r = client.request(
            service: service, method: method, payload: payload, timeoutNanoseconds: timeoutNanoseconds)
        pending[r.stream] = waiting
        return (r.stream, Mux.encode(connection: Mux.runtimeService, r.bytes))
    }

    /// Stops waiting for a call (it timed out, or could not be sent): a late response is dropped.
    public mutating func abandon(stream: UInt32) { pending[stream] = nil }

    /// The connection ended: every pending call fails; returns what was kept for them, in stream
    /// order.
    public mutating func close() -> [Pending] {
        defer { pending = [:] }
        return pending.sorted { $0.key < $1.key }.map(\.value)
    }
}

extension NRIConnectionState.Action: Equatable where Pending: Equatable {}

/// The mux-framed answer to a `.handle` request of an NRI connection.
public func nriAnswerFrame(stream: UInt32, result: Result<[UInt8], TTRPC.CallFailure>) -> [UInt8] {
    let reply: [UInt8]
    switch result {
    case .success(let out): reply = TTRPC.Server.response(stream: stream, payload: out)
    case .failure(let f):
        reply = TTRPC.Server.response(
            stream: stream, code: TTRPC.Code(rawValue: f.code) ?? .unknown, message: f.message)
    }
    return Mux.encode(connection: Mux.pluginService, reply)
}
