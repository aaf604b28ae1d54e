import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// Writes a file atomically: a temporary file in the same directory, fsync, rename. Readers
/// see the old or the new content, never a torn one. `durable: false` skips the fsync (for files
/// that do not outlive a crash anyway, like a container bundle's config.json on the start path).
public enum AtomicFile {
    public static func write(_ data: Data, to path: String, permissions: mode_t = 0o644, durable: Bool = true) throws {
        let dir = (path as NSString).deletingLastPathComponent
        let template = (dir.isEmpty ? "." : dir) + "/.\((path as NSString).lastPathComponent).XXXXXX"
        var buf = Array(template.utf8CString)
        let fd = mkstemp(&buf)
        guard fd >= 0 else {
            throw PolicyFiles.WriteError(
                description: "\(path): cannot create a temporary file: \(String(cString: strerror(errno)))")
        }
        let tmp = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var ok = false
        defer {
            if !ok { unlink(tmp) }
        }
        let written = data.withUnsafeBytes { raw -> Int in
            var off = 0
            while off < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + off, raw.count - off)
                if n < 0 {
                    if errno == EINTR { continue }
                    return -1
                }
                off += n
            }
            return off
        }
        let synced = fchmod(fd, permissions) == 0 && (!durable || fsync(fd) == 0)
        close(fd)
        guard written == data.count, synced, rename(tmp, path) == 0 else {
            throw PolicyFiles.WriteError(description: "\(path): cannot write: \(String(cString: strerror(errno)))")
        }
        ok = true
    }
}
