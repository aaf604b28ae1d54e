import BulwarkPolicy
import BulwarkStart
import BulwarkTestSupport
import Foundation
import Testing

/// `bulwark-runtime` with real runc and crun on this machine (root): a standalone container chosen
/// by an OCI annotation gets the policy's seccomp filter from its first instruction; untargeted
/// containers and every other subcommand are untouched.
let runtimeWrapperNeeds = Needs(
    root: true,
    [Needs.tool("/usr/bin/runc", "/usr/sbin/runc"), Needs.tool("/usr/bin/crun", "/usr/sbin/crun"), "/bin/busybox"],
    "needs root, runc, crun and busybox-static")

@Suite("bulwark-runtime with runc and crun", .serialized, .needs(runtimeWrapperNeeds))
struct RuntimeWrapperTests {
    static let policy = """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorClusterPolicy
        metadata: {name: nomkdir}
        spec:
          target:
            kind: Container
            selector: {matchLabels: {bulwark.io/policy: nomkdir}}
          policy:
            enforcer: Seccomp
            mode: EnhanceProtect
            enhanceProtect:
              syscallRawRules:
              - {names: [mkdir, mkdirat], action: SCMP_ACT_ERRNO}
        """

    struct Setup {
        var dir: String
        var config: String
    }

    /// Node config + policy directory for `runtime`, or nil (a recorded failure) when it cannot run.
    static func setup(runtime: String) throws -> Setup? {
        guard runtimeWrapperNeeds.check(), let runtimePath = Needs.tool("/usr/bin/\(runtime)", "/usr/sbin/\(runtime)")
        else {
            return nil
        }
        let dir = NSTemporaryDirectory() + "bw-rt-\(runtime)-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        try policy.write(toFile: dir + "/policies/nomkdir.yaml", atomically: true, encoding: .utf8)
        let config = dir + "/bulwark.yaml"
        try "policyDirectories: [\(dir)/policies]\nruntime: \(runtimePath)\nbpfPinPath: /nonexistent/bulwark-pins\n"
            .write(toFile: config, atomically: true, encoding: .utf8)
        return Setup(dir: dir, config: config)
    }

    static func bundle(in dir: String, args: [String], annotations: [String: String]) throws -> String {
        var b = BusyboxBundle(args: args)
        b.annotations = annotations
        b.applets = ["mkdir", "echo", "sh", "sleep"]
        b.extra = ["x-bulwark-test-unknown": ["kept": true]]
        return try b.write(below: dir)
    }

    static func wrapper(_ args: [String], config: String) throws -> (Int32, String) {
        var env = ProcessInfo.processInfo.environment
        env["BULWARK_CONFIG"] = config
        return try capture(bulwarkDirectory() + "/bulwark-runtime", args, environment: env)
    }

    static func direct(_ tool: String, _ args: [String]) throws -> (Int32, String) { try capture(tool, args) }

    /// crun 1.8 refuses hybrid cgroups until hugetlb moves to v1 (scripts/install-deps.sh does it).
    static func crunCanRun(_ runtime: String) -> Bool {
        guard runtime == "crun", FileManager.default.fileExists(atPath: "/sys/fs/cgroup/unified"),
            !FileManager.default.fileExists(atPath: "/sys/fs/cgroup/hugetlb/cgroup.procs")
        else { return true }
        Issue.record("crun needs the hybrid-cgroup fix (scripts/install-deps.sh applies it)")
        return false
    }

    /// BULWARK_FIRST_ACT_RUNS raises the number of starts (e.g. 10000); the default is 200.
    static let runs = Int(ProcessInfo.processInfo.environment["BULWARK_FIRST_ACT_RUNS"] ?? "") ?? 200

