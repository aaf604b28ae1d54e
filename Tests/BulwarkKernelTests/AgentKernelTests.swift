import BulwarkBPF
import BulwarkBPFMaps
import BulwarkClient
import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import BulwarkTestSupport
import Foundation
import Testing

/// bulwarkd on a BPF LSM kernel: the enforcer's ring-buffer records of a container confined by
/// bulwark-runtime + bulwark-hook reach a node-socket subscriber as vArmor events naming the pod,
/// container and policy; the agent restarts while the container runs and its binding, attribution
/// and enforcement are all still there.
@Suite("Kernel tier: bulwarkd events", .serialized, .needs(wrapperKernelNeeds))
struct AgentKernelTests {
    final class Agent {
        let pid: pid_t
        let log: String
        init(config: String) throws {
            log = NSTemporaryDirectory() + "bw-kt-agent-\(UUID().uuidString.prefix(6)).log"
            pid = try spawn(
                bulwarkDirectory() + "/bulwarkd", ["--config", config],
                environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"], output: log)
        }
        var output: String { (try? String(contentsOfFile: log, encoding: .utf8)) ?? "" }
        func stop() -> Int32 {
            kill(pid, SIGTERM)
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
            return (status >> 8) & 0xff
        }
    }

    static func call(_ socket: String, _ op: String) -> JSONObject? {
        try? NodeClient.call(socketPath: socket, .object(JSONObject([("op", .string(op))])))
    }

    static func waitFor(_ timeout: Double = 60, _ condition: () -> Bool) -> Bool {
        let end = Date().addingTimeInterval(timeout)
        while Date() < end {
            if condition() { return true }
            usleep(100_000)
        }
        return false
    }

    /// BPF events of one container (other suites run containers with the same enforcer meanwhile).
    static func subscribe(_ socket: String, container: String) throws -> NodeClient {
        let c = try NodeClient(
            socketPath: socket,
            request: .object(
                JSONObject([
                    ("op", .string("events")), ("follow", .bool(true)),
                    (
                        "filter",
                        .object(JSONObject([("enforcer", .string("BPF")), ("container", .string(container))]))
                    ),
                ])))
        _ = try c.answer()
        c.setReceiveTimeout(seconds: 60)
        return c
    }

    /// Next event about `path`.
    static func event(_ c: NodeClient, path: String) -> JSONObject? {
        while let line = try? c.nextLine() {
            if case .object(let o)? = try? JSONValue.parse(line), o["event"]?.object?["path"] == .string(path) {
                return o
            }
        }
        return nil
    }

