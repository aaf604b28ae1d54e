import BulwarkTestSupport
import Foundation
import Testing

/// Podman 4.3 on this machine (root), with the busybox rootfs (`--rootfs`, no image pulls):
/// `--runtime bulwark-runtime` confines a container chosen by `--annotation` from its first
/// instruction on top of podman's own default seccomp profile; `podman exec`, `stop` and `rm` pass
/// through; `--hooks-dir` with the shipped hooks/ files runs `bulwark-hook`.
/// (Podman clears the environment of the runtime it runs: see `PodmanFixture.runtimeShim`.)
let podmanNeeds = Needs(
    root: true, [Needs.tool(PodmanFixture.podman, "/usr/sbin/podman"), "/bin/busybox"],
    "needs root, podman and busybox-static")

@Suite("podman with bulwark-runtime and hooks.d", .serialized, .needs(podmanNeeds))
struct PodmanTests {
    struct Setup {
        var dir: String
        var rootfs: String
        var environment: [String: String]
        /// The `--runtime` shim per real runtime.
        var shims: [String: String]
    }

    static func setup() throws -> Setup? {
        let fm = FileManager.default
        guard podmanNeeds.check() else { return nil }
        let dir = NSTemporaryDirectory() + "bw-podman-\(UUID().uuidString.prefix(8))"
        let rootfs = dir + "/rootfs"
        try BusyboxBundle.rootfs(at: rootfs, applets: ["sh", "mkdir", "echo", "sleep", "cat", "grep"])
        try fm.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        try RuntimeWrapperTests.policy.write(toFile: dir + "/policies/nomkdir.yaml", atomically: true, encoding: .utf8)
        let env = try PodmanFixture.environment(in: dir)
        var shims: [String: String] = [:]
        for runtime in ["runc", "crun"] {
            guard let path = ["/usr/sbin/\(runtime)", "/usr/bin/\(runtime)"].first(where: fm.isExecutableFile)
            else { continue }
            let config = "\(dir)/bulwark-\(runtime).yaml"
            try "policyDirectories: [\(dir)/policies]\nruntime: \(path)\nbpfPinPath: /nonexistent/bulwark-pins\n"
                .write(toFile: config, atomically: true, encoding: .utf8)
            shims[runtime] = "\(dir)/bulwark-runtime-\(runtime)"
            try PodmanFixture.runtimeShim(at: shims[runtime]!, config: config)
        }
        return Setup(dir: dir, rootfs: rootfs, environment: env, shims: shims)
    }

    static func podman(_ s: Setup, _ args: [String]) throws -> (Int32, String) {
        try capture(PodmanFixture.podman, args, environment: s.environment)
    }

    static let runs = Int(ProcessInfo.processInfo.environment["BULWARK_FIRST_ACT_RUNS"] ?? "") ?? 200

    @Test(arguments: ["runc", "crun"])
    func theEntrypointsFirstActIsDeniedOnTopOfPodmansSeccompProfile(runtime: String) throws {
        guard let s = try Self.setup() else { return }
        guard let shim = s.shims[runtime], RuntimeWrapperTests.crunCanRun(runtime) else {
            Issue.record("\(runtime) is not installed")
            return
        }
        var escapes = 0
        for i in 0..<Self.runs {
            let (code, out) = try Self.podman(
                s,
                [
                    "run", "--rm", "--network", "none", "--runtime", shim, "--annotation", "bulwark.io/policy=nomkdir",
                    "--rootfs", s.rootfs, "/bin/mkdir", "/tmp/escape",
                ])
            if code == 0 || !out.contains("Operation not permitted") {
                escapes += 1
                if escapes <= 3 { Issue.record("start \(i): exit \(code): \(out)") }
                try? FileManager.default.removeItem(atPath: s.rootfs + "/tmp/escape")
            }
        }
        #expect(escapes == 0, "\(escapes) of \(Self.runs) podman starts escaped")
        // One filter: Bulwark's rules were merged into podman's profile, which still applies
        // (its default action refuses what it does not list, e.g. `reboot`).
        let (code, out) = try Self.podman(
            s,
            [
                "run", "--rm", "--network", "none", "--runtime", shim, "--annotation", "bulwark.io/policy=nomkdir",
                "--rootfs", s.rootfs, "/bin/grep", "Seccomp", "/proc/self/status",
            ])
        #expect(code == 0 && out.contains("Seccomp:\t2") && out.contains("Seccomp_filters:\t1"), "\(out)")
        // An untargeted container through the same wrapper is not confined.
        let (ucode, uout) = try Self.podman(
            s,
            ["run", "--rm", "--network", "none", "--runtime", shim, "--rootfs", s.rootfs, "/bin/mkdir", "/tmp/fine"])
        #expect(ucode == 0, "\(uout)")
        #expect(FileManager.default.fileExists(atPath: s.rootfs + "/tmp/fine"))
        try? FileManager.default.removeItem(atPath: s.rootfs + "/tmp/fine")
    }

