import Glibc

/// Connecting a stream socket to a unix path, once for every client in the project (the node
/// socket's CLI client, the agent's stale-socket check, the NRI plugin). A path that does not fit
/// `sun_path` is an error, never silently truncated into another path.
public enum UnixSocket {
    public enum ConnectError: Error, Equatable, CustomStringConvertible {
        case pathTooLong(path: String, limit: Int)
        case system(errno: Int32)

        public var description: String {
            switch self {
            case .pathTooLong(let p, let limit): return "socket path \(p) is longer than \(limit) bytes"
            case .system(let e): return String(cString: strerror(e))
            }
        }
    }

    /// A connected, close-on-exec stream socket; the caller closes it.
    public static func connect(path: String) throws(ConnectError) -> Int32 {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard path.utf8.count < capacity else { throw .pathTooLong(path: path, limit: capacity - 1) }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.enumerated() { raw[i] = b }
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw .system(errno: errno) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            let e = errno
            close(fd)
            throw .system(errno: e)
        }
        return fd
    }
}
