// bulwark-bench-nri: CreateContainer handling latency of the NRI plugin with N policies loaded,
// through a real unix socket with the Swift runtime peer (mux + ttrpc + protobuf both ways), as a
// runtime would call it. `scripts/bench-nri.sh` runs it; the runtime's budget is 2 s a call.
//
// usage: bulwark-bench-nri [POLICIES] [CALLS] [NAMESPACES]   (policies spread over NAMESPACES)
import BulwarkNRI
import BulwarkNRIPlugin
import BulwarkPolicy
import BulwarkSystem
import Foundation
import Logging
import NRITestPeer

let args = CommandLine.arguments.dropFirst().compactMap { Int($0) }
let policyCount = args.first ?? 1000
let calls = args.dropFirst().first ?? 2000
let namespaces = max(1, args.dropFirst(2).first ?? 50)

// N namespaced policies, each selecting pods by its own label; the pods created match the last
// one (the decision engine looks at every policy) or none.
var texts: [String] = []
for i in 0..<policyCount {
    texts.append(
        """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorPolicy
        metadata: {name: p\(i), namespace: ns\(i % namespaces)}
        spec:
          target: {kind: Deployment, selector: {matchLabels: {app: app\(i)}}}
          policy:
            enforcer: BPFSeccomp
            mode: EnhanceProtect
            enhanceProtect:
              hardeningRules: [disallow-create-user-ns, disallow-mount]
              attackProtectionRules: [{rules: [mitigate-sa-leak]}]
        """)
}
let parsed = PolicyParser.parse(texts.joined(separator: "\n---\n"), file: "bench.yaml")
guard parsed.isValid else {
    print(parsed.errors.map(\.description).joined(separator: "\n"))
    exit(1)
}
let policies = parsed.policies
var config = NodeConfig()
config.enforcers = [.seccomp, .bpf]
config.failurePolicy = .ignore
config.bpfPinPath = "/nonexistent/bench-nri"
var logger = Logger(label: "bench")
logger.logLevel = .critical
let dir = NSTemporaryDirectory() + "bw-bench-nri-\(getpid())"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }
let peer = try RuntimePeer(path: dir + "/nri.sock")
var settings = NRIPlugin.Settings(executableDirectory: "/usr/libexec/bulwark")
settings.socketPath = peer.path
let index = PolicyIndex(policies)
let plugin = NRIPlugin(settings: settings, config: config, logger: logger, policies: { index })
let worker = plugin.worker()
let session = try peer.accept()
_ = try session.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted[min(sorted.count - 1, Int(Double(sorted.count) * p))]
}

func measure(_ name: String, matching: Bool) throws -> (Double, Double, Double) {
    var times: [Double] = []
    for i in 0..<calls {
        let labels = matching ? ["app": "app\(policyCount - 1)", "pod-template-hash": "7d9f"] : ["app": "none"]
        let pod = nriPod(
            name: "web-7d9f-\(i)", namespace: matching ? "ns\((policyCount - 1) % namespaces)" : "other", labels: labels
        )
        let start = DispatchTime.now().uptimeNanoseconds
        let r = try session.createContainer(pod: pod, container: nriContainer(pod: pod, name: "app"))
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
        if matching && r.adjust.annotations["bulwark.io/profile"] == nil {
            print("no adjustment for a matching pod")
            exit(1)
        }
    }
    let sorted = times.sorted()
    return (percentile(sorted, 0.5), percentile(sorted, 0.99), sorted.last ?? 0)
}

print(
    "bulwark-bench-nri: \(policyCount) policies in \(namespaces) namespaces, \(calls) CreateContainer calls each, "
        + "unix socket + mux + ttrpc")
_ = try measure("warm-up", matching: true)
let hit = try measure("matching", matching: true)
let miss = try measure("unmatched", matching: false)
print("case                          p50 ms    p99 ms    max ms   (runtime budget: 2000 ms)")
print(String(format: "matching pod (adjusted)     %8.3f  %8.3f  %8.3f", hit.0, hit.1, hit.2))
print(String(format: "unmatched pod (nothing)     %8.3f  %8.3f  %8.3f", miss.0, miss.1, miss.2))
// for scripts/bench-nri.sh's RESULT line: the worse of the two cases
print(String(format: "p99_ms=%.3f", max(hit.1, miss.1)))
plugin.stop()
worker.stop()