    /// `podman exec` (runtime `exec`), `stop` (`kill`) and `rm` (`delete`) pass through the wrapper;
    /// the exec'd process is confined like the entrypoint.
    @Test func execStopAndRemovePassThroughAndExecIsConfined() throws {
        guard let s = try Self.setup(), let shim = s.shims["runc"] else { return }
        let name = "bw-podman-life-\(getpid())"
        let (code, out) = try captureDetached(
            PodmanFixture.podman,
            [
                "run", "-d", "--name", name, "--network", "none", "--runtime", shim, "--annotation",
                "bulwark.io/policy=nomkdir", "--rootfs", s.rootfs, "/bin/sleep", "300",
            ], environment: s.environment)
        #expect(code == 0, "\(out)")
        defer { _ = try? Self.podman(s, ["rm", "-f", "-t", "0", name]) }
        let (ecode, eout) = try Self.podman(s, ["exec", name, "/bin/mkdir", "/tmp/from-exec"])
        #expect(ecode != 0 && eout.contains("Operation not permitted"), "exec escaped: \(ecode) \(eout)")
        let (hcode, hout) = try Self.podman(s, ["exec", name, "/bin/echo", "exec works"])
        #expect(hcode == 0 && hout.contains("exec works"), "\(hout)")
        let (scode, sout) = try Self.podman(s, ["stop", "-t", "1", name])
        #expect(scode == 0, "\(sout)")
        let (icode, iout) = try Self.podman(s, ["inspect", "--format", "{{.State.Status}}", name])
        #expect(icode == 0 && iout.contains("exited"), "\(iout)")
        let (rcode, rout) = try Self.podman(s, ["rm", name])
        #expect(rcode == 0, "\(rout)")
    }

    /// packaging/runtime/podman-containers.conf as written (runtime path pointed at the test shim):
    /// plain `podman run` goes through the wrapper.
    @Test func thePackagedContainersConfMakesTheWrapperPodmansRuntime() throws {
        guard let s = try Self.setup(), let shim = s.shims["runc"] else { return }
        let snippet = try String(
            contentsOf: PodmanFixture.repository.appendingPathComponent("packaging/runtime/podman-containers.conf"),
            encoding: .utf8)
        #expect(snippet.contains("/usr/libexec/bulwark/bulwark-runtime"))
        let conf =
            (try String(contentsOfFile: s.dir + "/containers.conf", encoding: .utf8)).components(
                separatedBy: "[engine]")[0]
            + snippet.replacingOccurrences(of: "/usr/libexec/bulwark/bulwark-runtime", with: shim)
            .replacingOccurrences(
                of: "[engine]\n", with: "[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n")
        try conf.write(toFile: s.dir + "/packaged.conf", atomically: true, encoding: .utf8)
        var env = s.environment
        env["CONTAINERS_CONF"] = s.dir + "/packaged.conf"
        let (code, out) = try capture(
            PodmanFixture.podman,
            [
                "run", "--rm", "--network", "none", "--annotation", "bulwark.io/policy=nomkdir", "--rootfs", s.rootfs,
                "/bin/mkdir", "/tmp/escape",
            ], environment: env)
        #expect(code != 0 && out.contains("Operation not permitted"), "\(code) \(out)")
        let (icode, iout) = try capture(
            PodmanFixture.podman, ["info", "--format", "{{.Host.OCIRuntime.Path}}"], environment: env)
        #expect(icode == 0 && iout.contains(shim), "\(iout)")
    }

    /// The shipped hooks.d files (paths pointed at this build): an annotated container runs
    /// `bulwark-hook`, which refuses it here because this kernel has no BPF LSM (fail-closed, one
    /// line shown by podman); an unannotated one never runs the hook. The kernel tier binds for real.
    @Test func hooksDirRunsTheHookOnlyForAnnotatedContainers() throws {
        guard let s = try Self.setup() else { return }
        let hooks = try PodmanFixture.hooksDirectory(in: s.dir, pinPath: "/nonexistent/bulwark-pins")
        let base = ["--hooks-dir", hooks, "run", "--rm", "--network", "none"]
        let (code, out) = try Self.podman(
            s,
            base + [
                "--annotation", "bulwark.io/bpf-profile=varmor-demo-web", "--rootfs", s.rootfs, "/bin/echo", "started",
            ])
        #expect(code != 0, "podman started a container the hook refused: \(out)")
        #expect(out.contains("cannot confine with BPF profile varmor-demo-web"), "\(out)")
        #expect(!out.contains("started"))
        let (ucode, uout) = try Self.podman(s, base + ["--rootfs", s.rootfs, "/bin/echo", "started"])
        #expect(ucode == 0 && uout.contains("started"), "\(uout)")
    }
}
