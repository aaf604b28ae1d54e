import BulwarkOCI
import Glibc

/// A client of the node socket (see `NodeSocket` in BulwarkAgent for the protocol): sends one
/// request line and reads JSON lines back. Blocking and small, for the CLI and tests.
public final class NodeClient {
    public struct Failure: Error, CustomStringConvertible, Equatable {
        public var description: String
        public var permissionDenied = false
    }

    let fd: Int32
    var buffer: [UInt8] = []
    var start = 0
    /// The request could not be sent (the agent may have refused the connection first; its
    /// answer is still read).
    var sendFailure: Failure?

    /// Connects and sends the request.
    public init(socketPath: String, request: JSONValue) throws(Failure) {
        do {
            fd = try UnixSocket.connect(path: socketPath)
        } catch {
            switch error {
            case .system(let e) where e == EACCES || e == EPERM:
                throw Failure(
                    description: "permission denied: cannot connect to \(socketPath) (the node socket is root-only; "
                        + "run with sudo, or ask for the agent's socketGroup)",
                    permissionDenied: true)
            case .system(let e) where e == ENOENT || e == ECONNREFUSED:
                throw Failure(
                    description: "bulwarkd is not running: nothing listens on \(socketPath) "
                        + "(start it: systemctl start bulwarkd, or set socketPath in the node config)")
            default:
                throw Failure(description: "cannot connect to \(socketPath): \(error)")
            }
        }
        let line = request.serialized() + [0x0A]
        var sent = 0
        while sent < line.count {
            // MSG_NOSIGNAL: a peer that already closed must not kill us with SIGPIPE
            let n = line[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                sendFailure = Failure(description: "cannot send the request: \(String(cString: strerror(errno)))")
                break
            }
            sent += n
        }
    }

    deinit { close(fd) }

    /// Makes `nextLine` fail instead of waiting longer than `seconds` for data.
    public func setReceiveTimeout(seconds: Double) {
        var tv = timeval(tv_sec: Int(seconds), tv_usec: Int((seconds - Double(Int(seconds))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    /// The next line (without the newline), or nil at the end of the stream.
    public func nextLine() throws(Failure) -> [UInt8]? {
        while true {
            if let nl = buffer[start...].firstIndex(of: 0x0A) {
                let line = Array(buffer[start..<nl])
                start = nl + 1
                if start > 65536 {
                    buffer.removeFirst(start)
                    start = 0
                }
                return line
            }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = read(fd, &chunk, chunk.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                throw Failure(description: "timed out waiting for the agent")
            }
            if n < 0 && errno == ECONNRESET && start == buffer.count { return nil }
            if n < 0 { throw Failure(description: "read: \(String(cString: strerror(errno)))") }
            if n == 0 {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            buffer += chunk[0..<n]
        }
    }

    /// The first line as a JSON object; `{"ok":false,"error":…}` becomes a Failure.
    public func answer() throws(Failure) -> JSONObject {
        let first: [UInt8]?
        do { first = try nextLine() } catch { throw sendFailure ?? error }
        guard let line = first else {
            throw sendFailure ?? Failure(description: "the agent closed the connection")
        }
        guard case .object(let o)? = try? JSONValue.parse(line) else {
            throw Failure(description: "the agent sent something that is not a JSON object")
        }
        if o["ok"] != .bool(true) {
            let message = o["error"]?.string ?? "request failed"
            throw Failure(description: message, permissionDenied: message.hasPrefix("permission denied"))
        }
        return o
    }

    /// One-shot request: connect, send, return the answer object.
    public static func call(socketPath: String, _ request: JSONValue) throws(Failure) -> JSONObject {
        try NodeClient(socketPath: socketPath, request: request).answer()
    }
}

// MARK: The typed control API

extension NodeClient {
    /// Connects and sends a typed request.
    public convenience init(socketPath: String, request: ControlRequest) throws(Failure) {
        try self.init(socketPath: socketPath, request: request.json)
    }

    /// One-shot request whose answer is the member named after the operation.
    static func call<T>(
        socketPath: String, _ request: ControlRequest, _ decode: (JSONValue) throws(ControlAPIError) -> T
    ) throws(Failure) -> T {
        let answer = try call(socketPath: socketPath, request.json)
        guard let member = answer[request.operation] else {
            throw Failure(description: "the agent's answer to \(request.operation) has no \"\(request.operation)\"")
        }
        do {
            return try decode(member)
        } catch {
            throw Failure(description: "the agent's answer to \(request.operation): \(error)")
        }
    }

    public static func status(socketPath: String) throws(Failure) -> AgentStatus {
        try call(socketPath: socketPath, .status) { v throws(ControlAPIError) in try AgentStatus(json: v) }
    }

    public static func containers(socketPath: String) throws(Failure) -> [ContainerStatus] {
        try call(socketPath: socketPath, .containers) { v throws(ControlAPIError) in
            guard let a = v.array else { throw ControlAPIError("containers: expected an array") }
            return try a.map { v throws(ControlAPIError) in try ContainerStatus(json: v) }
        }
    }

    public static func profiles(socketPath: String) throws(Failure) -> [ProfileStatus] {
        try call(socketPath: socketPath, .profiles) { v throws(ControlAPIError) in
            guard let a = v.array else { throw ControlAPIError("profiles: expected an array") }
            return try a.map { v throws(ControlAPIError) in try ProfileStatus(json: v) }
        }
    }

    public static func reload(socketPath: String) throws(Failure) -> ReloadOutcome {
        try call(socketPath: socketPath, .reload) { v throws(ControlAPIError) in try ReloadOutcome(json: v) }
    }
}