    @Test func aBPFDenialArrivesNamedAndSurvivesAnAgentRestart() throws {
        guard let e = kernelOrSkip(), var s = try WrapperKernelTests.setup(e, runtime: "runc") else { return }
        // a policy of its own: the other suites load, use and remove kt-wrap concurrently
        s.dir = try fixture()
        try FileManager.default.createDirectory(atPath: s.dir + "/policies", withIntermediateDirectories: true)
        try WrapperKernelTests.policy.replacingOccurrences(of: "kt-wrap", with: "kt-agent")
            .write(toFile: s.dir + "/policies/kt-agent.yaml", atomically: true, encoding: .utf8)
        defer { _ = try? e.remove(profile: "varmor-cluster-varmor-kt-agent") }
        let socket = s.dir + "/run/bulwark.sock"
        let stateDir = s.dir + "/run/containers"
        let config = s.dir + "/bulwark.yaml"
        try """
        policyDirectories: [\(s.dir)/policies]
        runtime: \(s.runtimePath)
        bpfPinPath: \(e.pinPath)
        enforcers: [BPF]
        nodeName: kt-node
        socketPath: \(socket)
        containerStateDirectory: \(stateDir)
        eventLogFile: \(s.dir)/log/violations.log
        metricsAddress: ""
        kernelLog: ""
        auditEventMetadata: {clusterName: kt}

        """.write(toFile: config, atomically: true, encoding: .utf8)
        var env = s.environment
        env["BULWARK_CONFIG"] = config

        var agent = try Agent(config: config)
        #expect(Self.waitFor { Self.call(socket, "status") != nil }, "\(agent.output)")
        let profiles = Self.call(socket, "profiles")?["profiles"]?.array ?? []
        let bpfState = profiles.first?.object?["bpf"]?.string ?? ""
        #expect(bpfState.hasPrefix("loaded as id"), "\(profiles)")
        // 1. a container that runs and exits: its denial arrives named (even if read after its
        // poststop removed the record)
        let annotations = [
            "bulwark.io/policy": "kt-agent", "io.kubernetes.cri.sandbox-name": "web-1",
            "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.container-name": "app",
        ]
        let once = try WrapperKernelTests.bundle(
            in: s.dir, args: ["/bin/cat", "/etc/shadow"], annotations: annotations)
        let id1 = "bw-kt-agent-1-\(getpid())"
        var events = try Self.subscribe(socket, container: id1)
        let (code, out) = try capture(
            bulwarkDirectory() + "/bulwark-runtime", ["run", "--bundle", once, id1], environment: env)
        #expect(code != 0 && out.lowercased().contains("operation not permitted"), "\(out)")
        let first = try #require(Self.event(events, path: "/etc/shadow"), "no event; agent:\n\(agent.output)")
        #expect(first["enforcer"] == .string("BPF"))
        #expect(first["action"] == .string("DENIED"))
        #expect(first["containerID"] == .string(id1))
        #expect(first["podName"] == .string("web-1"))
        #expect(first["podNamespace"] == .string("shop"))
        #expect(first["containerName"] == .string("app"))
        #expect(first["profileName"] == .string("varmor-cluster-varmor-kt-agent"))
        #expect(first["policyKind"] == .string("VarmorClusterPolicy"))
        #expect(first["policyName"] == .string("kt-agent"))
        #expect(first["nodeName"] == .string("kt-node"))
        #expect(first["metadata"]?.object?["clusterName"] == .string("kt"))
        #expect(first["event"]?.object?["permissions"] == .array([.string("read")]))

        // 2. a long-running container; the agent restarts; an exec'd process is still refused and
        // its denial still named
        let long = try WrapperKernelTests.bundle(in: s.dir, args: ["/bin/cat", "/dev/zero"], annotations: annotations)
        let id2 = "bw-kt-agent-2-\(getpid())"
        let wrapper = bulwarkDirectory() + "/bulwark-runtime"
        var env2 = env
        env2["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        let (ccode, cout) = try captureDetached(wrapper, ["create", "--bundle", long, id2], environment: env2)
        #expect(ccode == 0, "create: \(cout)")
        defer {
            _ = try? captureDetached(wrapper, ["kill", id2, "KILL"], environment: env2)
            usleep(300_000)
            _ = try? captureDetached(wrapper, ["delete", "--force", id2], environment: env2)
        }
        #expect(try captureDetached(wrapper, ["start", id2], environment: env2).0 == 0)
        let record = s.dir + "/run/containers/\(id2).json"
        let recorded = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: record)))
        let ns = try #require((recorded as? [String: Any])?["namespace"] as? Int)
        #expect(e.binding(namespace: UInt32(ns)) != nil, "the hook bound the container")
        #expect(agent.stop() == 0, "\(agent.output)")
        #expect(e.binding(namespace: UInt32(ns)) != nil, "stopping the agent removed the binding")
        agent = try Agent(config: config)
        #expect(Self.waitFor { Self.call(socket, "status") != nil }, "\(agent.output)")
        let listed = (Self.call(socket, "containers")?["containers"]?.array ?? []).compactMap(\.object)
        let c2 = listed.first { $0["id"] == .string(id2) }
        #expect(c2?["bpf"]?.string?.hasPrefix("bound") == true, "\(listed)")
        events = try Self.subscribe(socket, container: id2)
        let (xcode, xout) = try capture(wrapper, ["exec", id2, "/bin/cat", "/etc/shadow"], environment: env2)
        #expect(xcode != 0, "exec'd read after the restart was allowed: \(xout)")
        let second = try #require(Self.event(events, path: "/etc/shadow"), "no event; agent:\n\(agent.output)")
        #expect(second["containerID"] == .string(id2))
        #expect(second["policyName"] == .string("kt-agent"))
        #expect(second["action"] == .string("DENIED"))
        #expect(agent.stop() == 0, "\(agent.output)")
    }

    /// Learn, then enforce, on the BPF enforcer: a BehaviorModeling policy's complain-mode records
    /// become the model (through the agent's modeler, not the violation log); the same policy as
    /// DefenseInDepth from that model (a BPF allow-list) lets the same workload run and refuses
    /// what it never did, naming it in a DENIED event.
    @Test func aRecordedModelBecomesABPFAllowListThatConfines() throws {
        guard let e = kernelOrSkip(), var s = try WrapperKernelTests.setup(e, runtime: "runc") else { return }
        s.dir = try fixture()
        try FileManager.default.createDirectory(atPath: s.dir + "/policies", withIntermediateDirectories: true)
        func policy(_ body: String) -> String {
            """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorClusterPolicy
            metadata: {name: kt-learn}
            spec:
              target:
                kind: Container
                selector: {matchLabels: {bulwark.io/policy: kt-learn}}
              policy:
                enforcer: BPF
            \(body)
            """
        }
        let policyFile = s.dir + "/policies/kt-learn.yaml"
        try policy("    mode: BehaviorModeling\n    modelingOptions: {duration: 30}")
            .write(toFile: policyFile, atomically: true, encoding: .utf8)
        let profile = "varmor-cluster-varmor-kt-learn"
        defer { _ = try? e.remove(profile: profile) }
        let socket = s.dir + "/run/bulwark.sock"
        let config = s.dir + "/bulwark.yaml"
        try """
        policyDirectories: [\(s.dir)/policies]
        runtime: \(s.runtimePath)
        bpfPinPath: \(e.pinPath)
        enforcers: [BPF]
        socketPath: \(socket)
        containerStateDirectory: \(s.dir)/run/containers
        modelDirectory: \(s.dir)/models
        eventLogFile: \(s.dir)/log/violations.log
        metricsAddress: ""
        kernelLog: ""

        """.write(toFile: config, atomically: true, encoding: .utf8)
        var env = s.environment
        env["BULWARK_CONFIG"] = config
        env["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin"
        let agent = try Agent(config: config)
        defer { _ = agent.stop() }
        #expect(Self.waitFor { Self.call(socket, "status") != nil }, "\(agent.output)")
        let annotations = ["bulwark.io/policy": "kt-learn"]
        func run(_ tag: String, _ args: [String]) throws -> (Int32, String) {
            let b = try WrapperKernelTests.bundle(in: s.dir, args: args, annotations: annotations)
            return try capture(
                bulwarkDirectory() + "/bulwark-runtime", ["run", "--bundle", b, "bw-kt-learn-\(tag)-\(getpid())"],
                environment: env)
        }
        // 1. record
        let (recorded, rout) = try run("record", ["/bin/cat", "/etc/motd"])
        #expect(recorded == 0 && rout.contains("motd"), "\(rout)")
        let store = ModelStore(directory: s.dir + "/models")
        var model: BehaviorModel?
        #expect(
            Self.waitFor(30) {
                model = try? store.load(profile)
                return model?.bpf?.files["/etc/motd"] != nil
            }, "the model has no /etc/motd: \(String(describing: model)); agent:\n\(agent.output)")
        #expect(model?.bpf?.files["/etc/motd"]?.permissions == ["read"])
        #expect(model?.bpf?.executions.isEmpty == false)
        #expect(model?.bpf?.files["/etc/shadow"] == nil)
        // the recording's records went to the model, not the violation log
        let log = (try? String(contentsOfFile: s.dir + "/log/violations.log", encoding: .utf8)) ?? ""
        #expect(!log.contains("/etc/motd"), "\(log)")

        // 2. enforce the model
        try policy("    mode: DefenseInDepth\n    defenseInDepth: {bpf: {profileType: BehaviorModel}}")
            .write(toFile: policyFile, atomically: true, encoding: .utf8)
        #expect(
            Self.waitFor {
                let p = Self.call(socket, "profiles")?["profiles"]?.array?.first?.object
                return p?["mode"] == .string("DefenseInDepth") && p?["bpf"]?.string?.hasPrefix("loaded") == true
            }, "\(String(describing: Self.call(socket, "profiles"))); agent:\n\(agent.output)")
        let (again, aout) = try run("again", ["/bin/cat", "/etc/motd"])
        #expect(again == 0 && aout.contains("motd"), "the learned workload was refused: \(aout)")
        let id = "bw-kt-learn-other-\(getpid())"
        let events = try Self.subscribe(socket, container: id)
        let (other, oout) = try run("other", ["/bin/cat", "/etc/shadow"])
        #expect(other != 0 && oout.lowercased().contains("operation not permitted"), "\(oout)")
        let denied = try #require(Self.event(events, path: "/etc/shadow"), "no event; agent:\n\(agent.output)")
        #expect(denied["action"] == .string("DENIED"))
        #expect(denied["policyName"] == .string("kt-learn"))
    }
}
