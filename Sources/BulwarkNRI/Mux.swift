/// NRI's connection multiplexer (reference/nri-oci.md §2.2): one unix stream socket carries
/// logical connections, each a byte stream, in frames of an 8-byte header (connection id, payload
/// length; big-endian) and the payload. Connection 1 carries the plugin service (the runtime calls
/// us), connection 2 the runtime service (we call the runtime). Pure: bytes in, frames out.
public enum Mux {
    public static let headerLength = 8
    /// ttrpc header (10) + ttrpc's largest message (4 MiB): the largest payload a peer may send.
    public static let maxPayload = 10 + (4 << 20)
    /// Writes stay ≤ 4096 payload bytes a frame, never spanning two ttrpc messages: the Go peer
    /// reads each logical connection through a 4096-byte buffer (§2.2, interop rule).
    public static let writeChunk = 4096
    public static let pluginService: UInt32 = 1
    public static let runtimeService: UInt32 = 2

    public struct Frame: Equatable, Sendable {
        public var connection: UInt32
        public var payload: [UInt8]
        public init(connection: UInt32, payload: [UInt8]) {
            self.connection = connection
            self.payload = payload
        }
    }

    public enum Failure: Error, Equatable, Sendable, CustomStringConvertible {
        case reservedConnection
        case oversizedFrame(connection: UInt32, length: UInt32)

        public var description: String {
            switch self {
            case .reservedConnection: return "mux frame for the reserved connection 0"
            case .oversizedFrame(let c, let n):
                return "mux frame of \(n) bytes on connection \(c) exceeds the \(Mux.maxPayload)-byte limit"
            }
        }
    }

    /// The frames of one logical connection's bytes (one ttrpc message), in ≤ `writeChunk` pieces.
    public static func encode(connection: UInt32, _ bytes: [UInt8], chunk: Int = writeChunk) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count + (bytes.count / chunk + 1) * headerLength)
        var i = 0
        repeat {
            let n = min(chunk, bytes.count - i)
            appendBigEndian(connection, to: &out)
            appendBigEndian(UInt32(n), to: &out)
            out += bytes[i..<(i + n)]
            i += n
        } while i < bytes.count
        return out
    }

    /// Splits the socket's byte stream into frames. Holds at most one frame's bytes.
    public struct Decoder: Sendable {
        var buffer: [UInt8] = []
        var start = 0

        public init() {}

        public mutating func feed(_ bytes: some Sequence<UInt8>) { buffer.append(contentsOf: bytes) }

        /// The next complete frame, nil when more bytes are needed; a hostile header is an error
        /// (the caller closes the connection).
        public mutating func next() throws(Failure) -> Frame? {
            guard buffer.count - start >= headerLength else { return compact() }
            let connection = readBigEndian(buffer, at: start)
            let length = readBigEndian(buffer, at: start + 4)
            guard connection != 0 else { throw .reservedConnection }
            guard Int(length) <= maxPayload else { throw .oversizedFrame(connection: connection, length: length) }
            let end = start + headerLength + Int(length)
            guard buffer.count >= end else { return compact() }
            let frame = Frame(connection: connection, payload: Array(buffer[(start + headerLength)..<end]))
            start = end
            return frame
        }

        /// Bytes held but not yet returned.
        public var pending: Int { buffer.count - start }

        private mutating func compact() -> Frame? {
            if start > 0 {
                buffer.removeFirst(start)
                start = 0
            }
            return nil
        }
    }
}

func appendBigEndian(_ v: UInt32, to out: inout [UInt8]) {
    out += [UInt8(v >> 24), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)]
}

func readBigEndian(_ b: [UInt8], at i: Int) -> UInt32 {
    UInt32(b[i]) << 24 | UInt32(b[i + 1]) << 16 | UInt32(b[i + 2]) << 8 | UInt32(b[i + 3])
}
