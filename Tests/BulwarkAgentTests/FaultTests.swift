import BulwarkAgent
import BulwarkClient
import BulwarkOCI
import BulwarkPolicy
import BulwarkTestSupport
import Foundation
import Testing

let canRunFaults =
    getuid() == 0 && runcPath != nil && FileManager.default.fileExists(atPath: "/bin/busybox")
    && FileManager.default.isReadableFile(atPath: "/dev/kmsg")

/// Issue 12, fault tests with real processes: the agent killed while containers start, many
/// create/delete cycles, the violation log's disk full.
@Suite(
    "Faults with real containers", .serialized,
    .enabled(if: canRunFaults, "needs root, runc, busybox-static and /dev/kmsg"))
struct FaultTests {
    static let policies = """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorClusterPolicy
        metadata: {name: nomkdir}
        spec:
          target: {kind: Container, selector: {matchLabels: {bulwark.io/policy: nomkdir}}}
          policy:
            enforcer: Seccomp
            mode: EnhanceProtect
            enhanceProtect:
              syscallRawRules:
              - {names: [mkdir, mkdirat], action: SCMP_ACT_ERRNO}
              - {names: [unshare], action: SCMP_ACT_LOG}
        """

    struct Env {
        var node: Node
        var config: String
        var env: [String: String]
        let wrapper = bulwarkDirectory() + "/bulwark-runtime"
    }

