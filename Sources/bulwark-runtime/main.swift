// bulwark-runtime: an OCI runtime wrapper (podman --runtime, containerd runc BinaryName, CRI-O
// runtime_path). Rewrites config.json on create/run, then execve()s the real runtime (node config
// `runtime`, default runc) with the same argv, environment and file descriptors. No Foundation:
// this process runs on every container start and every runtime call.
import BulwarkOCI
import BulwarkRuntime
import BulwarkStart
import BulwarkSystem

#if canImport(Glibc)
    import Glibc
#endif

var t0 = Wrapper.monotonicNanoseconds()
let args = Array(CommandLine.arguments.dropFirst())
// global options (--log) for failure messages; the command itself is read below, as both runc and
// crun would read it
let globals = RuntimeCommandLine.parse(args)

/// Before exec, a failure goes to stderr and, with `--log-format=json`, as a JSON line to `--log`.
func fail(_ message: String) -> Never {
    let text = "bulwark-runtime: \(message)"
    Wrapper.standardError(text)
    if let log = globals.log, globals.logFormat == "json" {
        var w = JSONWriter(capacity: 256)
        w.raw("{\"level\":\"error\"")
        w.member("msg", text)
        w.member("time", utcTimestamp())
        w.raw("}\n")
        let fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o644)
        if fd >= 0 {
            _ = w.bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
    }
    exit(1)
}

/// RFC 3339 UTC, as runc's own log lines.
func utcTimestamp() -> String {
    var now = time(nil)
    var tm = tm()
    gmtime_r(&now, &tm)
    var buf = [CChar](repeating: 0, count: 32)
    let n = strftime(&buf, buf.count, "%Y-%m-%dT%H:%M:%SZ", &tm)
    return String(decoding: buf.prefix(n).map { UInt8(bitPattern: $0) }, as: UTF8.self)
}

let selfPath = Paths.executable() ?? CommandLine.arguments[0]
let wrapper = Wrapper(configPath: Wrapper.configPath(), executableDirectory: Paths.directory(of: selfPath))
let index: StartIndex
do { index = try wrapper.index() } catch { fail(error.message) }
Wrapper.trace("start index", since: &t0)

/// The real runtime: an absolute path, or a name on PATH that is not this wrapper.
func realRuntime() -> String {
    if index.runtime.hasPrefix("/") { return index.runtime }
    let path = Paths.environment("PATH") ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(index.runtime)"
        guard Paths.isExecutable(candidate) else { continue }
        if Paths.resolved(candidate) != selfPath { return candidate }
    }
    fail("the real runtime \"\(index.runtime)\" is not on PATH (node config key `runtime`)")
}

let runtime = realRuntime()
let cmd = RuntimeCommandLine.parseAgreed(args)
do {
    let outcome = try wrapper.prepare(cmd, cwd: Paths.currentDirectory(), index: index)
    if case .rewritten(_, _, let notes) = outcome {
        for n in notes { Wrapper.standardError("bulwark-runtime: note: \(n)") }
    }
} catch {
    fail(error.message)
}
Wrapper.trace("prepare", since: &t0)
var argv: [UnsafeMutablePointer<CChar>?] = ([runtime] + args).map { strdup($0) } + [nil]
execv(runtime, &argv)
fail("cannot execute \(runtime): \(Errno.current)")
