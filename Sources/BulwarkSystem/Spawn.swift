import CBulwarkSpawn

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a program with an argument vector (never through a shell) and collects its exit status and
/// the first 64 KiB of stderr. Used for `apparmor_parser` and, by the runtime wrapper, `bulwark
/// deliver`. Every run has a deadline: a program still running then is killed (status -1), so a
/// hung helper never hangs a container start or a reload.
public enum Spawn {
    public struct Result: Sendable {
        public var status: Int32
        public var stderr: String
    }

    public static func run(_ path: String, _ args: [String], timeoutSeconds: Int = 60) -> Result {
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { return Result(status: -1, stderr: "pipe: \(Errno.current)") }
        // not inherited by what other threads spawn meanwhile (the child gets its stderr by dup2)
        for fd in pipeFDs { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
        posix_spawn_file_actions_adddup2(&actions, pipeFDs[1], 2)
        // nothing else reaches the child: descriptors without close-on-exec (NIO accepts its
        // connections without it) would keep the agent's clients connected to a helper
        bulwark_spawn_close_from(&actions, 3)
        let argv = ([path] + args).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        let envp: [UnsafeMutablePointer<CChar>?] = [strdup("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), nil]
        defer { for p in envp { free(p) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
        close(pipeFDs[1])
        defer { close(pipeFDs[0]) }
        guard rc == 0 else { return Result(status: -1, stderr: "cannot run \(path): \(Errno(rc))") }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 4096)
        var start = timespec()
        clock_gettime(CLOCK_MONOTONIC, &start)
        var timedOut = false
        while true {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let left =
                timeoutSeconds * 1000 - (now.tv_sec - start.tv_sec) * 1000 - (now.tv_nsec - start.tv_nsec) / 1_000_000
            var p = pollfd(fd: pipeFDs[0], events: Int16(POLLIN), revents: 0)
            if left <= 0 || poll(&p, 1, Int32(clamping: left)) == 0 {
                timedOut = true
                kill(pid, SIGKILL)
                break
            }
            let n = read(pipeFDs[0], &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if out.count < 65536 { out += buf[0..<n] }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        if timedOut {
            return Result(status: -1, stderr: "\(path) did not finish within \(timeoutSeconds) s and was killed")
        }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Result(status: code, stderr: String(decoding: out, as: UTF8.self))
    }

    /// The first executable `name` in the usual system directories.
    public static func find(_ name: String) -> String? {
        for dir in ["/usr/sbin", "/sbin", "/usr/bin", "/bin"] where access(dir + "/" + name, X_OK) == 0 {
            return dir + "/" + name
        }
        return nil
    }
}
