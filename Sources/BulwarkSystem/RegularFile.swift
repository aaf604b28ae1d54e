#if canImport(Glibc)
    import Glibc
#endif

/// Reads a whole regular file with a size bound. A FIFO, device or socket named like a policy or
/// a spec is refused without blocking: the open is non-blocking and the type is checked on the
/// opened descriptor (no window between a check and the open).
public enum RegularFile {
    public enum ReadError: Error, Equatable, CustomStringConvertible {
        case cannotOpen(errno: Int32)
        case notRegular(kind: String)
        case tooLarge(limit: Int)
        case readFailed(errno: Int32)
        case untrusted(owner: UInt32, mode: UInt32)

        public var description: String {
            switch self {
            case .cannotOpen(let e): return "cannot open: \(String(cString: strerror(e)))"
            case .notRegular(let kind): return "is a \(kind), not a regular file"
            case .tooLarge(let limit): return "is larger than \(limit) bytes"
            case .readFailed(let e): return "cannot read: \(String(cString: strerror(e)))"
            case .untrusted(let owner, let mode):
                return "is owned by uid \(owner) with mode \(String(mode, radix: 8)); only root may write it"
            }
        }
    }

    /// The file's bytes; `followSymlinks: false` refuses a symbolic link as the last component;
    /// `trustedOwner` refuses a file not owned by root (or this user) or writable by group or others.
    public static func read(
        _ path: String, maxBytes: Int, followSymlinks: Bool = true, trustedOwner: Bool = false
    ) throws(ReadError) -> [UInt8] {
        var flags = O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY
        if !followSymlinks { flags |= O_NOFOLLOW }
        let fd = open(path, flags)
        guard fd >= 0 else { throw .cannotOpen(errno: errno) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw .readFailed(errno: errno) }
        guard st.st_mode & S_IFMT == S_IFREG else { throw .notRegular(kind: kind(st.st_mode)) }
        if trustedOwner && ((st.st_uid != 0 && st.st_uid != geteuid()) || st.st_mode & 0o022 != 0) {
            throw .untrusted(owner: st.st_uid, mode: st.st_mode & 0o7777)
        }
        if st.st_size > maxBytes { throw .tooLarge(limit: maxBytes) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size) + 1)
        var count = 0
        while true {
            if count == out.count {
                if count > maxBytes { throw .tooLarge(limit: maxBytes) }
                out += [UInt8](repeating: 0, count: min(out.count, maxBytes + 1 - count) + 1)
            }
            let n = out.withUnsafeMutableBytes { raw in Glibc.read(fd, raw.baseAddress! + count, raw.count - count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw .readFailed(errno: errno)
            }
            if n == 0 { break }
            count += n
        }
        if count > maxBytes { throw .tooLarge(limit: maxBytes) }
        out.removeLast(out.count - count)
        return out
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "FIFO"
        case S_IFCHR: return "character device"
        case S_IFBLK: return "block device"
        case S_IFSOCK: return "socket"
        case S_IFDIR: return "directory"
        case S_IFLNK: return "symbolic link"
        default: return "special file"
        }
    }
}
