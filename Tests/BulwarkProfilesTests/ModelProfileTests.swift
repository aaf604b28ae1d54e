import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkTestSupport
import CBulwarkABI
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

/// DefenseInDepth on the BPF enforcer (Bulwark's; vArmor has no BPF allow-list): the allow-list is
/// the model's BPF data as `allow` entries in the same tables deny rules use.
@Suite("BPF allow-lists")
struct BPFAllowListTests {
    static func fromModel(allowViolations: Bool = false, raw: String = "") -> Policy {
        policy(
            """
                enforcer: BPF
                mode: DefenseInDepth
                defenseInDepth:
                  allowViolations: \(allowViolations)
                  bpf:
                    profileType: BehaviorModel
            \(raw)
            """)
    }

    /// What the modeler records from the BPF enforcer's complain-mode records of a small workload.
    static func model(name: String = "varmor-ns-t") -> BehaviorModel {
        var m = BehaviorModel(name: name, namespace: "ns")
        var b = BPFBehavior()
        b.executions = ["/bin/busybox"]
        b.addFile(FileAccess(path: "/etc/hosts", permissions: ["read"]))
        b.addFile(FileAccess(path: "/tmp/**", permissions: ["read", "write", "create"]))
        b.addFile(FileAccess(path: "/usr/lib/*.so", permissions: ["read", "exec"]))
        b.addFile(FileAccess(path: "/a/**/b/**/c", permissions: ["read"]))  // two `**`: wider in BPF
        b.addFile(FileAccess(path: "/proc/*/status", permissions: ["read"]))
        b.capabilities = ["net_bind_service", "not_a_capability"]
        b.network.sockets = [
            SocketUse(domain: "AF_INET", type: "SOCK_STREAM", protocol: "IPPROTO_TCP"), SocketUse(domain: "AF_UNIX"),
            SocketUse(domain: "AF_NOPE"),
        ]
        b.network.egresses = ["10.0.0.1": [80, 443], "fd00::1": []]
        b.ptraces = [false: ["read"], true: ["readby"]]
        b.mounts = [MountUse(path: "/dev/shm", type: "tmpfs"): ["nosuid"]]
        m.bpf = b
        return m
    }

    @Test func theAllowListHoldsWhatTheModelHolds() throws {
        let p = try BPFCompiler(model: Self.model()).compile(Self.fromModel(), profileName: "varmor-ns-t")
        #expect(p.mode == .enforce && p.allowList == .all)
        let read = FilePermissions.read.rawValue
        let write = FilePermissions.write.rawValue
        // the tables' answer, as the kernel programs compute it
        #expect(p.tableVerdict(path: "/etc/hosts", exec: false).allow == read)
        #expect(p.tableVerdict(path: "/etc/shadow", exec: false).allow == 0)
        #expect(p.tableVerdict(path: "/etc/hosts2", exec: false).allow == 0)  // exact stays exact
        #expect(p.tableVerdict(path: "/tmp/x/y", exec: false).allow & write != 0)
        #expect(p.tableVerdict(path: "/bin/busybox", exec: true).allow == FilePermissions.exec.rawValue)
        #expect(p.tableVerdict(path: "/bin/sh", exec: true).allow == 0)
        #expect(p.tableVerdict(path: "/usr/lib/libc.so", exec: true).allow == FilePermissions.exec.rawValue)
        #expect(p.tableVerdict(path: "/usr/lib/libc.so", exec: false).allow == read)
        // every path the tables answer for agrees with the rules read one by one
        for path in ["/etc/hosts", "/tmp/a", "/usr/lib/x.so", "/usr/lib/x.sox", "/a/1/b/2/c"] {
            #expect(p.tableVerdict(path: path, exec: false) == p.ruleVerdict(path: path, exec: false), "\(path)")
        }
        // patterns BPF's syntax cannot hold are allowed as the nearest wider one, and said
        #expect(p.notes.contains { $0.contains("model path /a/**/b/**/c is allowed as /a/**/c") })
        #expect(p.tableVerdict(path: "/a/1/b/2/c", exec: false).allow == read)
        #expect(p.tableVerdict(path: "/proc/12/status", exec: false).allow == read)
        #expect(p.tableVerdict(path: "/proc/12/mem", exec: false).allow == 0)
        #expect(p.capabilityAllow == 1 << 10 && p.capabilityDeny == 0)
        #expect(p.notes.contains { $0.contains("not_a_capability") })
        #expect(p.sockets.contains { $0.family == 2 && $0.type == 1 && $0.protocol == 6 && $0.mode == 4 })
        #expect(p.sockets.contains { $0.family == 1 && $0.type == nil && $0.protocol == nil && $0.mode == 4 })
        #expect(p.notes.contains { $0.contains("AF_NOPE") })
        let v4 = try #require(p.egress4.first { $0.network == "10.0.0.1/32" })
        #expect(v4.ranges.map { [$0.first, $0.last, UInt16($0.mode)] } == [[80, 80, 4], [443, 443, 4]])
        #expect(p.egress6.map(\.network) == ["fd00:0:0:0:0:0:0:1/128"])
        #expect(p.egress6.first?.ranges.map { [$0.first, $0.last, UInt16($0.mode)] } == [[0, 65535, 4]])
        #expect(p.ptrace.allowInner == PtracePermissions.read.rawValue)
        #expect(p.ptrace.allowAny == PtracePermissions.readBy.rawValue)
        #expect(p.mounts.contains { $0.source == "/dev/shm" && $0.fstype == "tmpfs" && $0.mode == 4 })
        // what the kernel reads
        let rows = BPFTableEncoding.rows(p, tables: 9)
        let profile = rows.profile.withUnsafeBytes { $0.loadUnaligned(as: bulwark_profile.self) }
        #expect(profile.allowlist == UInt32(BULWARK_ALLOW_ALL))
        #expect(profile.cap_allow == 1 << 10)
        #expect(profile.ptrace_allow_inner == PtracePermissions.read.rawValue)
    }

