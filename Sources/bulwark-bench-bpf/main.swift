// bulwark-bench-bpf: per-operation overhead of the BPF LSM enforcer, measured side by side in one
// run on a kernel with BPF LSM (scripts/bench-bpf.sh starts it in the VM when needed).
//
// Configurations: programs detached (no enforcer), attached but this namespace unbound, and bound
// to profiles with 0, 64 and 1024 rules per type (file, exec, egress; none matching the operations).
// Operations: openat+close of a file, socket+connect to a closed local port+close, and
// posix_spawn+wait of a static binary (busybox true). Each round visits every configuration; the
// report gives the median over rounds of ns/op and the ratio to "detached".
import BulwarkBPF
import BulwarkBPFMaps
import BulwarkPolicy
import BulwarkProfiles
import Foundation

let args = CommandLine.arguments
let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? args[0]

func now() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

// MARK: worker (runs in its own mount namespace; one command per line, answers ns/op)

func worker() -> Never {
    func say(_ s: String) {
        let b = Array((s + "\n").utf8)
        _ = b.withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
    }
    say("ready")
    while let line = readLine() {
        let w = line.split(separator: " ").map(String.init)
        guard w.count >= 3, let n = Int(w[1]) else {
            say("error")
            continue
        }
        let start = now()
        switch w[0] {
        case "open":
            for _ in 0..<n {
                let fd = open(w[2], O_RDONLY | O_CLOEXEC)
                if fd >= 0 { close(fd) }
            }
        case "connect":
            var sa = sockaddr_in()
            sa.sin_family = sa_family_t(AF_INET)
            sa.sin_port = UInt16(w[2])!.bigEndian
            sa.sin_addr.s_addr = UInt32(0x7f00_0001).bigEndian
            for _ in 0..<n {
                let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
                _ = withUnsafePointer(to: &sa) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                        connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                    }
                }
                close(fd)
            }
        case "exec":
            let argv: [UnsafeMutablePointer<CChar>?] = [strdup(w[2]), strdup("true"), nil]
            for _ in 0..<n {
                var pid: pid_t = 0
                if posix_spawn(&pid, w[2], nil, nil, argv, environ) == 0 {
                    var status: Int32 = 0
                    waitpid(pid, &status, 0)
                }
            }
        default:
            say("error")
            continue
        }
        say(String(Double(now() - start) / Double(n)))
    }
    exit(0)
}

if args.count > 1 && args[1] == "worker" { worker() }

// MARK: driver

func fail(_ s: String) -> Never {
    FileHandle.standardError.write(Data("bulwark-bench-bpf: \(s)\n".utf8))
    exit(1)
}

guard getuid() == 0 else { fail("run as root") }
let support = KernelSupport.probe()
guard support.usable else { fail("BPF LSM unavailable: \(support.problems.joined(separator: "; "))") }

let rounds = Int(ProcessInfo.processInfo.environment["BENCH_ROUNDS"] ?? "") ?? 7
let openN = Int(ProcessInfo.processInfo.environment["BENCH_OPEN_N"] ?? "") ?? 20000
let connectN = Int(ProcessInfo.processInfo.environment["BENCH_CONNECT_N"] ?? "") ?? 5000
let execN = Int(ProcessInfo.processInfo.environment["BENCH_EXEC_N"] ?? "") ?? 200
let busybox = "/bin/busybox"
guard FileManager.default.isExecutableFile(atPath: busybox) else { fail("\(busybox) (busybox-static) is missing") }

let dir = "/tmp/bulwark-bench-\(getpid())"
try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
let target = dir + "/file"
_ = FileManager.default.createFile(atPath: target, contents: Data("x".utf8))

func profile(rules n: Int) -> BPFProfile {
    var r = ""
    if n > 0 {
        r += "        files:\n"
        for i in 0..<n {
            let pattern = i % 3 == 0 ? "/opt/bench/f\(i)" : i % 3 == 1 ? "/srv/b\(i)/**" : "/**/x\(i).conf"
            r += "        - {qualifiers: [deny], pattern: \"\(pattern)\", permissions: [read, write]}\n"
        }
        r += "        processes:\n"
        for i in 0..<n { r += "        - {qualifiers: [deny], pattern: /opt/bin\(i)/**, permissions: [exec]}\n" }
        r += "        network:\n          egress:\n            toDestinations:\n"
        for i in 0..<n {
            r += "            - {qualifiers: [deny], ip: 10.\(i / 256).\(i % 256).9, ports: [{port: 443}]}\n"
        }
    }
    let body = """
            enforcer: BPF
            mode: EnhanceProtect
            enhanceProtect:
              privileged: true
        \(n > 0 ? "      bpfRawRules:\n" + r : "")
        """
    let parsed = PolicyParser.inline(body, name: "bench")
    guard parsed.isValid else { fail("bench policy: \(parsed.errors)") }
    do { return try BPFCompiler().compile(parsed.policies[0], profileName: "bench-\(n)") } catch {
        fail("bench policy: \(error)")
    }
}

