// bulwark-runtime: an OCI runtime wrapper (podman --runtime, containerd runc BinaryName, CRI-O
// runtime_path). Rewrites config.json on create/run, then execve()s the real runtime (node config
// `runtime`, default runc) with the same argv, environment and file descriptors.
import BulwarkOCI
import BulwarkPolicy
import BulwarkRuntime
import BulwarkSystem
import Foundation

var t0 = DispatchTime.now().uptimeNanoseconds
let args = Array(CommandLine.arguments.dropFirst())
// global options (--log) for failure messages; the command itself is read below, as both runc and
// crun would read it
let globals = RuntimeCommandLine.parse(args)

/// Before exec, a failure goes to stderr and, with `--log-format=json`, as a JSON line to `--log`.
func fail(_ message: String) -> Never {
    let text = "bulwark-runtime: \(message)"
    FileHandle.standardError.write(Data((text + "\n").utf8))
    if let log = globals.log, globals.logFormat == "json" {
        let time = ISO8601DateFormatter().string(from: Date())
        let line: [String: String] = ["level": "error", "msg": text, "time": time]
        if let data = try? JSONSerialization.data(withJSONObject: line, options: [.sortedKeys]),
            let h = FileHandle(forWritingAtPath: log)
                ?? {
                    _ = FileManager.default.createFile(atPath: log, contents: nil)
                    return FileHandle(forWritingAtPath: log)
                }()
        {
            h.seekToEndOfFile()
            h.write(data + Data("\n".utf8))
            try? h.close()
        }
    }
    exit(1)
}

let config: NodeConfig
do { config = try PolicyFiles.loadConfig(explicit: nil) } catch { fail("node config: \(error)") }

Wrapper.trace("config", since: &t0)
let selfPath =
    (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
let selfDir = (selfPath as NSString).deletingLastPathComponent

/// The real runtime: an absolute path, or a name on PATH that is not this wrapper.
func realRuntime() -> String {
    if config.runtime.hasPrefix("/") { return config.runtime }
    let path =
        ProcessInfo.processInfo.environment["PATH"] ?? "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    for dir in path.split(separator: ":") {
        let candidate = "\(dir)/\(config.runtime)"
        guard FileManager.default.isExecutableFile(atPath: candidate) else { continue }
        let resolved = (candidate as NSString).resolvingSymlinksInPath
        if resolved != selfPath { return candidate }
    }
    fail("the real runtime \"\(config.runtime)\" is not on PATH (node config key `runtime`)")
}

let runtime = realRuntime()
let cmd = RuntimeCommandLine.parseAgreed(args)
Wrapper.trace("runtime path", since: &t0)
do {
    let outcome = try Wrapper(config: config, executableDirectory: selfDir).prepare(
        cmd, cwd: FileManager.default.currentDirectoryPath)
    if case .rewritten(_, _, let notes) = outcome {
        for n in notes { FileHandle.standardError.write(Data("bulwark-runtime: note: \(n)\n".utf8)) }
    }
} catch {
    fail(error.message)
}
Wrapper.trace("prepare", since: &t0)
var argv: [UnsafeMutablePointer<CChar>?] = ([runtime] + args).map { strdup($0) } + [nil]
execv(runtime, &argv)
fail("cannot execute \(runtime): \(String(cString: strerror(errno)))")
