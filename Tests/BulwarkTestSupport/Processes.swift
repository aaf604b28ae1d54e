import CBulwarkSpawn
import Foundation

/// Runs `path` and returns its exit status and combined stdout+stderr (posix_spawn, only
/// descriptors 0-2 inherited: see `spawn`).
public func capture(_ path: String, _ args: [String], environment: [String: String]? = nil) throws -> (Int32, String) {
    try captureDetached(path, args, environment: environment ?? ProcessInfo.processInfo.environment)
}

/// Like `capture`, for commands that leave a daemon behind (`podman run -d`): posix_spawn and
/// waitpid with the output in a file. (Foundation's Process waits for an inherited descriptor to
/// close, which a daemon such as conmon keeps open for the container's lifetime.)
public func captureDetached(_ path: String, _ args: [String], environment: [String: String]) throws -> (Int32, String) {
    let file = NSTemporaryDirectory() + "bw-out-\(UUID().uuidString)"
    defer { unlink(file) }
    let pid = try spawn(path, args, environment: environment, output: file)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
}

public func bulwarkDirectory() -> String {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("bulwark-hook").path) {
            return dir.path
        }
        dir.deleteLastPathComponent()
    }
    return Bundle.main.bundleURL.path
}

/// Starts `path` with stdin from /dev/null and stdout+stderr into `output`; returns its pid.
public func spawn(_ path: String, _ args: [String], environment: [String: String], output: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
    posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    // only 0-2: the test process's listeners (an in-process agent's accepted connections have no
    // close-on-exec) must not live on in a daemon this test starts
    bulwark_spawn_close_from(&actions, 3)
    let argv = ([path] + args).map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv + envp { free(p) } }
    var pid: pid_t = 0
    let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
    guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EIO) }
    return pid
}

/// Waits until `condition` holds (polling), up to `timeout` seconds.
public func eventually(timeout: Double = 10, _ condition: () -> Bool) -> Bool {
    let end = Date().addingTimeInterval(timeout)
    while Date() < end {
        if condition() { return true }
        usleep(50_000)
    }
    return condition()
}

/// Finds a tool on PATH (and in the sbin directories).
public func which(_ tool: String) -> String? {
    // (`String.init` pins the element type: with a bare `split` the `+` made Swift pick the
    // character-array overload, and only the two sbin directories were ever searched)
    let path = ProcessInfo.processInfo.environment["PATH"] ?? "/usr/sbin:/usr/bin:/sbin:/bin"
    for dir in path.split(separator: ":").map(String.init) + ["/sbin", "/usr/sbin"] {
        let p = "\(dir)/\(tool)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}
