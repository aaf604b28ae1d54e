#if canImport(Glibc)
    import Glibc
#endif

/// Writes a file atomically: a temporary file in the same directory, fsync, rename. Readers
/// see the old or the new content, never a torn one. `durable: false` skips the fsync (for files
/// that do not outlive a crash anyway, like a container bundle's config.json on the start path).
public enum AtomicFile {
    public struct WriteError: Error, CustomStringConvertible {
        public var description: String
    }

    public static func write(
        _ bytes: [UInt8], to path: String, permissions: mode_t = 0o644, durable: Bool = true
    ) throws(WriteError) {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[..<$0]) } ?? "."
        let name = slash.map { String(path[path.index(after: $0)...]) } ?? path
        var template = Array(((dir.isEmpty ? "" : dir) + "/." + name + ".XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else {
            throw WriteError(description: "\(path): cannot create a temporary file: \(Errno.current)")
        }
        _ = fcntl(fd, F_SETFD, FD_CLOEXEC)  // a spawn meanwhile must not inherit it
        let tmp = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var done = false
        defer { if !done { unlink(tmp) } }
        var problem: Errno?
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count, problem == nil {
                do throws(Errno) {
                    off += try Errno.retrying { Glibc.write(fd, raw.baseAddress! + off, raw.count - off) }
                } catch { problem = error }
            }
        }
        if problem == nil && fchmod(fd, permissions) != 0 { problem = .current }
        if problem == nil && durable && fsync(fd) != 0 { problem = .current }
        close(fd)
        if problem == nil && rename(tmp, path) != 0 { problem = .current }
        if let problem { throw WriteError(description: "\(path): cannot write: \(problem)") }
        done = true
    }
}
