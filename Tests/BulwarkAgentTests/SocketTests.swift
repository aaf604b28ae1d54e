import BulwarkAgent
import BulwarkClient
import BulwarkOCI
import BulwarkPolicy
import BulwarkTestSupport
import Foundation
import Synchronization
import Testing

/// The node socket with an in-process agent (no kernel sources): the control API, filtered
/// subscribers, the bound on a slow subscriber, and who may connect.
@Suite("Node socket", .serialized)
struct SocketTests {
    func startAgent(_ node: Node) throws -> Agent {
        let agent = try Agent(config: node.config, logger: quietLogger)
        try agent.start(sources: false)
        return agent
    }

    @Test func theControlAPIAnswers() throws {
        var node = try Node("control")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        try node.write(policy: "web.yaml", shopPolicy)
        try node.writeRecord(record(id: "c1", namespace: 111))
        let agent = try startAgent(node)
        defer { agent.stop() }
        let path = node.config.socketPath
        // 0600, owned by us
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o777 == 0o600)

        // the typed API (the CLI's path): every answer decodes into its type
        let status = try NodeClient.status(socketPath: path)
        #expect(status.nodeName == "node-a")
        #expect(status.policyFiles == 1 && status.profiles == 1 && status.containers == 1)
        #expect(status.enforcers.configured == ["Seccomp"])
        #expect(status.rejectedFiles.isEmpty)
        let profiles = try NodeClient.profiles(socketPath: path)
        #expect(profiles.map(\.name) == ["varmor-shop-web"])
        #expect(profiles.first?.seccomp.hasPrefix("stored ") == true)
        #expect(FileManager.default.fileExists(atPath: node.config.seccompProfileDirectory + "/varmor-shop-web.json"))
        let containers = try NodeClient.containers(socketPath: path)
        #expect(containers.count == 1)
        #expect(containers.first?.podName == "web-1")
        #expect(containers.first?.mntNsID == 111)
        #expect(containers.first?.bpf == "binding missing")
        #expect(try NodeClient.reload(socketPath: path) == ReloadOutcome(changed: 0, removed: 0, rejectedFiles: 0))
        // the wire format stays what scripts read (`bulwark status --json`, nc -U)
        let raw = try #require(try NodeClient.call(socketPath: path, request("status"))["status"])
        #expect(raw.object?.keys == status.json.object?.keys)
        #expect(raw.object?["nodeName"] == .string("node-a"))

