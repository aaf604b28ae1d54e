import BulwarkCluster
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import Foundation
import KubeTestServer

// Cluster-mode scale (issue 15): 10,000 pods, 5,000 services with EndpointSlices, 1,000 policies
// naming them (toServices by name, toPods by selector). Two parts, printed side by side:
//  A. in process: the inventory's memory, a full compile of every policy's BPF profile, and one
//     address change → recompile of every profile that names cluster addresses (what the agent
//     does before it writes the kernel tables; p50/p99 over many changes);
//  B. bulwarkd against KubeTestServer (the stand-in API server) holding the same objects: its
//     memory once synced and its CPU under a churn of 100 address changes a second (on this host
//     the BPF enforcer cannot load, so B does not include compiles; A does).
// Usage: bulwark-bench-cluster [PODS SERVICES POLICIES] (scripts/bench-cluster.sh, release build)

let args = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let pods = args.count > 0 ? args[0] : 10_000
let services = args.count > 1 ? args[1] : 5_000
let policies = args.count > 2 ? args[2] : 1_000

func rssKiB(_ pid: String = "self") -> Int {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
    return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
}

func cpuSeconds(_ pid: Int32) -> Double {
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    // utime, stime are fields 14 and 15 (1-based) of the whole line: 12 and 13 after ")"
    guard fields.count > 13 else { return 0 }
    return (Double(fields[11]) ?? 0) / 100 + (Double(fields[12]) ?? 0) / 100
}

func ip(_ i: Int, _ base: Int) -> String { "10.\(base).\((i >> 8) & 255).\(i & 255)" }

func podJSON(_ i: Int) -> String {
    #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod-\#(i)","namespace":"ns-\#(i % 50)","labels":{"app":"app-\#(i % 100)"}},"spec":{"nodeName":"node-\#(i % 100)"},"status":{"podIP":"\#(ip(i, 244))","podIPs":[{"ip":"\#(ip(i, 244))"}]}}"#
}
func serviceJSON(_ i: Int) -> String {
    #"{"kind":"Service","apiVersion":"v1","metadata":{"name":"svc-\#(i)","namespace":"ns-\#(i % 50)","labels":{"app":"app-\#(i % 100)"}},"spec":{"clusterIP":"\#(ip(i, 96))","clusterIPs":["\#(ip(i, 96))"]}}"#
}
func sliceJSON(_ i: Int, generation: Int = 0) -> String {
    let a = ip((i * 2 + generation) % 65_000, 245)
    let b = ip((i * 2 + 1 + generation) % 65_000, 245)
    return
        #"{"kind":"EndpointSlice","apiVersion":"discovery.k8s.io/v1","metadata":{"name":"svc-\#(i)-x","namespace":"ns-\#(i % 50)","labels":{"kubernetes.io/service-name":"svc-\#(i)"}},"addressType":"IPv4","endpoints":[{"addresses":["\#(a)"]},{"addresses":["\#(b)"]}],"ports":[{"port":8080,"protocol":"TCP"}]}"#
}
func policyYAML(_ i: Int) -> String {
    """
    apiVersion: crd.varmor.org/v1beta1
    kind: VarmorPolicy
    metadata: {name: p-\(i), namespace: ns-\(i % 50)}
    spec:
      target: {kind: Deployment, selector: {matchLabels: {app: app-\(i % 100)}}}
      policy:
        enforcer: BPF
        mode: EnhanceProtect
        enhanceProtect:
          bpfRawRules:
            network:
              egress:
                toServices:
                - {qualifiers: [deny], namespace: ns-\(i % 50), name: svc-\(i % services)}
                toPods:
                - {qualifiers: [deny], namespace: ns-\(i % 50), podSelector: {matchLabels: {app: app-\((i + 1) % 100)}}, ports: [{port: 80}]}
    """
}

func decode<T: Decodable>(_ t: T.Type, _ s: String) -> T { try! JSONDecoder().decode(t, from: Data(s.utf8)) }

func percentile(_ xs: [Double], _ p: Double) -> Double {
    let s = xs.sorted()
    return s.isEmpty ? 0 : s[min(s.count - 1, Int(Double(s.count) * p))]
}

print("cluster: \(pods) pods, \(services) services (one EndpointSlice of 2 endpoints each), \(policies) policies")

