import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import CBulwarkABI
import CSeccomp
import Foundation
import Testing

func policy(_ body: String, kind: String = "Pod") -> Policy {
    let text = """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorPolicy
        metadata: {name: t, namespace: ns}
        spec:
          target: {kind: \(kind), name: x}
          policy:
        \(body)
        """
    let r = PolicyParser.parse(text, file: "t.yaml")
    precondition(r.isValid, "\(r.errors)")
    return r.policies[0]
}

/// Every mode × enforcer, plus rules that stress merging; shared by the tool checks.
let representative: [(String, Policy)] = [
    ("always-allow", policy("    enforcer: AppArmorBPFSeccomp\n    mode: AlwaysAllow")),
    ("runtime-default", policy("    enforcer: AppArmorBPFSeccomp\n    mode: RuntimeDefault")),
    (
        "modeling",
        policy("    enforcer: AppArmorBPFSeccomp\n    mode: BehaviorModeling\n    modelingOptions: {duration: 10}")
    ),
    (
        "enhance-all",
        policy(
            """
            enforcer: AppArmorBPFSeccomp
            mode: EnhanceProtect
            enhanceProtect:
              auditViolations: true
              hardeningRules: [disallow-write-core-pattern, disallow-mount-procfs, disallow-debug-disk-device, disallow-mount-disk-device, disable-cap-privileged, disallow-create-user-ns, disallow-load-bpf-via-setsockopt, disallow-load-all-bpf-prog, disallow-userfaultfd-creation]
              attackProtectionRules:
              - rules: [mitigate-sa-leak, disable-shell, disable-chmod-x-bit, disable-chmod-s-bit, disable-network, block-access-to-metadata-service]
              - rules: [disable-write-etc, disable-curl]
                targets: [/bin/bash, /usr/bin/bash]
              vulMitigationRules: [cgroups-lxcfs-escape-mitigation, runc-override-mitigation, dirty-pipe-mitigation, copy-fail-mitigation]
              appArmorRawRules:
              - rules: "deny /etc/hosts r,"
              - rules: "audit /etc/hostname r,"
                targets: [/bin/bash]
              syscallRawRules:
              - {names: [chmod], action: SCMP_ACT_ERRNO, args: [{index: 1, value: 0o7000, valueTwo: 0o7000, op: SCMP_CMP_MASKED_EQ}]}
              - {names: [splice, mkdir], action: SCMP_ACT_ERRNO}
              - {names: [socket], action: SCMP_ACT_ERRNO, errnoRet: 13, args: [{index: 0, value: 38, op: SCMP_CMP_EQ}]}
              bpfRawRules:
                files:
                - {qualifiers: [audit, deny], pattern: /etc/shadow, permissions: [read, write]}
                - {qualifiers: [audit], pattern: "*.sh", permissions: [exec]}
                - {qualifiers: [deny], pattern: /proc/**/environ, permissions: [read]}
                network:
                  sockets:
                  - {qualifiers: [deny], domains: [inet, inet6], types: [raw]}
                  egress:
                    toDestinations:
                    - {qualifiers: [deny], cidr: 10.0.0.0/8, ports: [{port: 22}, {port: 8000, endPort: 9000}]}
                    - {qualifiers: [audit], ip: 10.1.2.3, ports: [{port: 8500, endPort: 9500}]}
                    - {qualifiers: [deny], ip: localhost, ports: [{port: 6443}]}
                    - {qualifiers: [audit], ip: pod-self}
                ptrace: {qualifiers: [audit], strictMode: true, permissions: [traceby]}
            """.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n"))
    ),
    (
        "observe",
        policy(
            """
                enforcer: AppArmorBPFSeccomp
                mode: EnhanceProtect
                enhanceProtect:
                  auditViolations: true
                  allowViolations: true
                  privileged: true
                  hardeningRules: [disallow-mount, disallow-umount, disable-cap-all, disallow-create-user-ns]
                  attackProtectionRules: [{rules: [disable-su-sudo, disable-chmod-x-bit]}]
                  bpfRawRules:
                    mounts:
                    - {qualifiers: [deny], sourcePattern: /dev/**, fstype: "*", flags: [B, rbind]}
            """)
    ),
    (
        "defense-in-depth",
        policy(
            """
                enforcer: AppArmorSeccomp
                mode: DefenseInDepth
                defenseInDepth:
                  allowViolations: true
                  appArmor:
                    profileType: Custom
                    customProfile: |
                      abi <abi/3.0>,
                      #include <tunables/global>
                      profile other-name flags=(attach_disconnected,mediate_deleted) {
                        #include <abstractions/base>
                        /bin/** ix,
                      }
                    appArmorRawRules:
                    - rules: "/etc/shadow r,"
                    - rules: "/etc/hostname r,"
                      targets: [/bin/grep]
                  seccomp:
                    profileType: Custom
                    customProfile: '{"defaultAction":"SCMP_ACT_LOG","syscalls":[{"names":["read","write"],"action":"SCMP_ACT_ALLOW"}]}'
                    syscallRawRules:
                    - {names: [chmod], action: SCMP_ACT_ALLOW}
            """)
    ),
]

@Suite("Compilers")
struct CompilerTests {
    // MARK: seccomp

    @Test func seccompEnhanceMergesLikeVArmor() throws {
        let p = representative.first { $0.0 == "enhance-all" }!.1
        let sc = try SeccompCompiler().compile(p)
        #expect(sc.defaultAction == "SCMP_ACT_ALLOW")
        let calls = try #require(sc.syscalls)
        // chmod: x-bit and s-bit args merged into one entry, plus the raw args merged in.
        let chmod = calls.filter { $0.names == ["chmod"] }
        #expect(chmod.count == 1)
        #expect(chmod.first?.args?.count == 6)
        // splice is unconditionally blocked by dirty-pipe-mitigation: the raw rule adds nothing.
        #expect(calls.filter { $0.names == ["splice"] }.count == 1)
        #expect(calls.contains { $0.names == ["mkdir"] && $0.args == nil })
        // different errnoRet => its own entry
        #expect(calls.contains { $0.names == ["socket"] && $0.errnoRet == 13 })
        #expect(calls.filter { $0.names == ["setsockopt"] }.count == 2)
    }

    @Test func seccompObservationAndModes() throws {
        let observe = try SeccompCompiler().compile(representative.first { $0.0 == "observe" }!.1)
        #expect(observe.syscalls?.allSatisfy { $0.action == "SCMP_ACT_LOG" } == true)
        let modeling = try SeccompCompiler().compile(representative.first { $0.0 == "modeling" }!.1)
        #expect(modeling.defaultAction == "SCMP_ACT_LOG")
        let did = try SeccompCompiler().compile(representative.first { $0.0 == "defense-in-depth" }!.1)
        #expect(did.defaultAction == "SCMP_ACT_LOG")
        #expect(did.syscalls?.last?.names == ["chmod"])
    }

    // MARK: AppArmor

    @Test func appArmorQualifiersTargetsAndRename() throws {
        let enhance = try AppArmorCompiler(diskDevices: ["vda", "nvme0n1"]).compile(
            representative.first { $0.0 == "enhance-all" }!.1, profileName: "varmor-ns-t")
        #expect(enhance.text.contains("  audit deny /proc/sys/kernel/core_pattern w,\n"))
        #expect(enhance.text.contains("  audit deny /dev/nvme0n1 rw,\n"))
        #expect(enhance.text.contains("  audit deny /**/sh rx,\n"))
        #expect(enhance.text.contains("  /bin/bash cx -> child_0,\n"))
        #expect(enhance.text.contains("    audit deny /etc/** wl,\n"))
        #expect(!enhance.complain)
        let observe = try AppArmorCompiler().compile(
            representative.first { $0.0 == "observe" }!.1, profileName: "varmor-ns-t")
        #expect(observe.text.contains("  audit /**/su rix,\n"))
        #expect(observe.text.contains("  pivot_root,\n"))  // privileged: AlwaysAllow base
        let did = try AppArmorCompiler().compile(
            representative.first { $0.0 == "defense-in-depth" }!.1, profileName: "varmor-ns-t")
        #expect(did.complain)
        #expect(did.text.contains("profile varmor-ns-t flags="))
        #expect(did.notes.first?.contains("other-name") == true)
        #expect(did.text.contains("  /etc/shadow r,\n"))
    }

    // MARK: BPF

    @Test func bpfTablesAgreeWithTheRulesOnEveryProbe() throws {
        let rules = """
            enforcer: BPF
            mode: EnhanceProtect
            enhanceProtect:
              auditViolations: true
              hardeningRules: [disallow-write-core-pattern, disallow-write-release-agent]
              attackProtectionRules: [{rules: [mitigate-sa-leak, mitigate-overlayfs-leak, disable-write-etc, disable-access-passwd, disable-access-ssh-dir, disable-shell, block-access-to-container-runtime]}]
              vulMitigationRules: [cgroups-lxcfs-escape-mitigation, runc-override-mitigation]
              bpfRawRules:
                files:
                - {qualifiers: [deny], pattern: /etc/passwd, permissions: [append]}
                - {qualifiers: [deny], pattern: /opt/app.conf, permissions: [read]}
                - {qualifiers: [audit], pattern: /etc/**, permissions: [read]}
                - {qualifiers: [deny], pattern: /etc/ssl/**, permissions: [read]}
                - {qualifiers: [audit], pattern: "*.key", permissions: [read]}
                - {qualifiers: [deny], pattern: "id_*", permissions: [read]}
                - {qualifiers: [deny], pattern: "secret*", permissions: [all]}
                - {qualifiers: [audit, deny], pattern: /var/**/secrets, permissions: [write]}
                - {qualifiers: [audit], pattern: "**", permissions: [exec]}
                processes:
                - {qualifiers: [deny], pattern: /usr/bin/**, permissions: [exec]}
                - {qualifiers: [deny], pattern: "**ping", permissions: [exec]}
            """.split(separator: "\n").map { "    " + $0 }.joined(separator: "\n")
        let p = try BPFCompiler().compile(policy(rules), profileName: "varmor-ns-t")
        var probes = [
            "/", "/etc", "/etc/", "/etc/passwd", "/etc/passwd-", "/etc/passwd/x", "/etc/ssl/a.key", "/etc/ssl",
            "/etc/shadow",
            "/proc/1/mounts", "/proc/mounts", "/proc/self/task/1/mountinfo", "/proc/sys/kernel/core_pattern",
            "/run/secrets/kubernetes.io/serviceaccount/token", "/sys/fs/cgroup/x/release_agent", "/release_agent",
            "/root/.ssh/id_rsa", "/home/a/.ssh", "/.ssh", "/bin/sh", "/usr/bin/bash", "/usr/bin/ping", "/bin/ping6",
            "/var/run/containerd.sock", "/var/a/b/secrets", "/var/secrets", "/secrets", "/home/u/secret.txt", "/key",
            "/x/y.key",
            "/a/id_ed25519", "/opt/app.conf", "/opt/app.conf.bak", "/opt/app.con", "/runc", "/usr/bin/runc",
            "/devices/tasks", "/sys/fs/cgroup/devices/tasks",
        ]
        var rng = SystemRandomNumberGenerator()
        let pieces = [
            "etc", "ssl", "passwd", ".ssh", "proc", "1", "mounts", "secrets", "runc", "bin", "sh", "x.key", "id_a",
            "var", "ping", "secret",
        ]
        for _ in 0..<2000 {
            probes.append(
                "/"
                    + (0..<Int.random(in: 1...5, using: &rng)).map { _ in pieces.randomElement(using: &rng)! }.joined(
                        separator: "/"))
        }
        for path in probes {
            for exec in [false, true] {
                #expect(
                    p.tableVerdict(path: path, exec: exec) == p.ruleVerdict(path: path, exec: exec),
                    "\(path) exec=\(exec)")
            }
        }
        // Exact is exact (vArmor's prefix bug fixed).
        #expect(p.tableVerdict(path: "/opt/app.conf", exec: false).deny == FilePermissions.read.rawValue)
        #expect(p.tableVerdict(path: "/opt/app.conf-", exec: false).isEmpty)
        #expect(p.tableVerdict(path: "/opt/app.conf/x", exec: false).isEmpty)
    }

    /// Issue 12 (8): egress entries are built from the nearest ancestor (near-linear), not by
    /// testing every rule against every network (quadratic: 11,000 CIDRs took over 30 s). The
    /// result must equal the definition — each entry carries every rule whose network contains
    /// it — checked port by port on random rule sets.
    @Test func egressEntriesEqualTheQuadraticDefinition() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            var lines: [String] = []
            var rules: [(IPNetwork, ClosedRange<Int>, UInt8)] = []
            for _ in 0..<60 {
                let len = [8, 12, 16, 20, 24, 32].randomElement(using: &rng)!
                let net = IPNetwork(
                    family: .ipv4,
                    bytes: [10, UInt8.random(in: 0...3, using: &rng), UInt8.random(in: 0...3, using: &rng), 1],
                    prefixLength: len)
                let lo = Int.random(in: 1...90, using: &rng)
                let hi = lo + Int.random(in: 0...40, using: &rng)
                let q = Bool.random(using: &rng) ? "deny" : "audit"
                lines.append("        - {qualifiers: [\(q)], cidr: \(net), ports: [{port: \(lo), endPort: \(hi)}]}")
                rules.append((net, lo...hi, q == "deny" ? 1 : 2))
            }
            let policy = PolicyParser.inline(
                """
                    enforcer: BPF
                    mode: EnhanceProtect
                    enhanceProtect:
                      bpfRawRules:
                        network:
                          egress:
                            toDestinations:
                """ + "\n" + lines.map { "    " + $0 }.joined(separator: "\n"), name: "r")
            #expect(policy.isValid, "\(policy.errors)")
            let p = try BPFCompiler().compile(policy.policies[0], profileName: "varmor-r")
            #expect(p.egress4.count == Set(rules.map(\.0)).count)
            for e in p.egress4 {
                let n = try #require(IPNetwork.cidr(e.network))
                var expected = [UInt8](repeating: 0, count: 140)
                for r in rules where r.0.contains(n) { for port in r.1 { expected[port] |= r.2 } }
                var actual = [UInt8](repeating: 0, count: 140)
                for r in e.ranges { for port in Int(r.first)...Int(r.last) where port < 140 { actual[port] |= r.mode } }
                #expect(actual == expected, "\(e.network)")
            }
        }
    }

    /// Issue 12: the vArmor 0.8 release notes' own example (raw rules without `qualifiers`)
    /// validates with 0.8's meaning — the policy denies by default — and compiles its IPv6 host,
    /// CIDR with a port range and pod-self rules; `migrate` writes `qualifiers: [deny]`.
    @Test func theVArmor08ReleaseExampleValidatesAndCompiles() throws {
        let text = """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: v08, namespace: demo}
            spec:
              target: {kind: Deployment, selector: {matchLabels: {app: demo}}}
              policy:
                enforcer: BPF
                mode: EnhanceProtect
                enhanceProtect:
                  bpfRawRules:
                    network:
                      egress:
                        toDestinations:
                        - ip: fdbd:dc01:ff:307:9329:268d:3a27:2ca7
                        - cidr: 192.168.1.1/24
                          ports:
                          - port: 80
                            endPort: 8080
                        - ip: pod-self
                          ports:
                          - port: 80
                        toPods:
                        - namespace: demo
                          podSelector:
                            matchLabels:
                              app: demo-3
                          ports:
                          - port: 8070
                          - port: 8080
                        toServices:
                        - namespace: nginx
                          serviceSelector:
                            matchLabels:
                              app: nginx

            """
        let r = PolicyParser.parse(text, file: "v08.yaml")
        #expect(r.isValid, "\(r.errors)")
        #expect(r.diagnostics.filter { $0.message.contains("vArmor 0.8 form") }.count == 5)
        #expect(r.migrations.count == 5)
        let p = try BPFCompiler().compile(try #require(r.policies.first), profileName: "varmor-demo-v08")
        let cidr = try #require(p.egress4.first { $0.network == "192.168.1.0/24" })
        #expect(cidr.ranges.map { "\($0.first)-\($0.last):\($0.mode)" } == ["80-8080:1"])
        #expect(p.egress6.contains { $0.network.hasSuffix("/128") && $0.ranges.map(\.mode) == [1] })
        #expect(p.podSelfRanges.map { "\($0.first)-\($0.last):\($0.mode)" } == ["80-80:1"])
        let migrated = TextInsertion.apply(r.migrations, to: text)
        #expect(migrated.contains("- qualifiers: [deny]\n              cidr: 192.168.1.1/24"), "\(migrated)")
        let again = PolicyParser.parse(migrated, file: "v08.yaml")
        #expect(again.isValid && again.migrations.isEmpty)
        #expect(try BPFCompiler().compile(try #require(again.policies.first), profileName: "varmor-demo-v08") == p)
        // positions count as libyaml counts them: CR LF line breaks, a byte order mark
        for variant in [
            text.replacingOccurrences(of: "\n", with: "\r\n"),
            "\u{FEFF}" + text,
        ] {
            let v = PolicyParser.parse(variant, file: "v08.yaml")
            #expect(!v.migrations.isEmpty)
            let again = PolicyParser.parse(TextInsertion.apply(v.migrations, to: variant), file: "v08.yaml")
            #expect(again.migrations.isEmpty && again.policies.count == 1, "\(again.errors)")
        }
        // auditViolations in 0.8 made every raw rule audited too
        let audited = PolicyParser.parse(
            text.replacingOccurrences(
                of: "      bpfRawRules:", with: "      auditViolations: true\n      bpfRawRules:"),
            file: "v08.yaml")
        let pa = try BPFCompiler().compile(try #require(audited.policies.first), profileName: "x")
        #expect(pa.egress4.first { $0.network == "192.168.1.0/24" }?.ranges.map(\.mode) == [3])
    }

    @Test func bpfEgressSocketsCapabilitiesPtrace() throws {
        let p = try BPFCompiler().compile(representative.first { $0.0 == "enhance-all" }!.1, profileName: "varmor-ns-t")
        let ten = try #require(p.egress4.first { $0.network == "10.0.0.0/8" })
        #expect(ten.ranges.map { "\($0.first)-\($0.last):\($0.mode)" } == ["22-22:1", "8000-9000:1"])
        let host = try #require(p.egress4.first { $0.network == "10.1.2.3/32" })
        // The /32 entry carries the covering /8 rules too (one longest-prefix lookup).
        #expect(
            host.ranges.map { "\($0.first)-\($0.last):\($0.mode)" } == [
                "22-22:1", "8000-8499:1", "8500-9000:3", "9001-9500:2",
            ])
        #expect(p.egress6.contains { $0.network.hasPrefix("0:0:0:0:0:0:0:1/128") })
        #expect(p.podSelfRanges.map { "\($0.first)-\($0.last):\($0.mode)" } == ["0-65535:2"])
        #expect(p.egress4.contains { $0.network == "169.254.169.254/32" })
        // disable-network: every family, plus raw sockets of inet/inet6.
        #expect(p.sockets.contains { $0.family == 1 && $0.type == nil && $0.protocol == nil })
        #expect(p.sockets.contains { $0.family == 2 && $0.type == 3 })
        #expect(p.capabilityDeny & (1 << 21) != 0)  // sys_admin via disable-cap-privileged
        #expect(p.capabilityDeny & 1 == 0)  // chown stays
        // Raw rule: audit traceby in strict mode; base rules (auditViolations): audit all, across namespaces.
        #expect(p.ptrace.auditStrict == PtracePermissions.traceBy.rawValue)
        #expect(p.ptrace.auditCross == PtracePermissions.all.rawValue)
        #expect(p.ptrace.denyStrict == 0)
        #expect(p.ptrace.denyCross == PtracePermissions.all.rawValue)
        // base mount rule, and disk-device mount rules only when privileged
        #expect(p.mounts.count == 2)  // base "deny all mounts" + /proc** bind-like
    }

    @Test func bpfPrivilegedMountsAndModes() throws {
        let p = try BPFCompiler().compile(representative.first { $0.0 == "observe" }!.1, profileName: "x")
        #expect(p.mounts.contains { $0.source == "/dev/**" && $0.flags == LinuxNames.msBind | LinuxNames.msRec })
        #expect(p.mounts.allSatisfy { $0.source == "/dev/**" || $0.mode == Qualifiers.audit.rawValue })
        #expect(p.capabilityDeny == 0 && p.capabilityAudit == (1 << 41) - 1)
        #expect(
            try BPFCompiler().compile(representative.first { $0.0 == "modeling" }!.1, profileName: "x").mode
                == .complain)
    }

    // MARK: ABI

    @Test func abiLayoutMatchesTheHeader() {
        #expect(MemoryLayout<bulwark_verdict>.size == 16)
        #expect(MemoryLayout<bulwark_verdict>.offset(of: \bulwark_verdict.allow) == 8)
        #expect(MemoryLayout<bulwark_profile>.size == 80)
        #expect(MemoryLayout<bulwark_profile>.offset(of: \bulwark_profile.allowlist) == 56)
        #expect(MemoryLayout<bulwark_profile>.offset(of: \bulwark_profile.cap_allow) == 72)
        #expect(MemoryLayout<bulwark_profile>.offset(of: \bulwark_profile.cap_deny) == 8)
        #expect(MemoryLayout<bulwark_profile>.offset(of: \bulwark_profile.ptrace_deny_strict) == 24)
        #expect(MemoryLayout<bulwark_profile>.offset(of: \bulwark_profile.mount_rules) == 48)
        #expect(MemoryLayout<bulwark_path_key>.size == 256)
        #expect(MemoryLayout<bulwark_path_key>.offset(of: \bulwark_path_key.profile) == 4)
        #expect(MemoryLayout<bulwark_path_key>.offset(of: \bulwark_path_key.kind) == 8)
        #expect(MemoryLayout<bulwark_path_key>.offset(of: \bulwark_path_key.path) == 9)
        #expect(MemoryLayout<bulwark_path_value>.size == 144)
        #expect(MemoryLayout<bulwark_path_value>.offset(of: \bulwark_path_value.compound) == 16)
        #expect(MemoryLayout<bulwark_compound_key>.size == 8)
        #expect(MemoryLayout<bulwark_socket_key>.size == 12)
        #expect(MemoryLayout<bulwark_egress4_key>.size == 12)
        #expect(MemoryLayout<bulwark_egress6_key>.size == 24)
        #expect(MemoryLayout<bulwark_port_range>.size == 8)
        #expect(MemoryLayout<bulwark_mount_rule>.size == 160)
        #expect(MemoryLayout<bulwark_mount_rule>.offset(of: \bulwark_mount_rule.fstype) == 16)
        #expect(MemoryLayout<bulwark_mount_rule>.offset(of: \bulwark_mount_rule.suffix) == 96)
    }

    @Test func pathKeyEncoding() throws {
        let entry = BPFProfile.PathEntry(
            kind: .file, key: "/etc/passwd", exact: true, verdict: .init(deny: 4, audit: 0, allow: 2),
            compound: [1, 70])
        let key = try #require(BPFTableEncoding.pathKey(profile: 7, entry: entry, reversed: false))
        let bytes = BPFTableEncoding.bytes(of: key)
        #expect(Array(bytes[0..<4]) == [UInt8(32 + 8 + 8 * 12), 0, 0, 0])
        #expect(Array(bytes[4..<8]) == [0, 0, 0, 7])  // big-endian profile id
        #expect(bytes[8] == 1)
        #expect(Array(bytes[9..<21]) == Array("/etc/passwd".utf8) + [0])
        let value = BPFTableEncoding.bytes(of: BPFTableEncoding.pathValue(entry))
        #expect(value[0] == 4 && value[8] == 2)  // deny, audit, allow, pad
        #expect(value[16] == 0b10 && value[24] == 0b0100_0000)
        let reversed = try #require(
            BPFTableEncoding.pathKey(
                profile: 7, entry: .init(kind: .file, key: "/sh", exact: false, verdict: .init(), compound: []),
                reversed: true))
        #expect(Array(BPFTableEncoding.bytes(of: reversed)[9..<12]) == Array("hs/".utf8))
    }
}
