// bulwark-bench-model: what behaviour modeling costs (issue 14), measured side by side in one run
// on this machine's kernel (the process tracker's BTF tracepoints load here; root).
//
// - a syscall (getppid) in a namespace with no recorder attached, with the sys_enter recorder
//   attached but this namespace not recorded (every other container on a node while something is
//   modeled), and recorded (a modeled container): ns/op and the overhead against the first;
// - posix_spawn + wait of a static binary with no tracker loaded and with it (fork/exec/exit
//   tracepoints): µs/op;
// - the modeler absorbing recorded events (BPF file and AppArmor file records with generalisation):
//   events/s.
// Rounds alternate the configurations; medians over rounds. Ends with one RESULT line.
import BulwarkBPF
import BulwarkBPFMaps
import BulwarkModel
import BulwarkOCI
import Foundation

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

func median(_ xs: [Double]) -> Double { xs.sorted()[xs.count / 2] }

let env = ProcessInfo.processInfo.environment
let rounds = Int(env["BENCH_ROUNDS"] ?? "") ?? 7
let calls = Int(env["BENCH_SYSCALLS"] ?? "") ?? 2_000_000
let spawns = Int(env["BENCH_SPAWNS"] ?? "") ?? 300
let events = Int(env["BENCH_EVENTS"] ?? "") ?? 200_000

guard getuid() == 0 else {
    FileHandle.standardError.write(Data("bulwark-bench-model: needs root\n".utf8))
    exit(2)
}
// this process in a mount namespace of its own, as a container's processes are (the script starts
// it under `unshare -m`)
var st = stat()
var host = stat()
stat("/proc/self/ns/mnt", &st)
stat("/proc/1/ns/mnt", &host)
guard st.st_ino != host.st_ino else {
    FileHandle.standardError.write(
        Data("bulwark-bench-model: run it in a mount namespace of its own (unshare -m)\n".utf8))
    exit(2)
}
let ns = UInt32(truncatingIfNeeded: st.st_ino)

func syscallNs() -> Double {
    let t = now()
    for _ in 0..<calls { _ = getppid() }
    return Double(now() - t) / Double(calls)
}

func spawnUs() -> Double {
    let t = now()
    for _ in 0..<spawns {
        var pid: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/busybox"), strdup("true"), nil]
        defer { for a in argv { free(a) } }
        guard posix_spawn(&pid, "/bin/busybox", nil, nil, argv, nil) == 0 else { continue }
        var status: Int32 = 0
        waitpid(pid, &status, 0)
    }
    return Double(now() - t) / Double(spawns) / 1000
}

var detached: [Double] = []
var attached: [Double] = []
var recorded: [Double] = []
var spawnPlain: [Double] = []
var spawnTracked: [Double] = []
for _ in 0..<rounds {
    spawnPlain.append(spawnUs())
    let tracker: ProcessTracker
    do { tracker = try ProcessTracker.start() } catch {
        FileHandle.standardError.write(Data("bulwark-bench-model: the tracker does not load: \(error.message)\n".utf8))
        exit(2)
    }
    spawnTracked.append(spawnUs())
    detached.append(syscallNs())
    try tracker.setRecorder(true)
    attached.append(syscallNs())
    try tracker.record(namespace: ns, profile: "bench")
    recorded.append(syscallNs())
    let seen = tracker.syscalls(namespace: ns)?.numbers.count ?? 0
    precondition(seen > 0, "the recorder saw nothing")
    tracker.stop()
}

// the modeler: BPF and AppArmor file records of a busy container (varied paths, generalised)
var bodies: [(Bool, JSONObject)] = []
for i in 0..<1000 {
    bodies.append(
        (
            true,
            JSONObject([
                ("operation", .string("File")), ("permissions", .array([.string("read")])),
                ("path", .string("/proc/\(1000 + i)/status")),
            ])
        ))
    bodies.append(
        (
            false,
            JSONObject([
                ("profile", .string("bench")), ("operation", .string("open")),
                ("name", .string("/var/cache/app/\(i % 50)/0123456789abcdef0123456789abcd\(i % 10)f")),
                ("deniedMask", .string("r")), ("requestedMask", .string("r")), ("fsuid", .number(0)),
                ("ouid", .number(0)),
            ])
        ))
}
let generaliser = PathGeneraliser()
var model = BehaviorModel(name: "bench")
let t = now()
for i in 0..<events {
    let (bpf, body) = bodies[i % bodies.count]
    if bpf { model.addBPF(body, generaliser: generaliser) } else { model.addAppArmor(body, generaliser: generaliser) }
}
let perSecond = Double(events) / (Double(now() - t) / 1e9)

let d = median(detached)
let a = median(attached)
let r = median(recorded)
print("behaviour modeling overhead, \(rounds) rounds (medians)")
print(String(format: "  getppid, no recorder attached      %7.1f ns/op", d))
print(String(format: "  getppid, recorder on, not recorded %7.1f ns/op  (+%.1f%%)", a, (a / d - 1) * 100))
print(String(format: "  getppid, namespace recorded        %7.1f ns/op  (+%.1f%%)", r, (r / d - 1) * 100))
print(
    String(
        format: "  spawn+wait busybox true: no tracker %.1f µs, tracker loaded %.1f µs (+%.1f%%)", median(spawnPlain),
        median(spawnTracked), (median(spawnTracked) / median(spawnPlain) - 1) * 100))
print(
    String(
        format: "  modeler: %.0f recorded events/s into a model (%d files after generalisation)", perSecond,
        (model.appArmor?.files.count ?? 0) + (model.bpf?.files.count ?? 0)))
print(
    String(
        format:
            "RESULT syscall_ns_detached=%.1f syscall_ns_attached=%.1f syscall_ns_recorded=%.1f recorded_overhead_pct=%.1f spawn_us_no_tracker=%.1f spawn_us_tracker=%.1f model_events_per_s=%.0f",
        d, a, r, (r / d - 1) * 100, median(spawnPlain), median(spawnTracked), perSecond))
