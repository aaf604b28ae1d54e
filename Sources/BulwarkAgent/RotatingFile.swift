import BulwarkSystem
import Foundation
import Synchronization

/// The violation log: JSON lines appended to one file, rotated by size like vArmor's lumberjack
/// sink (`file` → `file.1` → … → `file.N`, the oldest dropped). Files are 0640, the directory 0750.
public final class RotatingFile: Sendable {
    public let path: String
    let maxBytes: Int
    let backups: Int
    struct State {
        var fd: Int32 = -1
        var size = 0
        var failures = 0
    }
    private let state = Mutex(State())

    public init(path: String, maxBytes: Int, backups: Int) throws {
        self.path = path
        self.maxBytes = maxBytes
        self.backups = backups
        try TrustedDirectory.ensure((path as NSString).deletingLastPathComponent, mode: 0o750)
        let fd = try Self.open(path)
        var st = stat()
        fstat(fd, &st)
        state.withLock {
            $0.fd = fd
            $0.size = Int(st.st_size)
        }
    }

    deinit { state.withLock { if $0.fd >= 0 { close($0.fd) } } }

    public struct OpenError: Error, CustomStringConvertible {
        public var description: String
    }

    /// Opens for appending without following a link; a file someone else owns, or with other
    /// names (a hard link planted by another user), is never written to.
    static func open(_ path: String) throws(OpenError) -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o640)
        guard fd >= 0 else { throw OpenError(description: "\(path): \(String(cString: strerror(errno)))") }
        var st = stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_uid == geteuid(), st.st_nlink == 1 else {
            close(fd)
            throw OpenError(
                description: "\(path) is not a regular file of this user with one name (owner uid \(st.st_uid), "
                    + "\(st.st_nlink) links); remove it and let the agent create it")
        }
        _ = fchmod(fd, 0o640)  // whatever the umask of the moment (the node socket narrows it briefly)
        return fd
    }

    /// Appends lines; write errors are counted (`failures`), never thrown at the pipeline.
    public func write(_ lines: [[UInt8]]) {
        state.withLock { s in
            for line in lines {
                if s.size > 0 && s.size + line.count > maxBytes { rotate(&s) }
                guard s.fd >= 0 else {
                    s.failures += 1
                    continue
                }
                let n = line.withUnsafeBytes { Glibc.write(s.fd, $0.baseAddress, $0.count) }
                if n == line.count { s.size += n } else { s.failures += 1 }
            }
        }
    }

    public var failures: Int { state.withLock { $0.failures } }

    private func rotate(_ s: inout State) {
        if s.fd >= 0 { close(s.fd) }
        if backups == 0 {
            unlink(path)
        } else {
            unlink("\(path).\(backups)")
            for i in stride(from: backups - 1, through: 1, by: -1) { rename("\(path).\(i)", "\(path).\(i + 1)") }
            rename(path, "\(path).1")
        }
        s.fd = (try? Self.open(path)) ?? -1
        s.size = 0
    }
}
