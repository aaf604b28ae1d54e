import BulwarkOCI
import Foundation

/// Node configuration (`/etc/bulwark/bulwark.yaml`, or `--config FILE`, or `$BULWARK_CONFIG`),
/// shared by every executable. Every key has a default, so no file is needed; unknown keys are
/// errors. See docs/configuration.md.
public struct NodeConfig: Sendable, Equatable {
    /// What to do when a targeted container cannot be confined (profile missing, enforcer
    /// unavailable): refuse to start it (`Fail`) or start it unconfined and report (`Ignore`).
    public enum FailurePolicy: String, Sendable, Equatable, CaseIterable {
        case fail = "Fail"
        case ignore = "Ignore"
    }

    public static let defaultPath = "/etc/bulwark/bulwark.yaml"
    public static let environmentVariable = "BULWARK_CONFIG"

    /// Node name put in every event (`nodeName`); empty = the host name.
    public var nodeName = ""
    public var policyDirectories = ["/etc/bulwark/policies"]
    public var socketPath = "/run/bulwark/bulwark.sock"
    /// Copied into every event's `metadata` (vArmor's Helm value `auditEventMetadata`, free-form:
    /// any YAML mapping, its values as JSON).
    public var auditEventMetadata = JSONObject()
    /// The real OCI runtime `bulwark-runtime` executes (a name on PATH or an absolute path).
    public var runtime = "runc"
    /// Enforcers this node applies; a policy's other enforcers are reported as not enforced.
    public var enforcers: EnforcerSet = [.appArmor, .bpf, .seccomp]
    public var failurePolicy: FailurePolicy = .fail

    /// The failure policy for containers a policy targets: the policy's label
    /// `bulwark.io/failure-policy: Fail|Ignore` when it has one, else the node's.
    public func failurePolicy(for policy: Policy?) -> FailurePolicy {
        policy?.labels["bulwark.io/failure-policy"].flatMap(FailurePolicy.init(rawValue:)) ?? failurePolicy
    }
    /// Namespace whose name forms cluster profile names (`varmor-cluster-<it>-<policy>`).
    public var clusterProfileNamespace = "varmor"
    /// Where compiled AppArmor profiles are written before `apparmor_parser` loads them.
    public var appArmorProfileDirectory = "/var/lib/bulwark/apparmor.d"
    /// Where compiled seccomp profiles are stored for the runtime wrapper and the NRI plugin.
    public var seccompProfileDirectory = "/var/lib/bulwark/seccomp"
    /// Behaviour models, one `<profile>.json` (`ArmorProfileModel`) per profile.
    public var modelDirectory = "/var/lib/bulwark/models"
    /// bpffs directory of the pinned enforcer state.
    public var bpfPinPath = "/sys/fs/bpf/bulwark"
    /// Pods, Services and EndpointSlices for `toServices`/`toPods` and the service built-ins on a
    /// host without an API server: the objects as `kubectl get -o yaml` prints them (docs/policy.md);
    /// re-read when it changes. Empty = none.
    public var inventoryFile = ""
    /// Where `bulwark-hook` and `bulwark-runtime` are on the node, as the container runtime runs
    /// them (the NRI plugin's hooks point there); empty = beside `bulwarkd`. In the DaemonSet the
    /// agent runs in a container and installs them with `bulwark install --to` this directory.
    public var hookDirectory = ""
    /// The Kubernetes API server (policies, pods, services, Events): a kubeconfig file; empty = the
    /// pod's service account when `KUBERNETES_SERVICE_HOST` is set (in-cluster), else no API.
    public var kubeconfig = ""
    /// vArmor's `--enableServiceEgressControl` (its chart turns it on): `toServices` and the service
    /// built-ins resolve to cluster addresses. Off: a policy with `toServices` is refused.
    public var serviceEgressControl = true
    /// vArmor's `--enablePodEgressControl` (off in its chart: it watches every pod): `toPods`
    /// resolves to pod addresses. Off: a policy with `toPods` is refused.
    public var podEgressControl = false

    // MARK: Node agent (bulwarkd)

    /// Group (name or number) allowed on the node socket besides root; empty = root only (0600).
    public var socketGroup = ""
    /// Where the OCI hook records each confined container (identity for event attribution).
    public var containerStateDirectory = "/run/bulwark/containers"
    /// Rotating violation log (vArmor: /var/log/varmor/violations.log); empty = off.
    public var eventLogFile = "/var/log/bulwark/violations.log"
    /// Size at which the violation log is rotated, and how many old files are kept.
    public var eventLogMaxBytes = 10 * 1024 * 1024
    public var eventLogBackups = 3
    /// Kernel audit source for AppArmor and seccomp records: `audit` (the kernel audit's netlink
    /// multicast: lossless, not rate-limited, with or without auditd; `/dev/kmsg` when it cannot be
    /// joined), `/dev/kmsg`, or an audit/kernel log file that is followed
    /// (`/var/log/audit/audit.log`); empty = off.
    public var kernelLog = "audit"
    /// `host:port` of the Prometheus endpoint (`/metrics`); empty = off.
    public var metricsAddress = "127.0.0.1:9464"
    /// Events queued per node-socket subscriber before further events are dropped (and counted).
    public var subscriberQueueLimit = 4096
    /// Host the NRI plugin in the agent (containerd ≥ 1.7 / CRI-O ≥ 1.26 with NRI enabled).
    public var nri = false
    /// The runtime's NRI socket.
    public var nriSocketPath = "/var/run/nri/nri.sock"
    /// The plugin's two-digit index (runtimes call plugins in index order).
    public var nriPluginIndex = "10"

