import BulwarkAgent
import BulwarkClient
import BulwarkNRI
import BulwarkOCI
import BulwarkPolicy
import BulwarkTestSupport
import Foundation
import NRITestPeer
import Testing

/// The `bulwarkd` executable: start-up errors, the policy store under edits and signals, and the
/// end-to-end path from a confined container's kernel record to a socket subscriber, across an
/// agent restart.
@Suite("bulwarkd", .serialized)
struct DaemonTests {
    @Test func aBadConfigIsAClearErrorAtStart() throws {
        let node = try Node("badconfig")
        defer { node.remove() }
        let config = try node.writeConfig(extra: "eventLogMaxBytes: lots\nsubscriberQueue: 5\n")
        let (code, out) = try capture(bulwarkDirectory() + "/bulwarkd", ["--config", config])
        #expect(code == 2, "\(out)")
        #expect(out.contains("bulwark.yaml:14"), "\(out)")
        #expect(out.contains("eventLogMaxBytes"))
        #expect(out.contains("subscriberQueue"))
        // --check: the policy problem with file:line, exit 1, nothing loaded
        let good = try node.writeConfig()
        try node.write(policy: "broken.yaml", shopPolicy.replacingOccurrences(of: "BPFSeccomp", with: "Nope"))
        let (ccode, cout) = try capture(bulwarkDirectory() + "/bulwarkd", ["--config", good, "--check"])
        #expect(ccode == 1, "\(cout)")
        #expect(cout.contains("rejected") && cout.contains("broken.yaml:"), "\(cout)")
        #expect(!FileManager.default.fileExists(atPath: node.config.seccompProfileDirectory))
        // issue 12 (9): --check finds an over-long socket path and an unknown socket group
        var longNode = node
        longNode.config.socketPath = "/run/" + String(repeating: "s", count: 120)
        let longSocket = try longNode.writeConfig()
        let (lcode, lout) = try capture(bulwarkDirectory() + "/bulwarkd", ["--config", longSocket, "--check"])
        #expect(lcode == 2 && lout.contains("unix socket address"), "\(lout)")
        let noGroup = try node.writeConfig(extra: "socketGroup: bulwark-no-such-group\n")
        let (gcode, gout) = try capture(bulwarkDirectory() + "/bulwarkd", ["--config", noGroup, "--check"])
        #expect(gcode == 2 && gout.contains("not a group on this node"), "\(gout)")
    }

