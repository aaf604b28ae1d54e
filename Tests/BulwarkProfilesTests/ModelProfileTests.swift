import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkTestSupport
import Foundation
import Testing

/// DefenseInDepth with `profileType: BehaviorModel`: allow-lists generated from a behaviour model.
@Suite("Profiles from behaviour models")
struct ModelProfileTests {
    static func fromModel(allowViolations: Bool = false) -> Policy {
        policy(
            """
                enforcer: AppArmorSeccomp
                mode: DefenseInDepth
                defenseInDepth:
                  allowViolations: \(allowViolations)
                  appArmor:
                    profileType: BehaviorModel
                    appArmorRawRules:
                    - rules: "/etc/hostname r,"
                  seccomp:
                    profileType: BehaviorModel
                    syscallRawRules:
                    - {names: [chmod], action: SCMP_ACT_ALLOW}
            """)
    }

    /// What a recording of a small busybox workload holds (names as AppArmor and seccomp report them).
    static func model(name: String = "varmor-ns-t") -> BehaviorModel {
        var m = BehaviorModel(name: name, namespace: "ns")
        var a = AppArmorBehavior()
        a.executions = ["/bin/busybox"]
        a.addFile(FileAccess(path: "/etc/passwd", owner: true, permissions: ["r"]))
        a.addFile(FileAccess(path: "/tmp/**", permissions: ["r", "w", "a"]))
        a.addFile(FileAccess(path: "/data/with space", permissions: ["w"]))
        a.addFile(FileAccess(path: "/etc/a{b}", permissions: ["r", "x"]))
        a.addFile(FileAccess(path: "/lib/x86_64-linux-gnu/**", permissions: ["m", "r"]))
        a.capabilities = ["chown", "not_a_capability"]
        m.appArmor = a
        m.seccomp = SeccompBehavior(syscalls: ["read", "write", "execve", "mkdir", "not_a_syscall"])
        return m
    }

    @Test func theAppArmorAllowListHoldsWhatTheModelHoldsAndTheRawRules() throws {
        var notes: [String] = []
        let p = try AppArmorCompiler(model: Self.model()).compile(Self.fromModel(), profileName: "varmor-ns-t")
        notes = p.notes
        #expect(!p.complain)
        #expect(p.text.contains("profile varmor-ns-t flags=(attach_disconnected,mediate_deleted) {\n"))
        for line in [
            "  /bin/busybox ix,\n", "  owner /etc/passwd r,\n", "  /tmp/** rw,\n", "  \"/data/with space\" w,\n",
            "  /etc/a\\{b\\} r,\n", "  /lib/x86_64-linux-gnu/** mr,\n", "  capability chown,\n",
            "  signal (send,receive) peer=varmor-ns-t,\n", "  /etc/hostname r,\n",
        ] {
            #expect(p.text.contains(line), "missing \(line)")
        }
        #expect(!p.text.contains("not_a_capability"))
        #expect(notes.contains { $0.contains("not_a_capability") })
        // the raw rules are inside the profile, before its last brace
        let close = try #require(p.text.range(of: "}", options: .backwards))
        #expect(p.text.range(of: "/etc/hostname r,")!.lowerBound < close.lowerBound)
        // observation mode: the same profile, loaded in complain mode
        let observe = try AppArmorCompiler(model: Self.model()).compile(
            Self.fromModel(allowViolations: true), profileName: "varmor-ns-t")
        #expect(observe.complain)
    }

    @Test func theSeccompAllowListHoldsTheModelsSyscallsThatExist() throws {
        let p = try SeccompCompiler(model: Self.model()).compile(Self.fromModel())
        #expect(p.defaultAction == "SCMP_ACT_ERRNO")
        let allowed = Set((p.syscalls ?? []).filter { $0.action == "SCMP_ACT_ALLOW" }.flatMap(\.names))
        #expect(allowed.isSuperset(of: ["read", "write", "execve", "mkdir", "openat", "chmod"]))
        #expect(!allowed.contains("not_a_syscall"))
        #expect(p.syscalls?.last?.names == ["chmod"])
        #expect(ToolCheckedTests.load(p).isEmpty)
        #expect(
            try SeccompCompiler(model: Self.model()).compile(Self.fromModel(allowViolations: true)).defaultAction
                == "SCMP_ACT_LOG")
    }

    @Test func withoutAModelNothingIsCompiledAndTheErrorSaysWhatToRun() throws {
        let policy = Self.fromModel()
        #expect(throws: ProfileUnavailable.self) { try SeccompCompiler().compile(policy) }
        do {
            _ = try AppArmorCompiler().compile(policy, profileName: "varmor-ns-t")
            Issue.record("compiled without a model")
        } catch {
            #expect(error.description.contains("varmor-ns-t") && error.description.contains("bulwark model import"))
        }
        // a model of another profile is not this profile's model
        #expect(throws: ProfileUnavailable.self) {
            try AppArmorCompiler(model: Self.model(name: "varmor-ns-other")).compile(policy, profileName: "varmor-ns-t")
        }
        // a model that recorded no seccomp data cannot make a seccomp allow-list
        var noSeccomp = Self.model()
        noSeccomp.seccomp = nil
        #expect(throws: ProfileUnavailable.self) { try SeccompCompiler(model: noSeccomp).compile(policy) }
        #expect(
            ModelProfiles.unavailable(policy, profileName: "varmor-ns-t", enforcers: [.seccomp], model: noSeccomp)
                != nil)
        #expect(
            ModelProfiles.unavailable(policy, profileName: "varmor-ns-t", enforcers: [.appArmor], model: noSeccomp)
                == nil)
    }

    @Test(.needs(ToolCheckedTests.needsParser)) func theGeneratedProfilePassesApparmorParser() throws {
        guard let parser = which("apparmor_parser") else { return }
        let p = try AppArmorCompiler(model: Self.model()).compile(Self.fromModel(), profileName: "varmor-ns-t")
        let file = NSTemporaryDirectory() + "bw-model-aa-\(getpid())"
        try p.text.write(toFile: file, atomically: true, encoding: .utf8)
        defer { unlink(file) }
        let (status, output) = try capture(parser, ["-Q", "-K", file])
        #expect(status == 0, "\(output)\n\(p.text)")
    }
}
