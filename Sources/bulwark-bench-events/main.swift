// bulwark-bench-events: events per second from a ring-buffer record (the enforcer's binary
// `struct bulwark_event`) to node-socket subscribers, through the agent's real pipeline: decode,
// attribution (a hook record per namespace), vArmor JSON, the hub, the unix socket, and a client
// that reads and splits lines. Runs in-process: the kernel's ring buffer itself is not involved
// (this kernel cannot load the LSM programs that fill it); `scripts/bench-events.sh` runs it.
//
// usage: bulwark-bench-events [EVENTS] [--subscribers 0,1,10] [--file]
import BulwarkAgent
import BulwarkClient
import BulwarkEvents
import BulwarkHook
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import CBulwarkABI
import Foundation
import Logging
import Synchronization

var args = Array(CommandLine.arguments.dropFirst())
var total = 200_000
var subscriberCounts = [0, 1, 10]
while !args.isEmpty {
    let a = args.removeFirst()
    if a == "--subscribers", let v = args.first {
        args.removeFirst()
        subscriberCounts = v.split(separator: ",").compactMap { Int($0) }
    } else if let n = Int(a) {
        total = n
    }
}

let dir = NSTemporaryDirectory() + "bw-bench-events-\(getpid())"
try FileManager.default.createDirectory(atPath: dir + "/run/containers", withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }

// 64 containers, each with a hook record, and records spread over them
let namespaces: [UInt32] = (0..<64).map { 4_026_540_000 + UInt32($0) }
for (i, ns) in namespaces.enumerated() {
    let r = ContainerRecord(
        id: "bench-\(i)", pid: 1, namespace: ns, profile: "varmor-shop-web", policy: "shop/web", bundle: "/b",
        boundAt: 1, bpf: true,
        pod: PodAnnotations([
            "io.kubernetes.cri.sandbox-name": "web-\(i)", "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.container-name": "app",
        ]))
    try Data(r.json.serialized()).write(to: URL(fileURLWithPath: dir + "/run/containers/bench-\(i).json"))
}
let raw: [[UInt8]] = (0..<256).map { i in
    var e = bulwark_event()
    e.action = UInt32(i % 4 == 0 ? BULWARK_ACTION_AUDIT : BULWARK_ACTION_DENIED)
    e.type = UInt32(BULWARK_EVENT_FILE)
    e.mnt_ns = namespaces[i % namespaces.count]
    e.pid = 1000 + UInt32(i)
    e.ktime = 1_000_000_000 * UInt(i)
    e.profile = 1
    e.detail = UInt32(BULWARK_PERM_READ)
    let path = "/var/run/secrets/kubernetes.io/serviceaccount/token-\(i)"
    withUnsafeMutableBytes(of: &e.path) { b in for (j, c) in path.utf8.enumerated() { b[j] = c } }
    withUnsafeMutableBytes(of: &e.comm) { b in for (j, c) in "cat".utf8.enumerated() { b[j] = c } }
    return withUnsafeBytes(of: &e) { Array($0) }
}

let logger: Logger = {
    var l = Logger(label: "bench")
    l.logLevel = .critical
    return l
}()

final class Received: Sendable {
    let n = Atomic<Int>(0)
}

struct Result {
    var name: String
    var seconds: Double
    var received: Int
    var dropped: UInt64
    var rss: Int
}

func rssKiB() -> Int {
    guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
        let line = s.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
    else { return 0 }
    return Int(line.split(separator: " ").dropFirst().first ?? "0") ?? 0
}

