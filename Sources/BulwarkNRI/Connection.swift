/// One NRI connection as a state machine, pure (no I/O, no threads): bytes from the runtime in,
/// actions out. The multiplexer carries two ttrpc roles (§2.2): on connection 1 the runtime calls
/// the plugin's service (requests to handle), on connection 2 the plugin calls the runtime's
/// (responses to our pending calls, by stream id). `NRIConnection` in BulwarkNRIPlugin does the
/// reads, writes and waiting; the plugin's per-method handlers answer `.handle`.
public struct NRIConnectionState: Sendable {
    public enum Action: Equatable, Sendable {
        /// Mux-framed bytes to write (the server's own answers, e.g. to an oversized request).
        case send([UInt8])
        /// A request from the runtime to answer with `answer(stream:result:)`, in arrival order.
        case handle(stream: UInt32, service: String, method: String, payload: [UInt8])
        /// The response to one of our pending calls.
        case complete(stream: UInt32, Result<[UInt8], TTRPC.CallFailure>)
    }

    var mux = Mux.Decoder()
    var plugin = TTRPC.Decoder()
    var runtime = TTRPC.Decoder()
    var server = TTRPC.Server()
    var client = TTRPC.Client()
    /// Stream ids of our calls still waiting for their response.
    public private(set) var pending: Set<UInt32> = []

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
                        pending.remove(message.stream) != nil
                    else { continue }
                    actions.append(.complete(stream: message.stream, TTRPC.Client.outcome(message)))
                }
            default:
                break
            }
        }
        return actions
    }

    /// A call on the runtime's service: the stream id to wait on and the bytes to write.
    public mutating func call(
        service: String, method: String, payload: [UInt8], timeoutNanoseconds: Int64
    ) -> (stream: UInt32, bytes: [UInt8]) {
        let r = client.request(
            service: service, method: method, payload: payload, timeoutNanoseconds: timeoutNanoseconds)
        pending.insert(r.stream)
        return (r.stream, Mux.encode(connection: Mux.runtimeService, r.bytes))
    }

    /// Stops waiting for a call (it timed out): a late response is dropped.
    public mutating func abandon(stream: UInt32) { pending.remove(stream) }

    /// The connection ended: every pending call fails; returns their streams.
    public mutating func close() -> [UInt32] {
        defer { pending = [] }
        return pending.sorted()
    }

    /// The mux-framed answer to a `.handle` request.
    public static func answer(stream: UInt32, result: Result<[UInt8], TTRPC.CallFailure>) -> [UInt8] {
        let reply: [UInt8]
        switch result {
        case .success(let out): reply = TTRPC.Server.response(stream: stream, payload: out)
        case .failure(let f):
            reply = TTRPC.Server.response(
                stream: stream, code: TTRPC.Code(rawValue: f.code) ?? .unknown, message: f.message)
        }
        return Mux.encode(connection: Mux.pluginService, reply)
    }
}