    public init() {}

    public static let keys = [
        "nodeName", "policyDirectories", "socketPath", "auditEventMetadata", "runtime", "enforcers",
        "failurePolicy", "clusterProfileNamespace", "appArmorProfileDirectory", "seccompProfileDirectory",
        "modelDirectory",
        "bpfPinPath", "inventoryFile", "kubeconfig", "hookDirectory", "serviceEgressControl", "podEgressControl",
        "socketGroup",
        "containerStateDirectory", "eventLogFile", "eventLogMaxBytes",
        "eventLogBackups", "kernelLog", "metricsAddress", "subscriberQueueLimit", "nri", "nriSocketPath",
        "nriPluginIndex",
    ]

    /// Parses a config file's text. Empty text gives the defaults.
    public static func parse(_ text: String, file: String) throws(DiagnosticsError) -> NodeConfig {
        var config = NodeConfig()
        let nodes = try YAMLLoader.documents(text, file: file)
        guard nodes.count <= 1 else {
            throw DiagnosticsError([
                Diagnostic(
                    .error, file: file, line: 1, column: 1, path: "",
                    message: "config file holds \(nodes.count) documents",
                    hint: "keep one YAML document")
            ])
        }
        guard let node = nodes.first else { return config }
        let ctx = ReaderContext(file: file)
        let root = YValue(node: node, path: "", ctx: ctx)
        if let m = root.mapping() {
            if let v = m.value("nodeName")?.string() { config.nodeName = v }
            if let v = m.value("policyDirectories") {
                let dirs = v.stringList() ?? []
                for (i, d) in dirs.enumerated() where !d.hasPrefix("/") {
                    ctx.report(
                        .error, v.node, "policyDirectories[\(i)]", "\"\(d)\" is not an absolute path",
                        hint: "write a path starting with /")
                }
                config.policyDirectories = dirs
            }
            if let v = m.value("socketPath"), let s = absolutePath(v) {
                // sockaddr_un.sun_path holds 107 bytes and a NUL
                if s.utf8.count > 107 {
                    v.error(
                        "socket path is \(s.utf8.count) bytes, more than a unix socket address holds (107)",
                        hint: "use a shorter path, e.g. /run/bulwark/bulwark.sock")
                } else {
                    config.socketPath = s
                }
            }
            if let v = m.value("auditEventMetadata"), let json = v.json() {
                if case .object(let o) = json {
                    config.auditEventMetadata = o
                } else if !v.isNull {
                    v.error("expected a mapping", hint: "e.g. `auditEventMetadata: {clusterID: c1, region: eu}`")
                }
            }
            if let v = m.value("runtime"), let s = v.nonEmptyString() {
                if s.contains("/") && !s.hasPrefix("/") {
                    v.error("\"\(s)\" is a relative path", hint: "give a command name (runc, crun) or an absolute path")
                } else if s.hasSuffix("bulwark-runtime") {
                    v.error(
                        "runtime points at the wrapper itself", hint: "set the real runtime, e.g. runc or /usr/bin/crun"
                    )
                } else {
                    config.runtime = s
                }
            }
            if let v = m.value("enforcers") {
                var set: EnforcerSet = []
                for item in v.sequence() ?? [] {
                    guard let s = item.string() else { continue }
                    switch s.lowercased() {
                    case "apparmor": set.insert(.appArmor)
                    case "bpf": set.insert(.bpf)
                    case "seccomp": set.insert(.seccomp)
                    default: item.error("unknown enforcer \"\(s)\"", hint: "use AppArmor, BPF and/or Seccomp")
                    }
                }
                config.enforcers = set
            }
            if let v = m.value("failurePolicy"), let s = v.string() {
                if let p = FailurePolicy(rawValue: s) {
                    config.failurePolicy = p
                } else {
                    v.error("unknown failurePolicy \"\(s)\"", hint: "use Fail or Ignore")
                }
            }
            if let v = m.value("clusterProfileNamespace"), let s = v.nonEmptyString() {
                // it names profiles and their files: a namespace name, never a path
                if PolicyDocumentReader.isDNSLabel(s) {
                    config.clusterProfileNamespace = s
                } else {
                    v.error(
                        "\"\(s)\" is not a Kubernetes namespace name",
                        hint: "lower-case letters, digits and '-', at most 63 characters, e.g. varmor")
                }
            }
            if let v = m.value("appArmorProfileDirectory"), let s = absolutePath(v) {
                config.appArmorProfileDirectory = s
            }
            if let v = m.value("seccompProfileDirectory"), let s = absolutePath(v) {
                config.seccompProfileDirectory = s
            }
            if let v = m.value("modelDirectory"), let s = absolutePath(v) { config.modelDirectory = s }
            if let v = m.value("bpfPinPath"), let s = absolutePath(v) { config.bpfPinPath = s }
            if let v = m.value("inventoryFile"), let s = absolutePathOrOff(v, "write a path starting with /") {
                config.inventoryFile = s
            }
            if let v = m.value("hookDirectory"), let s = absolutePathOrOff(v, "write a path starting with /") {
                config.hookDirectory = s
            }
            if let v = m.value("kubeconfig"), let s = absolutePathOrOff(v, "write a path starting with /") {
                config.kubeconfig = s
            }
            if let v = m.value("serviceEgressControl"), let b = v.bool() { config.serviceEgressControl = b }
            if let v = m.value("podEgressControl"), let b = v.bool() { config.podEgressControl = b }
            if let v = m.value("socketGroup"), let s = v.string() { config.socketGroup = s }
            if let v = m.value("containerStateDirectory"), let s = absolutePath(v) {
                config.containerStateDirectory = s
            }
            if let v = m.value("eventLogFile"), let s = absolutePathOrOff(v, "write a path starting with /") {
                config.eventLogFile = s
            }
            if let v = m.value("eventLogMaxBytes"), let n = positiveInt(v, minimum: 4096, maximum: 1 << 40) {
                config.eventLogMaxBytes = n
            }
            if let v = m.value("eventLogBackups"), let n = positiveInt(v, minimum: 0, maximum: 100) {
                config.eventLogBackups = n
            }
            if let v = m.value("kernelLog") {
                if v.string() == "audit" {
                    config.kernelLog = "audit"
                } else if let s = absolutePathOrOff(v, "use audit, /dev/kmsg or an audit log path") {
                    config.kernelLog = s
                }
            }
            if let v = m.value("metricsAddress"), let s = v.string() {
                if s.isEmpty || Self.hostPort(s) != nil {
                    config.metricsAddress = s
                } else {
                    v.error("\"\(s)\" is not host:port", hint: "e.g. 127.0.0.1:9464, or \"\" to turn metrics off")
                }
            }
            if let v = m.value("subscriberQueueLimit"), let n = positiveInt(v, minimum: 1, maximum: 1 << 20) {
                config.subscriberQueueLimit = n
            }
            if let v = m.value("nri"), let b = v.bool() { config.nri = b }
            if let v = m.value("nriSocketPath"), let s = absolutePath(v) { config.nriSocketPath = s }
            if let v = m.value("nriPluginIndex"), let s = v.string() {
                if s.utf8.count == 2 && s.utf8.allSatisfy({ (0x30...0x39).contains($0) }) {
                    config.nriPluginIndex = s
                } else {
                    v.error("\"\(s)\" is not a two-digit plugin index", hint: "write e.g. \"10\" (quoted)")
                }
            }
            m.finish(known: keys)
        }
        if ctx.hasErrors { throw DiagnosticsError(ctx.diagnostics.filter { $0.severity == .error }) }
        return config
    }

