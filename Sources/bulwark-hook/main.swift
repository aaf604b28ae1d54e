// bulwark-hook: the OCI hook. `bulwark-hook createRuntime|prestart|poststop [--pin-path DIR]
// [--state-dir DIR]`, container state on stdin. Exit 0 when done or nothing to do; exit 1 with one
// line on stderr when a targeted container cannot be confined (the runtime then refuses it).
import BulwarkBPFMaps
import BulwarkHook
import BulwarkOCI
import BulwarkSystem

#if canImport(Glibc)
    import Glibc
#endif

var processStart = timespec()
clock_gettime(CLOCK_MONOTONIC, &processStart)

/// One line on stderr (the runtime shows it when the hook fails).
func say(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

func die(_ message: String) -> Never {
    say("bulwark-hook: \(message)")
    exit(1)
}

var args = Array(CommandLine.arguments.dropFirst())
var pinPath = Enforcer.defaultPinPath
var stateDir = "/run/bulwark/containers"
var stageName: String?
while !args.isEmpty {
    let a = args.removeFirst()
    switch a {
    case "--pin-path", "--state-dir":
        guard !args.isEmpty else { die("\(a) needs a value") }
        if a == "--pin-path" { pinPath = args.removeFirst() } else { stateDir = args.removeFirst() }
    default: stageName = a
    }
}
guard let stageName, let stage = Hook.Stage(rawValue: stageName) else {
    die("usage: bulwark-hook createRuntime|prestart|poststop [--pin-path DIR] [--state-dir DIR]")
}
// the state on stdin, bounded (a runtime writes a few KiB)
var input: [UInt8] = []
var chunk = [UInt8](repeating: 0, count: 65536)
while input.count <= OCIState.maxBytes {
    let n = read(0, &chunk, chunk.count)
    if n < 0 && errno == EINTR { continue }
    if n <= 0 { break }
    input += chunk[0..<n]
}
let state: OCIState
do { state = try OCIState.parse(input) } catch { die("\(stage.rawValue): \(error)") }
do {
    var hook = Hook(enforcer: Enforcer(pinPath: pinPath), stateDirectory: stateDir)
    hook.startedAt = UInt64(processStart.tv_sec) * 1_000_000_000 + UInt64(processStart.tv_nsec)
    let outcome = try hook.run(stage: stage, state: state)
    switch outcome {
    case .ignoredFailure(let why):
        say("bulwark-hook: warning: \(why) (failure policy Ignore)")
    case .recordFailed(let why):
        say("bulwark-hook: warning: \(why); its events will lack names")
    default: break
    }
} catch {
    die(error.message)
}