// MARK: A. in process
let rss0 = rssKiB()
var inventory = ClusterInventory()
for i in 0..<pods { inventory.upsert(decode(KubeObjects.Pod.self, podJSON(i))) }
for i in 0..<services {
    inventory.upsert(decode(KubeObjects.Service.self, serviceJSON(i)))
    inventory.upsert(decode(KubeObjects.EndpointSlice.self, sliceJSON(i)))
}
let rssInventory = rssKiB() - rss0
let parsed = (0..<policies).map { PolicyParser.parse(policyYAML($0), file: "p\($0).yaml").policies[0] }
func compileAll(_ inv: ClusterInventory) -> [BPFProfile] {
    let egress = inv.egress
    return parsed.enumerated().map { i, p in
        try! BPFCompiler(inventory: egress).compile(p, profileName: "p-\(i)")
    }
}
var t = Date()
var compiled = compileAll(inventory)
let fullCompile = Date().timeIntervalSince(t)
let rows = compiled.reduce(0) { $0 + $1.egress4.count }
// per address change, as the agent does it: each cluster-referencing profile's stamp (when what it
// reads last changed) is compared, then the resolution of those whose stamp moved, and only the
// profiles whose addresses moved are compiled again. Side by side: the resolution of every profile
// checked (what the agent did before the stamps)
let references = parsed.map { BPFCompiler.clusterReferences($0).flatMap(WatchScope.parts) }
var stamps = references.map { inventory.stamp($0) }
var resolutions = parsed.map { BPFCompiler(inventory: inventory.egress).clusterResolution($0) }
var perChange: [Double] = []
var perChangeChecked: [Double] = []
var perChangeAll: [Double] = []
var recompiled = 0
var reread = 0
for n in 0..<200 {
    let svc = (n * 7) % services
    t = Date()
    inventory.upsert(decode(KubeObjects.EndpointSlice.self, sliceJSON(svc, generation: 1000 + n)))
    let compiler = BPFCompiler(inventory: inventory.egress)
    for (i, p) in parsed.enumerated() {
        let stamp = inventory.stamp(references[i])
        guard stamp != stamps[i] else { continue }
        stamps[i] = stamp
        reread += 1
        let r = compiler.clusterResolution(p)
        if r != resolutions[i] {
            resolutions[i] = r
            compiled[i] = try! compiler.compile(p, profileName: "p-\(i)")
            recompiled += 1
        }
    }
    perChange.append(Date().timeIntervalSince(t))
    if n < 50 {
        t = Date()
        var moved = 0
        for (i, p) in parsed.enumerated() where compiler.clusterResolution(p) != resolutions[i] { moved += 1 }
        precondition(moved == 0, "a profile whose stamp did not move resolves differently")
        perChangeChecked.append(Date().timeIntervalSince(t))
    }
    if n < 20 {
        t = Date()
        compiled = compileAll(inventory)
        perChangeAll.append(Date().timeIntervalSince(t))
    }
}
print("A. inventory: \(rssInventory / 1024) MiB RSS for its objects")
print(
    "A. full compile of \(policies) profiles: \(String(format: "%.3f", fullCompile)) s (\(rows) IPv4 egress rows)")
print(
    "A. one address change → the profiles whose stamp moved are resolved again, those whose addresses moved compiled: p50 \(String(format: "%.4f", percentile(perChange, 0.5))) s, p99 \(String(format: "%.4f", percentile(perChange, 0.99))) s (\(reread) resolutions, \(recompiled) recompiles over \(perChange.count) changes); resolving every profile instead: p50 \(String(format: "%.4f", percentile(perChangeChecked, 0.5))) s (ratio \(String(format: "%.0f", percentile(perChangeChecked, 0.5) / max(percentile(perChange, 0.5), 1e-9)))×); recompiling all: p50 \(String(format: "%.3f", percentile(perChangeAll, 0.5))) s"
)