enum Config: CaseIterable, CustomStringConvertible {
    case detached, unbound, bound0, bound64, bound1024
    var description: String {
        switch self {
        case .detached: return "detached"
        case .unbound: return "attached, unbound"
        case .bound0: return "bound, 0 rules"
        case .bound64: return "bound, 64 rules/type"
        case .bound1024: return "bound, 1024 rules/type"
        }
    }
    var rules: Int? {
        switch self {
        case .bound0: return 0
        case .bound64: return 64
        case .bound1024: return 1024
        default: return nil
        }
    }
}

let enforcer = Enforcer(pinPath: "/sys/fs/bpf/bulwark-bench")
let profiles = Dictionary(uniqueKeysWithValues: [0, 64, 1024].map { ($0, profile(rules: $0)) })
let probe: Probe
do {
    probe = try Probe(argv: ["/usr/bin/unshare", "--mount", "--propagation", "private", "--", me, "worker"])
} catch {
    fail("cannot start the worker: \(error)")
}

@MainActor func configure(_ c: Config) throws {
    if c == .detached {
        try enforcer.unload()
        return
    }
    try enforcer.load(support: support)
    if let n = c.rules {
        try enforcer.apply(profiles[n]!)
        try enforcer.bind(pid: probe.pid, profile: "bench-\(n)", arming: .firstUse)
    } else {
        _ = try? enforcer.unbind(pid: probe.pid)
    }
}

@MainActor func measure(_ command: String) -> Double {
    probe.send(command)
    guard let line = probe.readLine(), let v = Double(line) else { fail("worker: no answer to \(command)") }
    return v
}

/// The program that does the work of each operation (its kernel-accounted run time per call).
let programOf: [String: String] = [
    "openat+close": "bw_file_open", "connect (closed port)": "bw_connect", "execve (static)": "bw_file_open",
]

let ops: [(String, String)] = [
    ("openat+close", "open \(openN) \(target)"), ("connect (closed port)", "connect \(connectN) 9"),
    ("execve (static)", "exec \(execN) \(busybox)"),
]
var samples: [String: [Config: [Double]]] = [:]
var programNS: [String: [Config: [Double]]] = [:]
print("bulwark-bench-bpf: kernel \(support.kernelRelease), \(rounds) rounds, n = \(openN)/\(connectN)/\(execN)")
Enforcer.withProgramStats {
    for round in 0..<rounds {
        // Alternate the visiting order so drift affects every configuration alike.
        let order = round % 2 == 0 ? Config.allCases : Config.allCases.reversed()
        for c in order {
            do { try configure(c) } catch { fail("configure \(c): \(error)") }
            for (name, command) in ops {
                // warm-up: a tenth of the operations, not measured
                let parts = command.split(separator: " ").map(String.init)
                _ = measure("\(parts[0]) \(max(1, Int(parts[1])! / 10)) \(parts[2])")
                let before = c == .detached ? nil : enforcer.programStats()[programOf[name]!]
                samples[name, default: [:]][c, default: []].append(measure(command))
                if let before, let after = enforcer.programStats()[programOf[name]!], after.runs > before.runs {
                    let perCall = Double(after.nanoseconds - before.nanoseconds) / Double(after.runs - before.runs)
                    programNS[name, default: [:]][c, default: []].append(perCall)
                }
            }
        }
    }
}
try? enforcer.unload()
probe.finish()
try? FileManager.default.removeItem(atPath: dir)

func median(_ xs: [Double]) -> Double {
    let s = xs.sorted()
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

for (name, _) in ops {
    print("\n\(name)")
    let base = median(samples[name]![.detached]!)
    for c in Config.allCases {
        let m = median(samples[name]![c]!)
        let label = c.description.padding(toLength: 24, withPad: " ", startingAt: 0)
        var line = "  \(label) \(String(format: "%12.0f ns/op   %.3fx", m, m / base))"
        if let p = programNS[name]?[c], !p.isEmpty {
            line += String(
                format: "   %@ %6.0f ns/call (%.3f of the detached op)", programOf[name]!, median(p), median(p) / base)
        }
        print(line)
    }
}

/// The program's own run time per call as a percentage of the detached operation (nil when the
/// kernel gave no program statistics).
@MainActor func programShare(_ op: String, _ c: Config) -> String {
    guard let p = programNS[op]?[c], !p.isEmpty, let base = samples[op]?[.detached] else { return "n/a" }
    return String(format: "%.2f", 100 * median(p) / median(base))
}
print(
    "RESULT file_open_unbound_pct=\(programShare("openat+close", .unbound)) "
        + "file_open_1024_pct=\(programShare("openat+close", .bound1024)) "
        + "connect_1024_pct=\(programShare("connect (closed port)", .bound1024))")