    func setup(_ name: String, extra: String = "") throws -> Env {
        var node = try Node(name)
        node.config.enforcers = [.seccomp]
        node.config.kernelLog = "/dev/kmsg"
        try node.write(policy: "nomkdir.yaml", Self.policies)
        let config = try node.writeConfig(extra: "runtime: \(runcPath!)\n" + extra)
        return Env(
            node: node, config: config, env: ["BULWARK_CONFIG": config, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
    }

    func bundle(_ e: Env, args: [String]) throws -> String {
        var b = BusyboxBundle(args: args)
        b.applets = ["sh", "sleep", "mkdir", "unshare"]
        b.annotations = ["bulwark.io/policy": "nomkdir"]
        return try b.write(below: e.node.dir)
    }

    func rss(_ pid: pid_t) -> Int {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let line = status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") } ?? ""
        return Int(line.split(separator: " ").dropFirst().first ?? "") ?? 0
    }

    /// SIGKILL (no clean stop) while containers start: every container is still confined (its
    /// mkdir refused), the agent restarts with the running container's record and attribution,
    /// and its event sources are not stuck (an event made after the restart arrives).
    @Test func theAgentKilledWhileContainersStart() throws {
        let e = try setup("fault-kill")
        defer { e.node.remove() }
        var daemon = try Daemon(config: e.config, socket: e.node.config.socketPath)
        #expect(daemon.ready(), "\(daemon.output)")
        // a long-running container started before the kill
        let longBundle = try bundle(
            e, args: ["sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; unshare -U sleep 1; sleep 60"])
        let longID = "bw-fault-long-\(getpid())"
        #expect(
            try captureDetached(e.wrapper, ["run", "-d", "--bundle", longBundle, longID], environment: e.env).0 == 0)
        defer { _ = try? captureDetached(e.wrapper, ["delete", "--force", longID], environment: e.env) }
        var escapes = 0
        for i in 0..<20 {
            if i == 8 {
                kill(daemon.pid, SIGKILL)
                _ = daemon.wait()
            }
            if i == 14 {
                daemon = try Daemon(config: e.config, socket: e.node.config.socketPath)
                #expect(daemon.ready(), "\(daemon.output)")
            }
            let b = try bundle(e, args: ["mkdir", "/tmp/escape"])
            let (code, out) = try captureDetached(
                e.wrapper, ["run", "--bundle", b, "bw-fault-\(getpid())-\(i)"], environment: e.env)
            if code == 0 || !out.contains("Operation not permitted") { escapes += 1 }
        }
        #expect(escapes == 0, "\(escapes) of 20 containers ran unconfined around the agent's death")
        let containers = try NodeClient.call(socketPath: e.node.config.socketPath, request("containers"))
        let listed = containers["containers"]?.array?.compactMap(\.object) ?? []
        let long = try #require(listed.first { $0["id"] == .string(longID) }, "\(containers)")
        #expect(long["running"] == .bool(true))
        let events = try NodeClient(
            socketPath: e.node.config.socketPath,
            request: request(
                "events",
                [("follow", .bool(true)), ("filter", .object(JSONObject([("enforcer", .string("Seccomp"))])))]))
        _ = try events.answer()
        let pid = try #require(long["pid"]?.text)
        #expect(FileManager.default.createFile(atPath: "/proc/\(pid)/root/tmp/go", contents: Data()))
        let got = readLines(events, count: 1, timeout: 15)
        #expect(got.first?["containerID"] == .string(longID), "no event after the restart:\n\(daemon.output)")
        #expect(daemon.stop() == 0)
    }

    /// Many create/delete cycles through the wrapper and the hook: no record, runtime state or
    /// file is left behind, and the agent's memory stays flat. BULWARK_FAULT_CYCLES sets the count.
    @Test func createDeleteCyclesLeakNothing() throws {
        let cycles = Int(ProcessInfo.processInfo.environment["BULWARK_FAULT_CYCLES"] ?? "") ?? 1000
        let e = try setup("fault-cycles")
        defer { e.node.remove() }
        let daemon = try Daemon(config: e.config, socket: e.node.config.socketPath)
        #expect(daemon.ready(), "\(daemon.output)")
        let b = try bundle(e, args: ["sleep", "60"])
        let before = try FileManager.default.contentsOfDirectory(atPath: b)
        let runcState = (try? FileManager.default.contentsOfDirectory(atPath: "/run/runc")) ?? []
        var rssStart = 0
        var failures = 0
        let start = Date()
        for i in 0..<cycles {
            let id = "bw-cycle-\(getpid())-\(i)"
            let (c, out) = try captureDetached(e.wrapper, ["create", "--bundle", b, id], environment: e.env)
            if c != 0 {
                failures += 1
                if failures <= 3 { Issue.record("create \(i): \(out)") }
            }
            _ = try captureDetached(e.wrapper, ["delete", "--force", id], environment: e.env)
            if i == min(50, cycles - 1) { rssStart = rss(daemon.pid) }
        }
        let seconds = Date().timeIntervalSince(start)
        #expect(failures == 0)
        _ = eventually(timeout: 5) {
            ((try? FileManager.default.contentsOfDirectory(atPath: e.node.config.containerStateDirectory)) ?? [])
                .isEmpty
        }
        let records =
            (try? FileManager.default.contentsOfDirectory(atPath: e.node.config.containerStateDirectory)) ?? []
        #expect(records.isEmpty, "\(records.count) container records left")
        let runcAfter = (try? FileManager.default.contentsOfDirectory(atPath: "/run/runc")) ?? []
        #expect(Set(runcAfter).subtracting(runcState).isEmpty, "runtime state left: \(runcAfter)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: b).sorted() == before.sorted())
        let status = try NodeClient.call(socketPath: e.node.config.socketPath, request("status"))
        #expect(status["status"]?.object?["containers"]?.text == "0")
        let rssEnd = rss(daemon.pid)
        print(
            "fault cycles: \(cycles) create/delete in \(Int(seconds)) s; agent RSS \(rssStart) kB after 50, "
                + "\(rssEnd) kB after \(cycles); records left \(records.count)")
        #expect(rssEnd - rssStart < 20_000, "agent RSS grew \(rssEnd - rssStart) kB")
        #expect(daemon.stop() == 0)
    }

    /// The violation log's file system full: the agent keeps running, events still reach the
    /// socket, and it says so (status, a notice, its log).
    @Test func aFullEventLogDiskIsSurvivedAndReported() throws {
        var e = try setup("fault-full")
        defer { e.node.remove() }
        let logDir = e.node.dir + "/log"
        try FileManager.default.createDirectory(atPath: logDir, withIntermediateDirectories: true)
        let (mcode, mout) = try capture("/bin/mount", ["-t", "tmpfs", "-o", "size=64k,mode=0750", "tmpfs", logDir])
        try #require(mcode == 0, "mount: \(mout)")
        defer { _ = try? capture("/bin/umount", [logDir]) }
        e.config = try e.node.writeConfig(extra: "runtime: \(runcPath!)\n")
        let daemon = try Daemon(config: e.config, socket: e.node.config.socketPath)
        #expect(daemon.ready(), "\(daemon.output)")
        // fill the file system
        let filler =
            FileHandle(forWritingAtPath: logDir + "/filler")
            ?? {
                _ = FileManager.default.createFile(atPath: logDir + "/filler", contents: nil)
                return FileHandle(forWritingAtPath: logDir + "/filler")!
            }()
        let block = Data(repeating: 0x41, count: 4096)
        while (try? filler.write(contentsOf: block)) != nil {}
        try? filler.close()
        let events = try NodeClient(
            socketPath: e.node.config.socketPath,
            request: request("events", [("follow", .bool(true)), ("notices", .bool(true))]))
        _ = try events.answer()
        for i in 0..<3 {
            let b = try bundle(e, args: ["sh", "-c", "unshare -U sleep 1"])
            let (code, out) = try captureDetached(
                e.wrapper, ["run", "--bundle", b, "bw-full-\(getpid())-\(i)"], environment: e.env)
            #expect(code == 0, "\(out)")
        }
        let got = readLines(events, count: 2, timeout: 20)
        #expect(got.contains { $0["enforcer"] == .string("Seccomp") }, "no event on the socket: \(got)")
        #expect(
            eventually(timeout: 10) {
                let s = try? NodeClient.call(socketPath: e.node.config.socketPath, request("status"))
                return (Int(s?["status"]?.object?["eventLogWriteFailures"]?.text ?? "0") ?? 0) > 0
            })
        #expect(eventually(timeout: 5) { daemon.output.contains("violation log: events could not be written") })
        #expect(daemon.stop() == 0)
    }
}
