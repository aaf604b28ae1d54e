import BulwarkAgent
import BulwarkClient
import BulwarkHook
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkTestSupport
import CBulwarkABI
import Foundation
import Logging
import Testing

let runcPath = Needs.tool("/usr/sbin/runc", "/usr/bin/runc")
let runcAndBusybox = Needs(root: true, [runcPath, "/bin/busybox"], "needs root, runc and busybox-static")

/// A scratch node: policy directory, state directory, socket and logs under one temp directory.
struct Node {
    let dir: String
    var config = NodeConfig()

    init(_ name: String) throws {
        dir = NSTemporaryDirectory() + "bw-agent-\(name)-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        chmod(dir, 0o755)
        config.policyDirectories = [dir + "/policies"]
        config.socketPath = dir + "/run/bulwark.sock"
        config.containerStateDirectory = dir + "/run/containers"
        config.eventLogFile = dir + "/log/violations.log"
        config.seccompProfileDirectory = dir + "/seccomp"
        config.appArmorProfileDirectory = dir + "/apparmor"
        config.modelDirectory = dir + "/models"
        config.bpfPinPath = "/nonexistent/bulwark-test-pins"
        config.metricsAddress = ""
        config.kernelLog = ""
        config.nodeName = "node-a"
        config.auditEventMetadata = JSONObject([("clusterName", .string("test-cluster")), ("region", .string("lab"))])
    }

    func remove() { try? FileManager.default.removeItem(atPath: dir) }

    func write(policy name: String, _ text: String) throws {
        try text.write(toFile: dir + "/policies/" + name, atomically: true, encoding: .utf8)
    }

