// bulwark-hook: the OCI hook. `bulwark-hook createRuntime|prestart|poststop [--pin-path DIR]
// [--state-dir DIR]`, container state on stdin. Exit 0 when done or nothing to do; exit 1 with one
// line on stderr when a targeted container cannot be confined (the runtime then refuses it).
import BulwarkBPF
import BulwarkHook
import BulwarkOCI
import Foundation

var processStart = timespec()
clock_gettime(CLOCK_MONOTONIC, &processStart)

func die(_ message: String) -> Never {
    FileHandle.standardError.write(Data("bulwark-hook: \(message)\n".utf8))
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
let input = FileHandle.standardInput.readData(ofLength: OCIState.maxBytes + 1)
let state: OCIState
do { state = try OCIState.parse(input) } catch { die("\(stage.rawValue): \(error)") }
do {
    var hook = Hook(enforcer: Enforcer(pinPath: pinPath), stateDirectory: stateDir)
    hook.startedAt = UInt64(processStart.tv_sec) * 1_000_000_000 + UInt64(processStart.tv_nsec)
    let outcome = try hook.run(stage: stage, state: state)
    switch outcome {
    case .ignoredFailure(let why):
        FileHandle.standardError.write(Data("bulwark-hook: warning: \(why) (failure policy Ignore)\n".utf8))
    case .recordFailed(let why):
        FileHandle.standardError.write(Data("bulwark-hook: warning: \(why); its events will lack names\n".utf8))
    default: break
    }
} catch {
    die(error.message)
}
