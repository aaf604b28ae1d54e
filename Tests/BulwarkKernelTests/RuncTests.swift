import BulwarkBPF
import BulwarkBPFMaps
import BulwarkPolicy
import BulwarkProfiles
import BulwarkTestSupport
import Foundation
import Testing

/// A real runc container on the BPF LSM kernel: bound by a createRuntime hook while runc is still
/// setting the container up, armed at the entrypoint's execve, so the entrypoint's first act is
/// already confined — and runc's own mounts in the new namespace are not (vArmor #97).
@Suite(
    "Kernel tier: runc", .serialized, .needs(kernelNeeds([Needs.tool("/usr/sbin/runc", "/usr/bin/runc")], "needs runc"))
)
struct RuncTests {
    static func runcPath() -> String? {
        ["/usr/sbin/runc", "/usr/bin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Bundle {
        var dir: String
        var hookLog: String
    }

    /// A busybox rootfs bundle whose createRuntime hook (`bulwark-hook`) binds the container
    /// (armed at the entrypoint's exec) and whose poststop hook unbinds it.
    static func bundle(args: [String], profile: String, pinPath: String) throws -> Bundle {
        let parent = try fixture()
        let log = "\(parent)/hook-state"
        let hookArgs = { (stage: String) -> [String: Any] in
            [
                "path": bulwarkDirectory() + "/bulwark-hook",
                "args": ["bulwark-hook", stage, "--pin-path", pinPath, "--state-dir", log], "timeout": 30,
            ]
        }
        var b = BusyboxBundle(args: args)
        b.applets = ["sh", "cat", "true", "echo"]
        b.files = ["secret": "secret\n", "public": "public\n"]
        b.readonlyRoot = true
        b.annotations = ["bulwark.io/bpf-profile": profile, "bulwark.io/applied-policy": "test/kt-runc"]
        b.hooks = ["createRuntime": [hookArgs("createRuntime")], "poststop": [hookArgs("poststop")]]
        return Bundle(dir: try b.write(below: parent), hookLog: log)
    }

    static func run(_ runc: String, bundle: String, id: String) throws -> (Int32, String) {
        try capture(runc, ["run", "--bundle", bundle, id])
    }

    /// RuntimeDefault's BPF rules forbid every mount: had the binding been armed at
    /// createRuntime, runc's own /proc, /dev and /tmp mounts would fail and no container would start.
    static func policy(_ extra: String) -> String {
        "        files:\n        - {qualifiers: [deny, audit], pattern: /secret, permissions: [read]}\n" + extra
    }

    @Test func entrypointsFirstActIsDeniedOnEveryStart() throws {
        guard let e = kernelOrSkip() else { return }
        guard let runc = Self.runcPath() else { return }
        var profile = compile(Self.policy(""), name: "kt-runc")
        profile = withRuntimeDefaultBase(profile)
        try e.apply(profile)
        defer { try? e.remove(profile: "kt-runc") }
        let denied = try Self.bundle(args: ["/bin/cat", "/secret"], profile: "kt-runc", pinPath: e.pinPath)
        let allowed = try Self.bundle(args: ["/bin/cat", "/public"], profile: "kt-runc", pinPath: e.pinPath)
        let runs = 20
        var escapes = 0
        for i in 0..<runs {
            let (code, out) = try Self.run(runc, bundle: denied.dir, id: "bw-kt-deny-\(i)")
            if code == 0 || !out.contains("Operation not permitted") {
                escapes += 1
                Issue.record("run \(i): exit \(code), output: \(out)")
            }
        }
        #expect(escapes == 0, "\(escapes) of \(runs) starts escaped")
        let (code, out) = try Self.run(runc, bundle: allowed.dir, id: "bw-kt-allow")
        #expect(code == 0 && out.contains("public"), "allowed container: exit \(code), \(out)")
        // poststop removed every binding and record the hook made
        #expect(!e.bindings().contains { $0.profileName == "kt-runc" }, "\(e.bindings())")
        let records = (try? FileManager.default.contentsOfDirectory(atPath: denied.hookLog)) ?? []
        #expect(records.isEmpty, "records left: \(records)")
    }

    @Test func entrypointExecItselfIsChecked() throws {
        guard let e = kernelOrSkip() else { return }
        guard let runc = Self.runcPath() else { return }
        let rules = Self.policy(
            "        processes:\n        - {qualifiers: [deny, audit], pattern: /bin/busybox, permissions: [exec]}")
        try e.apply(compile(rules, name: "kt-runc-exec"))
        defer { try? e.remove(profile: "kt-runc-exec") }
        let b = try Self.bundle(args: ["/bin/true"], profile: "kt-runc-exec", pinPath: e.pinPath)
        let (code, out) = try Self.run(runc, bundle: b.dir, id: "bw-kt-exec")
        #expect(code != 0, "the entrypoint ran: \(out)")
        #expect(out.lowercased().contains("permission denied") || out.contains("not permitted"), "\(out)")
    }
}

/// Adds the RuntimeDefault BPF base (mount deny-all among others) to a compiled profile.
func withRuntimeDefaultBase(_ p: BPFProfile) -> BPFProfile {
    let parsed = PolicyParser.inline("    enforcer: BPF\n    mode: RuntimeDefault", name: "rd")
    let base = try! BPFCompiler().compile(parsed.policies[0], profileName: p.name)  // RuntimeDefault: cannot throw
    var out = p
    out.mounts += base.mounts
    out.ptrace.denyCross |= base.ptrace.denyCross
    return out
}