    /// The node config as YAML, for the bulwarkd and bulwark executables.
    func writeConfig(extra: String = "") throws -> String {
        let c = config
        let meta = c.auditEventMetadata.members.map { "\($0.key): \($0.value.text)" }.joined(separator: ", ")
        let text = """
            nodeName: \(c.nodeName)
            policyDirectories: [\(c.policyDirectories.joined(separator: ", "))]
            socketPath: \(c.socketPath)
            containerStateDirectory: \(c.containerStateDirectory)
            eventLogFile: "\(c.eventLogFile)"
            seccompProfileDirectory: \(c.seccompProfileDirectory)
            appArmorProfileDirectory: \(c.appArmorProfileDirectory)
            modelDirectory: \(c.modelDirectory)
            bpfPinPath: \(c.bpfPinPath)
            metricsAddress: "\(c.metricsAddress)"
            kernelLog: "\(c.kernelLog)"
            enforcers: [\(c.enforcers.names.joined(separator: ", "))]
            auditEventMetadata: {\(meta)}

            """ + extra
        let path = dir + "/bulwark.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// A hook record as `bulwark-hook` writes it.
    func writeRecord(_ r: ContainerRecord) throws {
        try FileManager.default.createDirectory(
            atPath: config.containerStateDirectory, withIntermediateDirectories: true)
        try Data(r.json.serialized()).write(to: URL(fileURLWithPath: config.containerStateDirectory + "/\(r.id).json"))
    }
}

let shopPolicy = """
    apiVersion: crd.varmor.org/v1beta1
    kind: VarmorPolicy
    metadata:
      name: web
      namespace: shop
    spec:
      target:
        kind: Pod
        selector:
          matchLabels:
            app: web
      policy:
        enforcer: BPFSeccomp
        mode: EnhanceProtect
        enhanceProtect:
          allowViolations: true
          auditViolations: true
          hardeningRules:
          - disallow-create-user-ns

    """

func record(
    id: String, namespace: UInt32, pid: Int32 = getpid(), profile: String = "varmor-shop-web", pod: String = "web-1"
) -> ContainerRecord {
    ContainerRecord(
        id: id, pid: pid, namespace: namespace, profile: profile, policy: "shop/web", bundle: "/b", boundAt: 1,
        bpf: true,
        pod: PodAnnotations([
            "io.kubernetes.cri.sandbox-name": pod, "io.kubernetes.cri.sandbox-namespace": "shop",
            "io.kubernetes.cri.sandbox-uid": "uid-\(pod)", "io.kubernetes.cri.container-name": "app",
            "io.kubernetes.cri.image-name": "registry.local/web:1",
        ]))
}

/// A ring-buffer record in the enforcer's binary format (`struct bulwark_event`).
func bpfRecord(
    namespace: UInt32, action: Int32 = BULWARK_ACTION_DENIED, path: String = "/etc/shadow", profile: UInt32 = 9
) -> BPFEvent {
    var e = bulwark_event()
    e.action = UInt32(action)
    e.type = UInt32(BULWARK_EVENT_FILE)
    e.mnt_ns = namespace
    e.pid = 4242
    e.ktime = 1_000_000_000
    e.profile = profile
    e.detail = UInt32(BULWARK_PERM_READ)
    withUnsafeMutableBytes(of: &e.path) { b in for (i, c) in path.utf8.enumerated() { b[i] = c } }
    withUnsafeMutableBytes(of: &e.comm) { b in for (i, c) in "cat".utf8.enumerated() { b[i] = c } }
    return withUnsafeBytes(of: &e) { BPFEvent(bytes: $0)! }
}

func ownMountNamespace() -> UInt32 {
    var st = stat()
    stat("/proc/self/ns/mnt", &st)
    return UInt32(truncatingIfNeeded: st.st_ino)
}

let quietLogger: Logger = {
    var l = Logger(label: "bulwark-test")
    l.logLevel = .critical
    return l
}()

/// Reads lines until `count` arrived or the timeout passed.
func readLines(_ client: NodeClient, count: Int, timeout: Double = 10) -> [JSONObject] {
    client.setReceiveTimeout(seconds: timeout)
    var out: [JSONObject] = []
    while out.count < count, let line = try? client.nextLine() {
        if case .object(let o)? = try? JSONValue.parse(line) { out.append(o) }
    }
    return out
}

func request(_ op: String, _ fields: [(String, JSONValue)] = []) -> JSONValue {
    .object(JSONObject([("op", .string(op))] + fields))
}

/// A `bulwarkd` process of this build, with its output in a file.
final class Daemon {
    let pid: pid_t
    let log: String
    let socket: String

    init(config: String, socket: String, extraArgs: [String] = []) throws {
        log = NSTemporaryDirectory() + "bw-agent-log-\(UUID().uuidString.prefix(6))"
        self.socket = socket
        pid = try spawn(
            bulwarkDirectory() + "/bulwarkd", ["--config", config] + extraArgs,
            environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], output: log)
    }

    /// Waits until the socket answers `status`.
    func ready(timeout: Double = 20) -> Bool {
        eventually(timeout: timeout) { (try? NodeClient.call(socketPath: socket, request("status"))) != nil }
    }

    var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }

    /// SIGTERM and wait; the exit status.
    @discardableResult
    func stop() -> Int32 {
        kill(pid, SIGTERM)
        return wait()
    }

    func wait() -> Int32 {
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    deinit {
        kill(pid, SIGKILL)
        var status: Int32 = 0
        waitpid(pid, &status, WNOHANG)
        unlink(log)
    }
}

/// `GET path` over plain TCP; the whole response.
func httpGet(host: String, port: UInt16, path: String) -> String? {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_port = port.bigEndian
    inet_pton(AF_INET, host, &addr.sin_addr)
    let ok = withUnsafePointer(to: &addr) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard ok == 0 else { return nil }
    let req = Array("GET \(path) HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n".utf8)
    _ = req.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    var out: [UInt8] = []
    var buf = [UInt8](repeating: 0, count: 65536)
    while true {
        let n = read(fd, &buf, buf.count)
        if n <= 0 { break }
        out += buf[0..<n]
    }
    return String(decoding: out, as: UTF8.self)
}