    @Test(arguments: ["runc", "crun"])
    func theEntrypointsFirstActIsDeniedOnEveryStart(runtime: String) throws {
        guard let s = try Self.setup(runtime: runtime), Self.crunCanRun(runtime) else { return }
        var escapes = 0
        for i in 0..<Self.runs {
            let b = try Self.bundle(
                in: s.dir, args: ["/bin/mkdir", "/tmp/escape"], annotations: ["bulwark.io/policy": "nomkdir"])
            let (code, out) = try Self.wrapper(
                ["run", "--bundle", b, "bw-fa-\(runtime)-\(getpid())-\(i)"], config: s.config)
            if code == 0 || !out.contains("Operation not permitted") {
                escapes += 1
                if escapes <= 3 { Issue.record("start \(i): exit \(code): \(out)") }
            }
            try? FileManager.default.removeItem(atPath: b)
        }
        #expect(escapes == 0, "\(escapes) of \(Self.runs) starts escaped")
    }

    @Test(arguments: ["runc", "crun"])
    func untargetedContainersAndOtherSubcommandsAreUntouched(runtime: String) throws {
        guard let s = try Self.setup(runtime: runtime), Self.crunCanRun(runtime) else { return }
        let runtimePath =
            FileManager.default.isExecutableFile(atPath: "/usr/bin/\(runtime)")
            ? "/usr/bin/\(runtime)" : "/usr/sbin/\(runtime)"
        let b = try Self.bundle(in: s.dir, args: ["/bin/mkdir", "/tmp/fine"], annotations: ["other": "x"])
        let before = try Data(contentsOf: URL(fileURLWithPath: b + "/config.json"))
        let (code, out) = try Self.wrapper(["run", "--bundle", b, "bw-un-\(runtime)-\(getpid())"], config: s.config)
        #expect(code == 0, "\(out)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: b + "/config.json")) == before, "config.json changed")
        // pass-through: the real runtime's stdout and exit status
        let (vw, vout) = try Self.wrapper(["--version"], config: s.config)
        let (vr, rout) = try Self.direct(runtimePath, ["--version"])
        #expect(vw == vr && vout == rout)
        let (sw, sout) = try Self.wrapper(["state", "bw-no-such-container"], config: s.config)
        let (sr, srout) = try Self.direct(runtimePath, ["state", "bw-no-such-container"])
        #expect(sw == sr && sw != 0)
        #expect(sout.split(separator: "\n").count == srout.split(separator: "\n").count)
        // a targeted spec keeps the fields Bulwark does not know
        let t = try Self.bundle(in: s.dir, args: ["/bin/echo", "ok"], annotations: ["bulwark.io/policy": "nomkdir"])
        _ = try Self.wrapper(["run", "--bundle", t, "bw-kp-\(runtime)-\(getpid())"], config: s.config)
        let spec =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: t + "/config.json")))
            as? [String: Any]
        #expect((spec?["x-bulwark-test-unknown"] as? [String: Any])?["kept"] as? Bool == true)
        #expect((spec?["annotations"] as? [String: String])?["bulwark.io/applied-policy"] == "nomkdir")
    }

    /// create, start, state, exec, kill, delete through the wrapper: each is the real runtime's
    /// (exit status, state JSON), and a process started by `exec` is confined like the entrypoint.
    @Test(arguments: ["runc", "crun"])
    func theLifecyclePassesThroughAndExecIsConfined(runtime: String) throws {
        guard let s = try Self.setup(runtime: runtime), Self.crunCanRun(runtime) else { return }
        var env = ProcessInfo.processInfo.environment
        env["BULWARK_CONFIG"] = s.config
        let wrapper = bulwarkDirectory() + "/bulwark-runtime"
        let b = try Self.bundle(
            in: s.dir, args: ["/bin/sleep", "300"], annotations: ["bulwark.io/policy": "nomkdir"])
        let id = "bw-life-\(runtime)-\(getpid())"
        let (ccode, cout) = try captureDetached(wrapper, ["create", "--bundle", b, id], environment: env)
        #expect(ccode == 0, "create: \(cout)")
        defer { _ = try? Self.wrapper(["delete", "--force", id], config: s.config) }
        func status() throws -> String? {
            let (_, out) = try Self.wrapper(["state", id], config: s.config)
            let json = out.firstIndex(of: "{").map { String(out[$0...]) } ?? ""
            return (try? JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])?["status"] as? String
        }
        #expect(try status() == "created")
        let (scode, sout) = try Self.wrapper(["start", id], config: s.config)
        #expect(scode == 0, "start: \(sout)")
        #expect(try status() == "running")
        let (ecode, eout) = try Self.wrapper(["exec", id, "/bin/mkdir", "/tmp/from-exec"], config: s.config)
        #expect(ecode != 0 && eout.contains("Operation not permitted"), "exec escaped: \(ecode) \(eout)")
        let (hcode, hout) = try Self.wrapper(["exec", id, "/bin/echo", "exec works"], config: s.config)
        #expect(hcode == 0 && hout.contains("exec works"), "\(hout)")
        let (kcode, kout) = try Self.wrapper(["kill", id, "KILL"], config: s.config)
        #expect(kcode == 0, "kill: \(kout)")
        var stopped = false
        for _ in 0..<100 where !stopped {
            stopped = try status() == "stopped"
            if !stopped { usleep(20_000) }
        }
        #expect(stopped)
        let (dcode, dout) = try Self.wrapper(["delete", id], config: s.config)
        #expect(dcode == 0, "delete: \(dout)")
        #expect(try status() == nil)
    }

    /// The wrapper decides from the start index: built on first use by `bulwark deliver`, reused
    /// while nothing changed, rebuilt when a policy file changes or the index is not root's alone,
    /// and a container is refused (not run unconfined) when no current index can be had.
    @Test func theStartIndexIsReusedRebuiltWhenStaleAndNeverTrustedBlindly() throws {
        guard let s = try Self.setup(runtime: "runc") else { return }
        let index = StartIndex.location(configPath: s.config)
        unlink(index)
        func run(_ tag: String) throws -> [String: String] {
            let b = try Self.bundle(
                in: s.dir, args: ["/bin/echo", "ok"], annotations: ["bulwark.io/policy": "nomkdir"])
            let (code, out) = try Self.wrapper(["run", "--bundle", b, "bw-ix-\(tag)-\(getpid())"], config: s.config)
            #expect(code == 0, "\(tag): \(out)")
            let spec =
                try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: b + "/config.json")))
                as? [String: Any]
            return spec?["annotations"] as? [String: String] ?? [:]
        }
        #expect(try run("first")["bulwark.io/applied-policy"] == "nomkdir")
        var st = stat()
        #expect(stat(index, &st) == 0, "bulwark deliver published the index")
        let built = st.st_ino
        #expect(try run("again")["bulwark.io/applied-policy"] == "nomkdir")
        #expect(stat(index, &st) == 0 && st.st_ino == built, "a current index is reused, not rebuilt")
        // the policy now selects other containers: the next start sees it at once
        try Self.policy.replacingOccurrences(of: "policy: nomkdir}", with: "policy: other}")
            .write(toFile: s.dir + "/policies/nomkdir.yaml", atomically: true, encoding: .utf8)
        #expect(try run("changed")["bulwark.io/applied-policy"] == nil, "a stale index was used")
        #expect(stat(index, &st) == 0 && st.st_ino != built)
        // an index others could have written is not trusted: rebuilt (and the policy applies again)
        try Self.policy.write(toFile: s.dir + "/policies/nomkdir.yaml", atomically: true, encoding: .utf8)
        #expect(try run("restored")["bulwark.io/applied-policy"] == "nomkdir")
        // the index of a config file that is gone is removed when an index is next published
        let gone = s.dir + "/gone.yaml"
        let orphan = StartIndex.location(configPath: gone)
        try String(contentsOfFile: index, encoding: .utf8).replacingOccurrences(of: s.config, with: gone)
            .write(toFile: orphan, atomically: true, encoding: .utf8)
        chmod(index, 0o666)
        stat(index, &st)
        let writable = st.st_ino
        #expect(try run("untrusted")["bulwark.io/applied-policy"] == "nomkdir")
        #expect(!FileManager.default.fileExists(atPath: orphan), "the orphaned index was not removed")
        #expect(stat(index, &st) == 0 && st.st_ino != writable && st.st_mode & 0o022 == 0)
        // no current index and no way to build one (a node config `bulwark deliver` refuses):
        // refused, the runtime never runs
        let bad = s.dir + "/bad.yaml"
        try "policyDirectories: [\(s.dir)/policies]\nruntime: /usr/sbin/runc\nnoSuchKey: 1\n"
            .write(toFile: bad, atomically: true, encoding: .utf8)
        let b = try Self.bundle(in: s.dir, args: ["/bin/echo", "ran"], annotations: ["bulwark.io/policy": "nomkdir"])
        let (code, out) = try Self.wrapper(["run", "--bundle", b, "bw-ix-bad-\(getpid())"], config: bad)
        #expect(code == 1 && out.contains("no current start index") && !out.contains("ran"), "\(out)")
    }

    /// DefenseInDepth from a behaviour model, end to end with runc: without the model the
    /// container is refused and its entrypoint never runs; once `bulwark model import` stored the
    /// model, the next start runs under the allow-list built from it (here: every syscall but
    /// mkdir), so what the model holds works and mkdir is denied.
    @Test func aDefenseInDepthPolicyRunsOnlyOnceItsModelIsThere() throws {
        guard let s = try Self.setup(runtime: "runc") else { return }
        try """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorClusterPolicy
        metadata: {name: learned}
        spec:
          target:
            kind: Container
            selector: {matchLabels: {bulwark.io/policy: learned}}
          policy:
            enforcer: Seccomp
            mode: DefenseInDepth
            defenseInDepth: {seccomp: {profileType: BehaviorModel}}
        """.write(toFile: s.dir + "/policies/learned.yaml", atomically: true, encoding: .utf8)
        let config = s.dir + "/learned.yaml"
        try (String(contentsOfFile: s.config, encoding: .utf8) + "modelDirectory: \(s.dir)/models\n")
            .write(toFile: config, atomically: true, encoding: .utf8)
        func start(_ tag: String) throws -> (Int32, String) {
            let b = try Self.bundle(
                in: s.dir, args: ["/bin/sh", "-c", "echo entrypoint-ran; mkdir /tmp/x"],
                annotations: ["bulwark.io/policy": "learned"])
            return try Self.wrapper(["run", "--bundle", b, "bw-model-\(tag)-\(getpid())"], config: config)
        }
        let (refused, why) = try start("none")
        #expect(refused != 0 && why.contains("no behaviour model") && !why.contains("entrypoint-ran"), "\(why)")
        let names = SyscallNames.known.subtracting(["mkdir", "mkdirat"]).sorted().map { "\"\($0)\"" }
        let model = s.dir + "/model.json"
        try """
        {"apiVersion": "crd.varmor.org/v1beta1", "kind": "ArmorProfileModel",
         "metadata": {"name": "varmor-cluster-varmor-learned"},
         "data": {"dynamicResult": {"seccomp": {"syscalls": [\(names.joined(separator: ","))]}}}}
        """.write(toFile: model, atomically: true, encoding: .utf8)
        let (imported, out) = try capture(
            bulwarkDirectory() + "/bulwark", ["model", "import", "--config", config, model])
        #expect(imported == 0, "\(out)")
        let (code, ran) = try start("model")
        #expect(code != 0 && ran.contains("entrypoint-ran") && ran.contains("Operation not permitted"), "\(ran)")
    }

    @Test func aFailureBeforeExecIsAJSONLogLineAndNoContainer() throws {
        guard let s = try Self.setup(runtime: "runc") else { return }
        let log = s.dir + "/oci-log"
        let (code, out) = try Self.wrapper(
            ["--log-format=json", "--log", log, "create", "--bundle", s.dir + "/missing", "bw-missing"],
            config: s.config)
        #expect(code == 1)
        #expect(out.contains("cannot read"))
        let line = try String(contentsOfFile: log, encoding: .utf8)
        let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String]
        #expect(object?["level"] == "error" && object?["msg"]?.contains("cannot read") == true)
        #expect(object?["time"] != nil)
    }
}
