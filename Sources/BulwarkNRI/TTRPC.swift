import Foundation
import SwiftProtobuf

/// ttrpc (containerd/ttrpc; reference/nri-oci.md §1): messages of a 10-byte header (data length,
/// stream id — big-endian —, type, flags) and protobuf data, at most 4 MiB. Unary calls only, as
/// NRI uses them. Pure state machines: the caller moves bytes.
public enum TTRPC {
    public static let headerLength = 10
    public static let maxData = 4 << 20

    public enum MessageType: UInt8, Sendable {
        case request = 1
        case response = 2
        case data = 3
    }

    /// gRPC status codes used here.
    public enum Code: Int32, Sendable {
        case ok = 0
        case canceled = 1
        case unknown = 2
        case invalidArgument = 3
        case deadlineExceeded = 4
        case notFound = 5
        case failedPrecondition = 9
        case resourceExhausted = 8
        case unimplemented = 12
        case `internal` = 13
        case unavailable = 14
    }

    public struct Message: Equatable, Sendable {
        public var stream: UInt32
        public var type: UInt8
        public var flags: UInt8
        public var data: [UInt8]

        public init(stream: UInt32, type: UInt8, flags: UInt8 = 0, data: [UInt8]) {
            self.stream = stream
            self.type = type
            self.flags = flags
            self.data = data
        }

        public var bytes: [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(TTRPC.headerLength + data.count)
            appendBigEndian(UInt32(data.count), to: &out)
            appendBigEndian(stream, to: &out)
            out += [type, flags]
            out += data
            return out
        }
    }

    /// What the decoder found: a message, or a message whose data exceeded the limit (its bytes
    /// were skipped; the stream gets `ResourceExhausted`, the connection lives on).
    public enum Decoded: Equatable, Sendable {
        case message(Message)
        case oversized(stream: UInt32, type: UInt8, length: UInt32)
    }

    /// One logical connection's byte stream → messages; memory stays bounded by the 4 MiB limit
    /// (oversized data is counted off, not kept).
    public struct Decoder: Sendable {
        var buffer: [UInt8] = []
        var start = 0
        var skipping = 0

        public init() {}

        public mutating func feed(_ bytes: some Sequence<UInt8>) {
            for b in bytes {
                if skipping > 0 {
                    skipping -= 1
                } else {
                    buffer.append(b)
                }
            }
        }

        public mutating func next() -> Decoded? {
            guard buffer.count - start >= headerLength else { return compact() }
            let length = readBigEndian(buffer, at: start)
            let stream = readBigEndian(buffer, at: start + 4)
            let type = buffer[start + 8]
            let flags = buffer[start + 9]
            if Int(length) > maxData {
                // drop the header and what is already here of the data; skip the rest as it comes
                let have = buffer.count - start - headerLength
                let drop = min(have, Int(length))
                start += headerLength + drop
                skipping = Int(length) - drop
                _ = compact()
                return .oversized(stream: stream, type: type, length: length)
            }
            let end = start + headerLength + Int(length)
            guard buffer.count >= end else { return compact() }
            let m = Message(stream: stream, type: type, flags: flags, data: Array(buffer[(start + headerLength)..<end]))
            start = end
            return .message(m)
        }

        public var pending: Int { buffer.count - start }

        private mutating func compact() -> Decoded? {
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            return nil
        }
    }

    // MARK: Server side (the plugin service on connection 1)

    /// A decoded call for the handler, or bytes to send back at once (a protocol error).
    public enum Incoming: Sendable {
        case call(stream: UInt32, service: String, method: String, payload: [UInt8], timeoutNanoseconds: Int64)
        case reply([UInt8])
        case ignore
    }

    /// Validates requests as containerd's ttrpc server does: odd stream ids, strictly increasing.
    public struct Server: Sendable {
        var lastStream: UInt32 = 0

        public init() {}

        public mutating func receive(_ decoded: Decoded) -> Incoming {
            switch decoded {
            case .oversized(let stream, _, let length):
                return .reply(
                    Self.response(
                        stream: stream, code: .resourceExhausted,
                        message: "message length \(length) exceed maximum message size of \(maxData)"))
            case .message(let m):
                guard m.type == MessageType.request.rawValue else { return .ignore }
                guard m.stream % 2 == 1 else {
                    return .reply(
                        Self.response(
                            stream: m.stream, code: .invalidArgument,
                            message: "StreamID must be odd for client initiated streams"))
                }
                guard m.stream > lastStream else {
                    return .reply(
                        Self.response(
                            stream: m.stream, code: .invalidArgument,
                            message: "StreamID cannot be re-used and must increment"))
                }
                lastStream = m.stream
                let request: Ttrpc_Request
                do {
                    request = try Ttrpc_Request(serializedBytes: m.data)
                } catch {
                    return .reply(
                        Self.response(stream: m.stream, code: .invalidArgument, message: "bad request envelope"))
                }
                return .call(
                    stream: m.stream, service: request.service, method: request.method,
                    payload: [UInt8](request.payload), timeoutNanoseconds: request.timeoutNano)
            }
        }

        /// A Response message: success omits the status (as the Go server does).
        public static func response(stream: UInt32, payload: [UInt8]) -> [UInt8] {
            var r = Ttrpc_Response()
            r.payload = Data(payload)
            let data: [UInt8] = (try? r.serializedBytes()) ?? []
            return Message(stream: stream, type: MessageType.response.rawValue, data: data).bytes
        }

        public static func response(stream: UInt32, code: Code, message: String) -> [UInt8] {
            var r = Ttrpc_Response()
            r.status.code = code.rawValue
            r.status.message = message
            let data: [UInt8] = (try? r.serializedBytes()) ?? []
            return Message(stream: stream, type: MessageType.response.rawValue, data: data).bytes
        }
    }

    // MARK: Client side (the runtime service on connection 2)

    public struct CallFailure: Error, Equatable, Sendable, CustomStringConvertible {
        public var code: Int32
        public var message: String
        public var description: String { "ttrpc status \(code): \(message)" }
        public init(code: Int32, message: String) {
            self.code = code
            self.message = message
        }
    }

    /// Odd stream ids from 1, +2 a call; answers matched by id (they may come out of order).
    public struct Client: Sendable {
        var nextStream: UInt32 = 1

        public init() {}

        public mutating func request(
            service: String, method: String, payload: [UInt8], timeoutNanoseconds: Int64
        ) -> (stream: UInt32, bytes: [UInt8]) {
            var r = Ttrpc_Request()
            r.service = service
            r.method = method
            r.payload = Data(payload)
            r.timeoutNano = timeoutNanoseconds
            let stream = nextStream
            nextStream &+= 2
            let data: [UInt8] = (try? r.serializedBytes()) ?? []
            return (stream, Message(stream: stream, type: MessageType.request.rawValue, data: data).bytes)
        }

        /// A response's outcome: the payload, or the status when it is present and not OK.
        public static func outcome(_ m: Message) -> Result<[UInt8], CallFailure> {
            guard let r = try? Ttrpc_Response(serializedBytes: m.data) else {
                return .failure(CallFailure(code: Code.internal.rawValue, message: "bad response envelope"))
            }
            if r.hasStatus && r.status.code != 0 {
                return .failure(CallFailure(code: r.status.code, message: r.status.message))
            }
            return .success([UInt8](r.payload))
        }
    }
}