// MARK: B. bulwarkd against the stand-in API server
let dir = NSTemporaryDirectory() + "bw-bench-cluster-\(getpid())"
try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
let server = try KubeTestServer(tls: KubeTestServer.makeTLS(in: dir))
for i in 0..<pods { server.apply("/api/v1/pods", try JSONValue.parse(podJSON(i))) }
for i in 0..<services {
    server.apply("/api/v1/services", try JSONValue.parse(serviceJSON(i)))
    server.apply("/apis/discovery.k8s.io/v1/endpointslices", try JSONValue.parse(sliceJSON(i)))
}
for i in 0..<policies {
    // the policy objects as the API server lists them (JSON): the same policies as in A
    let json =
        #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"VarmorPolicy","metadata":{"name":"p-\#(i)","namespace":"ns-\#(i % 50)","uid":"u-\#(i)"},"spec":{"target":{"kind":"Deployment","selector":{"matchLabels":{"app":"app-\#(i % 100)"}}},"policy":{"enforcer":"BPF","mode":"EnhanceProtect","enhanceProtect":{"bpfRawRules":{"network":{"egress":{"toServices":[{"qualifiers":["deny"],"namespace":"ns-\#(i % 50)","name":"svc-\#(i % services)"}],"toPods":[{"qualifiers":["deny"],"namespace":"ns-\#(i % 50)","podSelector":{"matchLabels":{"app":"app-\#((i + 1) % 100)"}},"ports":[{"port":80}]}]}}}}}}}"#
    server.apply("/apis/crd.varmor.org/v1beta1/varmorpolicies", try JSONValue.parse(json))
}
_ = try server.writeKubeconfig(to: dir + "/kubeconfig")
try """
policyDirectories: [\(dir)/policies]
socketPath: \(dir)/bulwark.sock
containerStateDirectory: \(dir)/containers
modelDirectory: \(dir)/models
seccompProfileDirectory: \(dir)/seccomp
appArmorProfileDirectory: \(dir)/apparmor
bpfPinPath: /nonexistent/bench
eventLogFile: ""
metricsAddress: ""
kernelLog: ""
enforcers: [BPF]
podEgressControl: true
kubeconfig: \(dir)/kubeconfig
""".write(toFile: dir + "/bulwark.yaml", atomically: true, encoding: .utf8)
let agent = Process()
agent.executableURL = URL(fileURLWithPath: Bundle.main.executablePath!).deletingLastPathComponent()
    .appendingPathComponent("bulwarkd")
agent.arguments = ["--config", dir + "/bulwark.yaml"]
agent.standardOutput = FileHandle.nullDevice
agent.standardError = FileHandle.nullDevice
let started = Date()
try agent.run()
// synced: every resource listed and watched (a watch starts once its list is read: the two policy
// kinds, models, this node's pods, and the Services, EndpointSlices and Pods the policies name —
// in 50 namespaces, so each in all namespaces), and the Events of 1000 policies posted
while server.watchers < 7 || server.events.count < policies {
    if Date().timeIntervalSince(started) > 600 { break }
    usleep(100_000)
}
let syncSeconds = Date().timeIntervalSince(started)
usleep(2_000_000)
let agentRSS = rssKiB(String(agent.processIdentifier))
print(
    "B. bulwarkd synced (\(pods + 2 * services) objects, \(policies) policies listed, watched, reported): \(String(format: "%.1f", syncSeconds)) s, \(agentRSS / 1024) MiB RSS"
)
let cpu0 = cpuSeconds(agent.processIdentifier)
let churnStart = Date()
for n in 0..<1000 {
    // 100 address changes a second for 10 s
    let due = churnStart.addingTimeInterval(Double(n) / 100)
    let wait = due.timeIntervalSinceNow
    if wait > 0 { usleep(UInt32(wait * 1_000_000)) }
    server.apply(
        "/apis/discovery.k8s.io/v1/endpointslices", try JSONValue.parse(sliceJSON(n % services, generation: 2000 + n)))
}
let churnSeconds = Date().timeIntervalSince(churnStart)
usleep(1_000_000)
let cpu = cpuSeconds(agent.processIdentifier) - cpu0
print(
    "B. churn of 100 address changes/s for \(String(format: "%.1f", churnSeconds)) s: bulwarkd used \(String(format: "%.2f", cpu)) CPU-seconds (\(String(format: "%.0f", cpu / (churnSeconds + 1) * 100)) % of a core), \(rssKiB(String(agent.processIdentifier)) / 1024) MiB RSS after"
)
print(
    "RESULT inventory_mib=\(rssInventory / 1024) full_compile_s=\(String(format: "%.3f", fullCompile)) change_recompile_p50_s=\(String(format: "%.3f", percentile(perChange, 0.5))) change_recompile_p99_s=\(String(format: "%.3f", percentile(perChange, 0.99))) agent_sync_s=\(String(format: "%.1f", syncSeconds)) agent_rss_mib=\(agentRSS / 1024) churn_cpu_percent=\(String(format: "%.0f", cpu / (churnSeconds + 1) * 100))"
)
agent.terminate()
agent.waitUntilExit()
server.stop()
try? FileManager.default.removeItem(atPath: dir)