    /// `host:port` split at the last colon (`[::1]:9464` allowed); nil if malformed.
    public static func hostPort(_ s: String) -> (host: String, port: Int)? {
        guard let colon = s.lastIndex(of: ":"), let port = Int(s[s.index(after: colon)...]), (1...65535).contains(port)
        else { return nil }
        var host = String(s[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        return host.isEmpty ? nil : (host, port)
    }

    /// An absolute path, or `""` for "off".
    private static func absolutePathOrOff(_ v: YValue, _ hint: String) -> String? {
        guard let s = v.string() else { return nil }
        guard s.isEmpty || s.hasPrefix("/") else {
            v.error("\"\(s)\" is not an absolute path", hint: hint + ", or \"\" to turn it off")
            return nil
        }
        return s
    }

    private static func positiveInt(_ v: YValue, minimum: Int, maximum: Int) -> Int? {
        guard let s = v.string() else { return nil }
        guard let n = Int(s), n >= minimum, n <= maximum else {
            v.error(
                "expected a whole number from \(minimum) to \(maximum)", hint: "write e.g. \(max(minimum, 1) * 4)")
            return nil
        }
        return n
    }

    private static func absolutePath(_ v: YValue) -> String? {
        guard let s = v.nonEmptyString() else { return nil }
        guard s.hasPrefix("/") else {
            v.error("\"\(s)\" is not an absolute path", hint: "write a path starting with /")
            return nil
        }
        return s
    }
}
