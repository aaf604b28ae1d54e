#if canImport(Glibc)
    import Glibc
#endif

/// A directory Bulwark writes into or reads trusted state from (event log, profiles, sockets,
/// container records), checked as OpenSSH checks its control files: assume the kernel's
/// `protected_symlinks`/`protected_regular` are off. The directory itself must be a real
/// directory (not a symbolic link), owned by root or by this process's user, and writable by
/// nobody else; each parent must be owned by root or this user and not writable by others, except
/// a sticky directory such as /tmp (whose entries others cannot replace). A missing directory is
/// created with `mode` (parents 0755).
public enum TrustedDirectory {
    public struct Untrusted: Error, Equatable, CustomStringConvertible {
        public var path: String
        public var reason: String
        public var description: String { "\(path): \(reason); fix its owner and mode (chown root, chmod go-w)" }
    }

    public static func ensure(_ path: String, mode: mode_t = 0o755) throws(Untrusted) {
        guard path.hasPrefix("/") else { throw Untrusted(path: path, reason: "not an absolute path") }
        let parts = path.split(separator: "/").map(String.init)
        guard !parts.contains(".."), !parts.contains(".") else {
            throw Untrusted(path: path, reason: "contains . or .. components")
        }
        var current = ""
        for (i, part) in parts.enumerated() {
            current += "/" + part
            let last = i == parts.count - 1
            var st = stat()
            if lstat(current, &st) != 0 {
                guard errno == ENOENT else { throw Untrusted(path: current, reason: errnoText()) }
                if mkdir(current, last ? mode : 0o755) == 0 {
                    // the umask may have taken bits; through a descriptor, never through a link
                    // someone planted in a race
                    if last {
                        let fd = open(current, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
                        if fd >= 0 {
                            _ = fchmod(fd, mode)
                            close(fd)
                        }
                    }
                } else if errno != EEXIST {
                    throw Untrusted(path: current, reason: "cannot create: \(errnoText())")
                }
                guard lstat(current, &st) == 0 else { throw Untrusted(path: current, reason: errnoText()) }
            }
            try check(current, st, final: last)
        }
    }

    static func check(_ path: String, _ st: stat, final: Bool) throws(Untrusted) {
        let type = st.st_mode & S_IFMT
        if type == S_IFLNK {
            // a parent may be a link only when root owns it (/var/run → /run); the directory itself never
            guard !final, st.st_uid == 0 else {
                throw Untrusted(path: path, reason: "is a symbolic link (owned by uid \(st.st_uid))")
            }
            var target = stat()
            guard stat(path, &target) == 0 else { throw Untrusted(path: path, reason: errnoText()) }
            return try check(path, target, final: false)
        }
        guard type == S_IFDIR else { throw Untrusted(path: path, reason: "is not a directory") }
        let me = geteuid()
        guard st.st_uid == 0 || st.st_uid == me else {
            throw Untrusted(path: path, reason: "is owned by uid \(st.st_uid), not root")
        }
        let othersWrite = st.st_mode & 0o022 != 0
        let sticky = st.st_mode & S_ISVTX != 0
        if othersWrite && (final || !sticky) {
            throw Untrusted(
                path: path, reason: "is writable by group or others (mode \(String(st.st_mode & 0o7777, radix: 8)))")
        }
    }

    static func errnoText() -> String { String(cString: strerror(errno)) }
}