        do {
            _ = try NodeClient.call(socketPath: path, request("bogus"))
            Issue.record("an unknown op was answered")
        } catch {
            #expect(error.description == "unknown op \"bogus\" (status, containers, profiles, reload, events)")
        }
        // not JSON, and a filter with a typo: a clear error each, the agent keeps serving
        let garbage = try NodeClient(socketPath: path, request: .string("hello"))
        #expect(throws: NodeClient.Failure.self) { try garbage.answer() }
        let typo = try NodeClient(
            socketPath: path,
            request: request("events", [("filter", .object(JSONObject([("namspace", .string("x"))])))]))
        do {
            _ = try typo.answer()
            Issue.record("a filter typo was accepted")
        } catch {
            #expect(error.description.contains("unknown filter field \"namspace\""))
        }
        #expect(try NodeClient.call(socketPath: path, request("status"))["ok"] == .bool(true))
        // a second agent on the same socket is refused, the first keeps it
        #expect(throws: Agent.StartFailure.self) { try startAgent(node) }
        #expect(try NodeClient.call(socketPath: path, request("status"))["ok"] == .bool(true))
    }

    @Test func subscribersReceiveOnlyWhatTheirFilterSelects() throws {
        var node = try Node("filters")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        try node.write(policy: "web.yaml", shopPolicy)
        try node.writeRecord(record(id: "c1", namespace: 111, pod: "web-1"))
        try node.writeRecord(record(id: "c2", namespace: 222, pod: "web-2"))
        let agent = try startAgent(node)
        defer { agent.stop() }
        let path = node.config.socketPath
        func follow(_ filter: String) throws -> NodeClient {
            let c = try NodeClient(
                socketPath: path,
                request: request(
                    "events",
                    [("follow", .bool(true)), ("filter", try JSONValue.parse(filter))]))
            _ = try c.answer()
            return c
        }
        let all = try follow("{}")
        let pod2 = try follow(#"{"pod":"web-2"}"#)
        let audits = try follow(#"{"action":["AUDIT"],"enforcer":"BPF"}"#)
        #expect(eventually { agent.hub.subscriptions.count == 3 })
        agent.pipeline.ingest(bpf: [
            bpfRecord(namespace: 111), bpfRecord(namespace: 222), bpfRecord(namespace: 222, action: 2),
            bpfRecord(namespace: 111, action: 2),
        ])
        let a = readLines(all, count: 4)
        #expect(a.count == 4)
        let p = readLines(pod2, count: 2)
        #expect(p.map { $0["podName"] } == [.string("web-2"), .string("web-2")])
        let au = readLines(audits, count: 2)
        #expect(au.map { $0["action"] } == [.string("AUDIT"), .string("AUDIT")])
        // nothing more for the filtered ones
        #expect(readLines(pod2, count: 1, timeout: 0.3).isEmpty)
        // recent events without follow: the last ones that match, then the stream ends
        let recent = try NodeClient(
            socketPath: path,
            request: request("events", [("recent", .number(10)), ("filter", try JSONValue.parse(#"{"pod":"web-1"}"#))]))
        _ = try recent.answer()
        #expect(readLines(recent, count: 10).count == 2)
        // and the violation log has all four
        let log = try String(contentsOfFile: node.config.eventLogFile, encoding: .utf8)
        #expect(log.split(separator: "\n").count == 4)
    }

    /// A subscriber that never reads: publishing never waits for it, its events beyond the bound
    /// are dropped and counted, and a subscriber that reads gets everything.
    @Test func aSlowSubscriberNeverBlocksThePipelineOrOthers() throws {
        var node = try Node("slow")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        node.config.subscriberQueueLimit = 256
        node.config.eventLogFile = ""
        try node.writeRecord(record(id: "c1", namespace: 111))
        let agent = try startAgent(node)
        defer { agent.stop() }
        let path = node.config.socketPath
        let follow = request("events", [("follow", .bool(true))])
        let slow = try NodeClient(socketPath: path, request: follow)
        _ = try slow.answer()
        let fast = try NodeClient(socketPath: path, request: follow)
        _ = try fast.answer()
        #expect(eventually { agent.hub.subscriptions.count == 2 })
        let total = 5000
        let long = String(repeating: "a", count: 3000)
        let fastCount = Received()
        nonisolated(unsafe) let fastClient = fast
        let reader = Thread {
            fastClient.setReceiveTimeout(seconds: 20)
            while fastCount.value < total, (try? fastClient.nextLine()) != nil { fastCount.increment() }
        }
        reader.start()
        var sent = 0
        while sent < total {
            agent.pipeline.ingest(bpf: (0..<50).map { _ in bpfRecord(namespace: 111, path: "/" + long) })
            sent += 50
            // pace on the fast reader only (test-level): the slow one is never waited for
            _ = eventually(timeout: 10) { fastCount.value >= sent - 200 }
        }
        #expect(eventually(timeout: 20) { fastCount.value == total })
        let subs = agent.hub.subscriptions
        let slowSub = try #require(subs.first { $0.id == subs.map(\.id).min() })
        let dropped = Int(slowSub.dropped.load(ordering: .relaxed))
        let delivered = Int(slowSub.delivered.load(ordering: .relaxed))
        #expect(dropped > total / 2, "the never-reading subscriber dropped \(dropped)")
        #expect(delivered + dropped + slowSub.inFlight == total)
        #expect(slowSub.inFlight <= 256)
        #expect(agent.hub.counts.subscriberDrops == UInt64(dropped))
        let status = try #require(try NodeClient.call(socketPath: path, request("status"))["status"]?.object)
        #expect(status["drops"]?.object?["subscribers"]?.text == "\(dropped)")
        _ = slow
    }

    /// Root-only by default: a non-root process cannot even connect (0600), and one that gets past
    /// the file mode is still refused by the SO_PEERCRED check; with `socketGroup` its members may.
    static let setpriv = "/usr/bin/setpriv"
    static let needsSetpriv = Needs(root: true, [setpriv], "needs root and setpriv")

    @Test(.needs(needsSetpriv)) func nonRootClientsAreRefusedUnlessInTheSocketGroup() throws {
        guard Self.needsSetpriv.check() else { return }
        let setpriv = Self.setpriv
        var node = try Node("peer")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        let cli = bulwarkDirectory() + "/bulwark"
        let asNobody = ["--reuid=65534", "--regid=65534", "--clear-groups", cli, "status"]
        do {
            let agent = try startAgent(node)
            defer { agent.stop() }
            let (code, out) = try capture(setpriv, asNobody + ["--socket", node.config.socketPath])
            #expect(code == 77, "\(out)")
            #expect(out.contains("permission denied: cannot connect"))
            // past the file mode, the peer check refuses
            chmod(node.config.socketPath, 0o666)
            let (code2, out2) = try capture(setpriv, asNobody + ["--socket", node.config.socketPath])
            #expect(code2 == 77, "\(out2)")
            #expect(out2.contains("permission denied: uid=65534"))
            let (rootCode, rootOut) = try capture(cli, ["status", "--socket", node.config.socketPath])
            #expect(rootCode == 0, "\(rootOut)")
        }
        node.config.socketGroup = "4242"
        let agent = try startAgent(node)
        defer { agent.stop() }
        var st = stat()
        #expect(stat(node.config.socketPath, &st) == 0 && st.st_mode & 0o777 == 0o660 && st.st_gid == 4242)
        let member = [
            "--reuid=65534", "--regid=65534", "--groups=4242", cli, "status", "--socket", node.config.socketPath,
        ]
        let (code, out) = try capture(setpriv, member)
        #expect(code == 0, "\(out)")
        #expect(out.contains("node-a"))
        let (code3, out3) = try capture(setpriv, asNobody + ["--socket", node.config.socketPath])
        #expect(code3 == 77, "\(out3)")
    }
}

final class Received: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    var value: Int { lock.withLock { n } }
    func increment() { lock.withLock { n += 1 } }
}
