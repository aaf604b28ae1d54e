import BulwarkClient
import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkTestSupport
import Foundation
import Testing

/// Behaviour modeling end to end with real runc containers through the wrapper and the hook, on
/// this machine's kernel (seccomp; the process tracker's BTF tracepoints load here): a
/// BehaviorModeling policy records what a container does into its model, the window closes, the
/// same policy as DefenseInDepth from that model lets the same workload run and refuses a syscall
/// the model never saw.
@Suite("Behaviour modeling (seccomp, runc)", .serialized, .needs(runcAndBusybox))
struct ModelingTests {
    static func policy(_ body: String) -> String {
        """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorClusterPolicy
        metadata: {name: learn}
        spec:
          target:
            kind: Container
            selector: {matchLabels: {bulwark.io/policy: learn}}
          policy:
            enforcer: Seccomp
        \(body)
        """
    }

    /// A node recording the `learn` policy for `duration` minutes, and its agent. The recording
    /// map is pinned on a bpffs (returned, to unmount), so the hook adds each container before it runs.
    static func start(_ tag: String, duration: Int) throws -> (Node, String, Daemon, String) {
        var node = try Node(tag)
        let bpffs = node.dir + "/bpf"
        try FileManager.default.createDirectory(atPath: bpffs, withIntermediateDirectories: true)
        let (mounted, why) = try capture("/usr/bin/mount", ["-t", "bpf", "bpf", bpffs])
        try #require(mounted == 0, "cannot mount a bpffs: \(why)")
        node.config.bpfPinPath = bpffs + "/bulwark"
        node.config.enforcers = [.seccomp]
        node.config.kernelLog = "/dev/kmsg"
        try node.write(
            policy: "learn.yaml",
            Self.policy("    mode: BehaviorModeling\n    modelingOptions: {duration: \(duration)}"))
        let config = try node.writeConfig(extra: "runtime: \(runcPath!)\n")
        return (node, config, try Daemon(config: config, socket: node.config.socketPath), bpffs)
    }

    @Test func recordThenEnforceTheModel() throws {
        guard runcAndBusybox.check() else { return }
        let (node, config, daemon, bpffs) = try Self.start("learn", duration: 1)
        defer {
            _ = daemon.stop()
            _ = try? capture("/usr/bin/umount", [bpffs])
            node.remove()
        }
        #expect(daemon.ready(), "\(daemon.output)")
        #expect(daemon.output.contains("pinned in"), "the recording map is not pinned: \(daemon.output)")

        // the window opened when the profile was first loaded; it is kept in the model file
        let store = ModelStore(directory: node.config.modelDirectory)
        let name = "varmor-cluster-varmor-learn"
        var model: BehaviorModel?
        #expect(
            eventually {
                model = try? store.load(name)
                return model.flatMap(RecordingWindow.init) != nil
            })
        // the window ends 20 s from now (as if recording had begun 40 s ago: the state on disk is
        // what an agent continues from)
        var backdated = try #require(model)
        RecordingWindow(started: Date().timeIntervalSince1970 - 40).store(in: &backdated)
        try store.save(backdated)

        let acts = "mkdir /tmp/a && echo learned > /tmp/a/f && cat /tmp/a/f && ls / > /dev/null"
        func run(_ tag: String, _ script: String) throws -> (Int32, String) {
            var bundle = BusyboxBundle(args: ["sh", "-c", script])
            bundle.applets = ["sh", "mkdir", "echo", "cat", "ls", "unshare", "true"]
            bundle.annotations = ["bulwark.io/policy": "learn"]
            let b = try bundle.write(below: node.dir)
            return try captureDetached(
                bulwarkDirectory() + "/bulwark-runtime", ["run", "--bundle", b, "bw-learn-\(tag)-\(getpid())"],
                environment: ["BULWARK_CONFIG": config, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        }
        let (recorded, out) = try run("record", acts)
        #expect(recorded == 0 && out.contains("learned"), "\(out)")
        // what it did is in the model (syscalls recorded in the kernel, none lost)
        #expect(
            eventually(timeout: 10) {
                model = try? store.load(name)
                return model?.seccomp?.syscalls.isSuperset(of: ["mkdir", "execve", "write", "getdents64"]) == true
            },
            "model: \(String(describing: model?.seccomp?.syscalls.sorted())) \(Result { try store.load(name) })\n\(daemon.output)"
        )
        #expect(model?.annotations[BehaviorModel.lostRecordsAnnotation] == nil)
        #expect(model?.seccomp?.syscalls.contains("unshare") == false)
        // the window closes: the model is complete and the profile allows everything
        #expect(
            eventually(timeout: 40) {
                model = try? store.load(name)
                return model.flatMap(RecordingWindow.init)?.completed != nil
            }, "\(daemon.output)")