/// `rate` > 0: publish at that many events a second without waiting for the subscribers (the
/// kernel does not wait either) and count what the bounded queues drop; 0: lossless pacing.
func run(subscribers: Int, file: Bool, total: Int, rate: Int = 0) throws -> Result {
    var config = NodeConfig()
    config.policyDirectories = [dir + "/policies"]
    config.socketPath = dir + "/run/bulwark-\(subscribers)-\(file).sock"
    config.containerStateDirectory = dir + "/run/containers"
    config.eventLogFile = file ? dir + "/log/violations.log" : ""
    config.eventLogMaxBytes = 64 << 20
    config.seccompProfileDirectory = dir + "/seccomp"
    config.bpfPinPath = "/nonexistent/bench-pins"
    config.enforcers = [.seccomp]
    config.metricsAddress = ""
    config.kernelLog = ""
    let agent = try Agent(config: config, logger: logger)
    try agent.start(sources: false)
    defer { agent.stop() }
    let request = JSONValue.object(
        JSONObject([("op", .string("events")), ("follow", .bool(true)), ("recent", .number(0))]))
    let done = DispatchGroup()
    let counts = (0..<subscribers).map { _ in Received() }
    var clients: [NodeClient] = []
    for _ in 0..<subscribers {
        let c = try NodeClient(socketPath: config.socketPath, request: request)
        _ = try c.answer()
        clients.append(c)
    }
    // wait until the agent has registered every subscriber
    while agent.hub.subscriptions.count < subscribers { usleep(1000) }
    for (i, c) in clients.enumerated() {
        done.enter()
        let slot = counts[i]
        nonisolated(unsafe) let client = c
        Thread {
            client.setReceiveTimeout(seconds: rate > 0 ? 2 : 30)
            // every event either arrives or is counted as dropped (open-loop runs may drop)
            while slot.n.load(ordering: .relaxed) < total - (rate > 0 ? Int(agent.hub.counts.subscriberDrops) : 0),
                (try? client.nextLine()) != nil
            {
                slot.n.wrappingAdd(1, ordering: .relaxed)
            }
            done.leave()
        }.start()
    }
    let batch = 64
    let start = Date()
    var sent = 0
    while sent < total {
        let n = min(batch, total - sent)
        var records: [BPFEvent] = []
        records.reserveCapacity(n)
        for k in 0..<n {
            raw[(sent + k) % raw.count].withUnsafeBytes { if let e = BPFEvent(bytes: $0) { records.append(e) } }
        }
        agent.pipeline.ingest(bpf: records)
        sent += n
        if rate > 0 {
            // open loop: the next batch is due at sent/rate seconds after the start
            let due = start.addingTimeInterval(Double(sent) / Double(rate))
            let wait = due.timeIntervalSinceNow
            if wait > 0 { usleep(UInt32(wait * 1e6)) }
            continue
        }
        // lossless pacing: wait while a subscriber has more than half its bound in flight
        while agent.hub.subscriptions.contains(where: { $0.inFlight > config.subscriberQueueLimit / 2 }) {
            usleep(50)
        }
    }
    done.wait()
    let seconds = Date().timeIntervalSince(start)
    let received = subscribers == 0 ? total : counts.map { $0.n.load(ordering: .relaxed) }.min() ?? 0
    return Result(
        name: "\(subscribers) subscriber\(subscribers == 1 ? "" : "s")\(file ? " + violation log" : "")"
            + (rate > 0 ? " at \(rate)/s" : ""),
        seconds: seconds, received: received, dropped: agent.hub.counts.subscriberDrops, rss: rssKiB())
}

print("bulwark-bench-events: \(total) BPF records (struct bulwark_event, 4192 B) → decode → attribute → JSON → hub")
print("→ unix socket → subscriber clients; pacing keeps every subscriber lossless (queue bound 4096)")
var results: [Result] = []
for s in subscriberCounts { results.append(try run(subscribers: s, file: false, total: total)) }
results.append(try run(subscribers: 1, file: true, total: total))
let steady = try run(subscribers: 1, file: true, total: min(total, 250_000), rate: 50_000)
results.append(steady)
let base = results.first.map { Double(total) / $0.seconds } ?? 1
print("")
print("configuration                             events/s    ratio   received/subscriber  dropped   RSS MiB")
for r in results {
    let rate = Double(r.received) / r.seconds
    print(
        r.name.padding(toLength: 40, withPad: " ", startingAt: 0)
            + String(
                format: "%9.0f   %6.3f   %9d            %7llu   %7.1f", rate, rate / base, r.received, r.dropped,
                Double(r.rss) / 1024))
}
func rate(_ subscribers: Int, _ results: [Result]) -> Double {
    results.first { $0.name.hasPrefix("\(subscribers) subscriber") && !$0.name.contains("log") }
        .map { Double($0.received) / $0.seconds } ?? 0
}
print(
    String(
        format: "RESULT events_per_s_1sub=%.0f lines_per_s_10sub=%.0f drops_at_50k_per_s=%llu", rate(1, results),
        rate(10, results) * 10,
        steady.dropped))