    @Test func anInvalidPolicyEditKeepsTheLastGoodVersion() throws {
        var node = try Node("lastgood")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        try node.write(policy: "web.yaml", shopPolicy)
        let daemon = try Daemon(config: try node.writeConfig(), socket: node.config.socketPath)
        defer { daemon.stop() }
        #expect(daemon.ready(), "\(daemon.output)")
        let path = node.config.socketPath
        let seccompFile = node.config.seccompProfileDirectory + "/varmor-shop-web.json"
        #expect(FileManager.default.fileExists(atPath: seccompFile))
        let notices = try NodeClient(
            socketPath: path, request: request("events", [("follow", .bool(true)), ("notices", .bool(true))]))
        _ = try notices.answer()

        // a broken edit: reported (notice, status), the good version stays
        try node.write(policy: "web.yaml", shopPolicy.replacingOccurrences(of: "BPFSeccomp", with: "Nope"))
        let notice = readLines(notices, count: 1)
        #expect(notice.first?["message"] == .string("policy file rejected"), "\(daemon.output)")
        #expect(notice.first?["keptLastGood"] == .bool(true))
        let status = try #require(try NodeClient.call(socketPath: path, request("status"))["status"]?.object)
        let rejected = status["rejectedFiles"]?.array?.first?.object
        #expect(rejected?["keptLastGood"] == .bool(true))
        #expect(rejected?["errors"]?.array?.first?.string?.contains("web.yaml:") == true)
        let profiles = try NodeClient.call(socketPath: path, request("profiles"))["profiles"]?.array ?? []
        #expect(profiles.compactMap { $0.object?["name"]?.string } == ["varmor-shop-web"])
        #expect(FileManager.default.fileExists(atPath: seccompFile))

        // fixed: accepted again; removed: unloaded and its seccomp profile deleted
        try node.write(policy: "web.yaml", shopPolicy.replacingOccurrences(of: "app: web", with: "app: shop"))
        #expect(
            eventually {
                (try? NodeClient.call(socketPath: path, request("status"))["status"]?.object?["rejectedFiles"])
                    == .array([])
            })
        try FileManager.default.removeItem(atPath: node.dir + "/policies/web.yaml")
        #expect(
            eventually {
                (try? NodeClient.call(socketPath: path, request("profiles"))["profiles"]) == .array([])
            })
        #expect(!FileManager.default.fileExists(atPath: seccompFile))

        // SIGHUP reloads
        let before = try NodeClient.call(socketPath: path, request("status"))["status"]?.object?["reloads"]?.text
        kill(daemon.pid, SIGHUP)
        #expect(
            eventually {
                (try? NodeClient.call(socketPath: path, request("status")))?["status"]?.object?["reloads"]?.text
                    != before
            })
        #expect(daemon.stop() == 0, "\(daemon.output)")
        #expect(!FileManager.default.fileExists(atPath: path), "the socket is removed at exit")
    }

    /// `nri: true`: bulwarkd hosts the NRI plugin; a runtime (the Swift peer) sees it register and
    /// gets an adjustment from the agent's live policy store — a policy added while it runs applies
    /// to the next container.
    @Test func theAgentHostsTheNRIPlugin() throws {
        var node = try Node("nri-agent")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        let peer = try RuntimePeer(path: node.dir + "/nri.sock")
        let config = try node.writeConfig(extra: "nri: true\nnriSocketPath: \(peer.path)\nnriPluginIndex: \"42\"\n")
        let daemon = try Daemon(config: config, socket: node.config.socketPath)
        defer { daemon.stop() }
        let session = try peer.accept(timeout: 20)
        #expect(session.pluginName == "bulwark" && session.pluginIndex == "42")
        _ = try session.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
        let web = nriPod(name: "web-1", namespace: "shop", labels: ["app": "web"])
        let before = try session.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
        #expect(before.adjust.annotations.isEmpty, "no policy yet")
        try node.write(policy: "web.yaml", shopPolicy)
        #expect(
            eventually {
                let r = try? session.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
                return r?.adjust.annotations["bulwark.io/profile"] == "varmor-shop-web"
            }, "\(daemon.output)")
        #expect(daemon.stop() == 0, "\(daemon.output)")
        #expect(session.waitClosed(timeout: 5), "the plugin's connection ends with the agent")
    }

    /// The issue's "done when": a container confined through bulwark-runtime and bulwark-hook (runc)
    /// makes the kernel log a seccomp record (SCMP_ACT_LOG of the observe policy); it arrives on
    /// the node socket as vArmor JSON with the configured metadata and the pod, container and policy
    /// names — after the agent was restarted while the container ran.
    /// A seccomp-only node whose policy is the observe policy (SCMP_ACT_LOG on unshare, among
    /// others), reading /dev/kmsg; and its node config file (runtime: runc).
    static func observeNode(_ name: String, metricsAddress: String) throws -> (Node, String) {
        var node = try Node(name)
        node.config.enforcers = [.seccomp]
        node.config.kernelLog = "/dev/kmsg"
        node.config.metricsAddress = metricsAddress
        let observe = try String(
            contentsOfFile: PodmanFixture.repository.path + "/packaging/policies/observe.yaml", encoding: .utf8)
        try node.write(policy: "observe.yaml", observe)
        return (node, try node.writeConfig(extra: "runtime: \(runcPath!)\n"))
    }

    /// A node-socket subscription to seccomp events (its answer read).
    static func seccompEvents(_ socket: String) throws -> NodeClient {
        let events = try NodeClient(
            socketPath: socket,
            request: request(
                "events",
                [("follow", .bool(true)), ("filter", .object(JSONObject([("enforcer", .string("Seccomp"))])))]))
        _ = try events.answer()
        return events
    }

    @Test(.needs(runcAndBusybox)) func aConfinedContainersEventArrivesAfterAnAgentRestart() throws {
        guard runcAndBusybox.check() else { return }
        let port = UInt16(20000 + getpid() % 20000)
        let (node, config) = try Self.observeNode("e2e", metricsAddress: "127.0.0.1:\(port)")
        defer { node.remove() }
        var first = try Daemon(config: config, socket: node.config.socketPath)
        #expect(first.ready(), "\(first.output)")

        var bundle = BusyboxBundle(args: [
            "sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; unshare -U sleep 1; sleep 60",
        ])
        bundle.applets = ["sh", "sleep", "unshare"]
        bundle.annotations = [
            "bulwark.io/policy": "observe", "io.kubernetes.cri.sandbox-name": "web-1",
            "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.sandbox-uid": "uid-1",
            "io.kubernetes.cri.container-name": "app", "io.kubernetes.cri.image-name": "registry.local/web:1",
        ]
        let b = try bundle.write(below: node.dir)
        let id = "bw-agent-e2e-\(getpid())"
        let wrapper = bulwarkDirectory() + "/bulwark-runtime"
        let env = ["BULWARK_CONFIG": config, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let (ccode, cout) = try captureDetached(wrapper, ["create", "--bundle", b, id], environment: env)
        #expect(ccode == 0, "create: \(cout)")
        defer { _ = try? captureDetached(wrapper, ["delete", "--force", id], environment: env) }
        let (scode, sout) = try captureDetached(wrapper, ["start", id], environment: env)
        #expect(scode == 0, "start: \(sout)")
        let recordPath = node.config.containerStateDirectory + "/\(id).json"
        #expect(FileManager.default.fileExists(atPath: recordPath), "the hook recorded the container")
        // the hook's own latency, from its record, and the container gauge
        var metrics = ""
        #expect(
            eventually {
                metrics = httpGet(host: "127.0.0.1", port: port, path: "/metrics") ?? ""
                return metrics.contains("bulwark_hook_duration_seconds_count 1")
                    && metrics.contains("bulwark_containers 1")
            }, "\(metrics)")

        // restart the agent while the container runs: nothing about the container is lost
        #expect(first.stop() == 0, "\(first.output)")
        #expect(FileManager.default.fileExists(atPath: recordPath))
        first = try Daemon(config: config, socket: node.config.socketPath)
        #expect(first.ready(), "\(first.output)")
        let containers = try NodeClient.call(socketPath: node.config.socketPath, request("containers"))
        let listed = containers["containers"]?.array?.first?.object
        #expect(listed?["id"] == .string(id))
        #expect(listed?["running"] == .bool(true))
        #expect(listed?["podName"] == .string("web-1"))

        let events = try Self.seccompEvents(node.config.socketPath)
        let pid = try #require(listed?["pid"]?.text)
        #expect(FileManager.default.createFile(atPath: "/proc/\(pid)/root/tmp/go", contents: Data()))
        let got = readLines(events, count: 1, timeout: 15)
        let e = try #require(got.first, "no event arrived; agent said:\n\(first.output)")
        #expect(e["level"] == .string("warn"))
        #expect(e["metadata"]?.text == #"{"clusterName":"test-cluster","region":"lab","varmorNamespace":"varmor"}"#)
        #expect(e["nodeName"] == .string("node-a"))
        #expect(e["podName"] == .string("web-1"))
        #expect(e["podNamespace"] == .string("shop"))
        #expect(e["podUID"] == .string("uid-1"))
        #expect(e["containerID"] == .string(id))
        #expect(e["containerName"] == .string("app"))
        #expect(e["image"] == .string("registry.local/web:1"))
        #expect(e["enforcer"] == .string("Seccomp"))
        #expect(e["eventType"] == .string("Seccomp"))
        #expect(e["action"] == .string("AUDIT|ALLOWED"))
        #expect(e["profileName"] == .string("varmor-cluster-varmor-observe"))
        #expect(e["policyKind"] == .string("VarmorClusterPolicy"))
        #expect(e["policyName"] == .string("observe"))
        #expect(e["policyNamespace"] == .string(""))
        #expect(e["event"]?.object?["syscall"] == .string("unshare"))
        #expect(e["message"] == .string("violation event"))
        // the same event in the violation log and in the metrics
        let log = (try? String(contentsOfFile: node.config.eventLogFile, encoding: .utf8)) ?? ""
        #expect(log.contains("\"containerID\":\"\(id)\""))
        metrics = httpGet(host: "127.0.0.1", port: port, path: "/metrics") ?? ""
        #expect(metrics.contains(#"bulwark_events_total{enforcer="Seccomp",action="AUDIT|ALLOWED"} 1"#), "\(metrics)")

        _ = try captureDetached(wrapper, ["kill", id, "KILL"], environment: env)
        _ = eventually {
            (try? captureDetached(wrapper, ["state", id], environment: env))?.1.contains("stopped") == true
        }
        let (dcode, dout) = try captureDetached(wrapper, ["delete", id], environment: env)
        #expect(dcode == 0, "delete: \(dout)")
        #expect(!FileManager.default.fileExists(atPath: recordPath), "poststop removed the record")
        #expect(first.stop() == 0, "\(first.output)")
    }

    /// A record of a process that exited before the agent read it is still an event of its
    /// container (issue 14: the process tracker keeps each pid's mount namespace after it exits).
    /// Four short-lived `unshare` children under the observe policy's SCMP_ACT_LOG: four events,
    /// each named with the container, though none of the four processes exists any more.
    @Test(.needs(runcAndBusybox)) func recordsOfExitedProcessesAreAttributed() throws {
        guard runcAndBusybox.check() else { return }
        let (node, config) = try Self.observeNode("short", metricsAddress: "")
        defer { node.remove() }
        let daemon = try Daemon(config: config, socket: node.config.socketPath)
        #expect(daemon.ready(), "\(daemon.output)")
        #expect(daemon.output.contains("process tracker loaded"), "\(daemon.output)")
        var bundle = BusyboxBundle(args: [
            "sh", "-c",
            "while [ ! -e /tmp/go ]; do sleep 0.05; done; for i in 1 2 3 4; do unshare -U true; done; sleep 60",
        ])
        bundle.applets = ["sh", "sleep", "unshare", "true"]
        bundle.annotations = ["bulwark.io/policy": "observe", "io.kubernetes.cri.container-name": "short"]
        let b = try bundle.write(below: node.dir)
        let id = "bw-short-\(getpid())"
        let wrapper = bulwarkDirectory() + "/bulwark-runtime"
        let env = ["BULWARK_CONFIG": config, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        let (ccode, cout) = try captureDetached(wrapper, ["create", "--bundle", b, id], environment: env)
        #expect(ccode == 0, "create: \(cout)")
        defer {
            _ = try? captureDetached(wrapper, ["delete", "--force", id], environment: env)
            _ = daemon.stop()
        }
        let (scode, sout) = try captureDetached(wrapper, ["start", id], environment: env)
        #expect(scode == 0, "start: \(sout)")
        let events = try Self.seccompEvents(node.config.socketPath)
        let state = try captureDetached(wrapper, ["state", id], environment: env).1
        let pid = try #require(
            (try? JSONValue.parse(state))?.object?["pid"]?.integer, "no pid in the state: \(state)")
        #expect(FileManager.default.createFile(atPath: "/proc/\(pid)/root/tmp/go", contents: Data()))
        let got = readLines(events, count: 4, timeout: 15)
        #expect(got.count == 4, "\(got.count) of 4 events; agent said:\n\(daemon.output)")
        var pids = Set<String>()
        for e in got {
            #expect(e["containerID"] == .string(id))
            #expect(e["containerName"] == .string("short"))
            #expect(e["event"]?.object?["syscall"] == .string("unshare"))
            if let p = e["pid"]?.text {
                pids.insert(p)
                #expect(!FileManager.default.fileExists(atPath: "/proc/\(p)"), "process \(p) still runs")
            }
        }
        #expect(pids.count == got.count, "each event is a different process: \(pids)")
    }
}