        // the same policy, now enforcing the model
        try node.write(
            policy: "learn.yaml",
            Self.policy("    mode: DefenseInDepth\n    defenseInDepth: {seccomp: {profileType: BehaviorModel}}"))
        let (again, againOut) = try run("enforce", acts)
        #expect(again == 0 && againOut.contains("learned"), "the recorded workload is refused: \(againOut)")
        let (outside, outsideOut) = try run("outside", "unshare -U true")
        #expect(outside != 0 && outsideOut.contains("Operation not permitted"), "\(outsideOut)")
    }

    /// A profile switched from BehaviorModeling to its model right after a container ran compiles
    /// with every syscall that container made: the reload harvests the kernel's records first (the
    /// loop harvests every two seconds, so the model file alone can be a run behind — seen in CI as
    /// a learned workload refused in the kernel tier).
    @Test func aSwitchRightAfterARunCompilesEveryRecord() throws {
        guard runcAndBusybox.check() else { return }
        let (node, config, daemon, bpffs) = try Self.start("learn-switch", duration: 30)
        defer {
            _ = daemon.stop()
            _ = try? capture("/usr/bin/umount", [bpffs])
            node.remove()
        }
        #expect(daemon.ready(), "\(daemon.output)")
        let store = ModelStore(directory: node.config.modelDirectory)
        let name = "varmor-cluster-varmor-learn"
        #expect(eventually { (try? store.load(name)).flatMap { $0 }.flatMap(RecordingWindow.init) != nil })
        // quiet while nothing changes: a reload opens the model directory's lock (each model update
        // does), which must not count as a change of the directory it watches
        func reloads() throws -> Int {
            try NodeClient.call(socketPath: node.config.socketPath, request("status"))["reloads"]?.integer.map(Int.init)
                ?? -1
        }
        usleep(1_000_000)
        let before = try reloads()
        usleep(2_000_000)
        #expect(try reloads() == before, "the agent reloads by itself")

        func run(_ tag: String) throws -> (Int32, String) {
            var bundle = BusyboxBundle(args: ["sh", "-c", "mkdir /tmp/a && echo learned > /tmp/a/f && cat /tmp/a/f"])
            bundle.applets = ["sh", "mkdir", "echo", "cat"]
            bundle.annotations = ["bulwark.io/policy": "learn"]
            let b = try bundle.write(below: node.dir)
            return try captureDetached(
                bulwarkDirectory() + "/bulwark-runtime", ["run", "--bundle", b, "bw-switch-\(tag)-\(getpid())"],
                environment: ["BULWARK_CONFIG": config, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
        }
        let (recorded, out) = try run("record")
        #expect(recorded == 0 && out.contains("learned"), "\(out)")
        // at once, without waiting for the model file
        try node.write(
            policy: "learn.yaml",
            Self.policy("    mode: DefenseInDepth\n    defenseInDepth: {seccomp: {profileType: BehaviorModel}}"))
        let answer = try NodeClient.call(socketPath: node.config.socketPath, request("reload"))
        #expect(answer["error"] == nil, "\(answer)")
        let model = try store.load(name)
        #expect(
            model?.seccomp?.syscalls.isSuperset(of: ["mkdir", "execve", "exit_group"]) == true,
            "\(String(describing: model))")
        let (again, againOut) = try run("enforce")
        #expect(
            again == 0 && againOut.contains("learned"),
            "the recorded workload is refused: \(againOut)\n\(daemon.output)")
    }
}
