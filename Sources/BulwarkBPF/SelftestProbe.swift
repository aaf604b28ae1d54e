import BulwarkBPFMaps
import Foundation

/// The acts `bulwark selftest` asks a probe process (running in a throwaway mount namespace) to
/// perform. One act per line on stdin; one answer per line on stdout: `ok` or `errno N`.
/// `exec PATH` replaces the probe (no answer when it succeeds; the exit status tells).
public enum SelftestProbe {
    public static func run() -> Int32 {
        say("ready")
        while let line = readLine() {
            let words = line.split(separator: " ").map(String.init)
            guard let act = words.first else { continue }
            let rc = perform(act, Array(words.dropFirst()))
            say(rc == 0 ? "ok" : "errno \(rc)")
        }
        return 0
    }

    /// Unbuffered: the parent waits for each line.
    static func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }

    static func result(_ ok: Bool) -> Int32 { ok ? 0 : errno }

    /// Performs one act; returns 0 or the errno.
    public static func perform(_ act: String, _ a: [String]) -> Int32 {
        func arg(_ i: Int) -> String { i < a.count ? a[i] : "" }
        switch act {
        case "read", "write", "append", "create", "trunc":
            let flags: Int32
            switch act {
            case "read": flags = O_RDONLY
            case "write": flags = O_WRONLY
            case "append": flags = O_WRONLY | O_APPEND
            case "trunc": flags = O_WRONLY | O_TRUNC
            default: flags = O_WRONLY | O_CREAT | O_EXCL
            }
            let fd = open(arg(0), flags | O_CLOEXEC, 0o600)
            if fd < 0 { return errno }
            close(fd)
            return 0
        case "link": return result(link(arg(0), arg(1)) == 0)
        case "symlink": return result(symlink(arg(0), arg(1)) == 0)
        case "rename": return result(rename(arg(0), arg(1)) == 0)
        case "exec":
            let path = arg(0)
            var argv: [UnsafeMutablePointer<CChar>?] = [strdup(path), nil]
            execv(path, &argv)
            return errno
        case "socket":
            let fd = socket(Int32(arg(0)) ?? 0, Int32(arg(1)) ?? 0, Int32(arg(2)) ?? 0)
            if fd < 0 { return errno }
            close(fd)
            return 0
        case "connect", "sendto":
            return network(act, host: arg(0), port: UInt16(arg(1)) ?? 0)
        case "mount":
            return result(mount("tmpfs", arg(0), "tmpfs", 0, nil) == 0)
        case "umount":
            return result(umount(arg(0)) == 0)
        case "repeat":  // repeat N ACT ARGS...: the first errno, or 0
            guard let n = Int(arg(0)), a.count > 1 else { return EINVAL }
            for _ in 0..<n {
                let rc = perform(a[1], Array(a.dropFirst(2)))
                if rc != 0 { return rc }
            }
            return 0
        case "chown":
            return result(chown(arg(0), UInt32(arg(1)) ?? 1, UInt32(arg(1)) ?? 1) == 0)
        default:
            return EINVAL
        }
    }

    /// connect (TCP) or sendto (UDP) to an IPv4 or IPv6 address (IPv4-mapped allowed).
    static func network(_ act: String, host: String, port: UInt16) -> Int32 {
        let type = act == "connect" ? Int32(SOCK_STREAM.rawValue) : Int32(SOCK_DGRAM.rawValue)
        if host.contains(":") {
            var sa = sockaddr_in6()
            sa.sin6_family = sa_family_t(AF_INET6)
            sa.sin6_port = port.bigEndian
            guard inet_pton(AF_INET6, host, &sa.sin6_addr) == 1 else { return EINVAL }
            return send(family: AF_INET6, type: type, act: act, address: sa)
        }
        var sa = sockaddr_in()
        sa.sin_family = sa_family_t(AF_INET)
        sa.sin_port = port.bigEndian
        guard inet_pton(AF_INET, host, &sa.sin_addr) == 1 else { return EINVAL }
        return send(family: AF_INET, type: type, act: act, address: sa)
    }

    static func send<T>(family: Int32, type: Int32, act: String, address: T) -> Int32 {
        let fd = socket(family, type, 0)
        if fd < 0 { return errno }
        defer { close(fd) }
        var a = address
        let size = socklen_t(MemoryLayout<T>.size)
        let rc = withUnsafePointer(to: &a) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Int in
                if act == "connect" { return Int(connect(fd, sa, size)) }
                let byte: [UInt8] = [0]
                return byte.withUnsafeBytes { sendto(fd, $0.baseAddress, 1, 0, sa, size) }
            }
        }
        return rc < 0 ? errno : 0
    }
}