    @Test func rawRulesDenyOverTheAllowListAndObservationOnlyRecords() throws {
        let raw = """
                    bpfRawRules:
                      files:
                      - {pattern: /etc/hosts, permissions: [read], qualifiers: [deny, audit]}
                      - {pattern: /etc/extra, permissions: [read], qualifiers: [allow]}
            """
        let p = try BPFCompiler(model: Self.model()).compile(Self.fromModel(raw: raw), profileName: "varmor-ns-t")
        let read = FilePermissions.read.rawValue
        #expect(p.tableVerdict(path: "/etc/hosts", exec: false) == .init(deny: read, audit: read, allow: read))
        #expect(p.tableVerdict(path: "/etc/extra", exec: false).allow == read)
        let o = try BPFCompiler(model: Self.model()).compile(
            Self.fromModel(allowViolations: true, raw: raw), profileName: "varmor-ns-t")
        #expect(o.allowList == [.all, .observe])
        #expect(o.tableVerdict(path: "/etc/hosts", exec: false) == .init(deny: 0, audit: read, allow: read))
    }

    @Test func withoutAModelNothingIsCompiled() throws {
        let policy = Self.fromModel()
        do {
            _ = try BPFCompiler().compile(policy, profileName: "varmor-ns-t")
            Issue.record("compiled without a model")
        } catch {
            #expect(error.description.contains("varmor-ns-t") && error.description.contains("BPF"))
        }
        #expect(throws: ProfileUnavailable.self) {
            try BPFCompiler(model: Self.model(name: "other")).compile(policy, profileName: "varmor-ns-t")
        }
        var appArmorOnly = Self.model()
        appArmorOnly.bpf = nil
        appArmorOnly.appArmor = ModelProfileTests.model().appArmor
        #expect(
            ModelProfiles.unavailable(policy, profileName: "varmor-ns-t", enforcers: [.bpf], model: appArmorOnly)
                != nil)
        #expect(
            ModelProfiles.unavailable(policy, profileName: "varmor-ns-t", enforcers: [.bpf], model: Self.model())
                == nil)
    }

    @Test func aCustomAllowListIsItsAllowRules() throws {
        let p = try BPFCompiler().compile(
            policy(
                """
                    enforcer: BPF
                    mode: DefenseInDepth
                    defenseInDepth:
                      bpf:
                        profileType: Custom
                        bpfRawRules:
                          processes:
                          - {pattern: /bin/**, permissions: [exec], qualifiers: [allow]}
                          network:
                            egress:
                              toDestinations:
                              - {cidr: 10.1.0.0/16, ports: [{port: 53}], qualifiers: [allow]}
                """), profileName: "c")
        #expect(p.allowList == .all)
        #expect(p.tableVerdict(path: "/bin/ls", exec: true).allow == FilePermissions.exec.rawValue)
        #expect(p.tableVerdict(path: "/usr/bin/ls", exec: true).allow == 0)
        #expect(
            p.egress4.first { $0.network == "10.1.0.0/16" }?.ranges.map { [$0.first, UInt16($0.mode)] } == [[53, 4]])
    }
}
