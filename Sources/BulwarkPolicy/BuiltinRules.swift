import BulwarkOCI
import Foundation

/// vArmor's built-in rules (reference/varmor.md §2.1–§2.7) with their expansion per enforcer,
/// as data. The compilers read it; tests enumerate it. Names are matched case-insensitively
/// with `_` = `-`; a name outside its list's category is an error (vArmor ignores it silently).
public struct BuiltinRule: Sendable {
    public enum Category: String, Sendable, CaseIterable {
        case hardening = "hardeningRules"
        case attackProtection = "attackProtectionRules"
        case vulMitigation = "vulMitigationRules"
    }

    /// One AppArmor line; the policy qualifier (`audit `, `deny `) is put in front.
    public enum AppArmorLine: Sendable, Equatable {
        case rule(String)
        /// `<path> rx,` (`rix` when violations are allowed: AppArmor needs an exec mode then).
        case exec(String)
        /// One line per disk device; `{dev}` is replaced by the device path (`/dev/sda`).
        case perDiskDevice(String)
    }

    /// One BPF rule.
    public enum BPFRule: Sendable, Equatable {
        case file(String, FilePermissions)
        case process(String)
        /// Emitted only with `privileged: true` when `privilegedOnly` (as vArmor).
        case mount(source: String, fstype: String, flags: UInt32, reverse: UInt32, privilegedOnly: Bool)
        case diskDeviceFiles(FilePermissions)
        case diskDeviceMounts(flags: UInt32, reverse: UInt32, privilegedOnly: Bool)
        case capabilities([Int])
        /// Ptrace across mount namespaces (vArmor's PreciseMatch).
        case ptraceCrossNamespace(PtracePermissions)
        case socket(domains: [Int], types: [Int], protocols: [Int])
        case egress(addresses: [String])
        /// A Kubernetes Service, resolved to IPs by the inventory.
        case service(namespace: String, name: String)
    }

    public var id: String
    public var aliases: [String]
    public var category: Category
    public var appArmor: [AppArmorLine]
    public var bpf: [BPFRule]
    public var seccomp: [LinuxSyscall]

    /// Enforcers for which the rule does something.
    public var effective: EnforcerSet {
        var set: EnforcerSet = []
        if !appArmor.isEmpty { set.insert(.appArmor) }
        if !bpf.isEmpty { set.insert(.bpf) }
        if !seccomp.isEmpty { set.insert(.seccomp) }
        return set
    }
}

extension BuiltinRule {
    /// `hardeningRules` etc. spelling → canonical id.
    public static func canonical(_ name: String) -> String {
        name.lowercased().replacingOccurrences(of: "_", with: "-")
    }

    /// Looks a rule up by any spelling or alias.
    public static func lookup(_ name: String) -> BuiltinRule? { index[canonical(name)] }

    private static let index: [String: BuiltinRule] = {
        var out: [String: BuiltinRule] = [:]
        for r in catalogue {
            out[r.id] = r
            for a in r.aliases { out[a] = r }
        }
        return out
    }()

    static let mountAllButCommands: UInt32 = LinuxNames.mountAll & ~LinuxNames.mountCommandFlags
    static let mountAllButUmount: UInt32 = LinuxNames.mountAll & ~LinuxNames.umount
    static let bindLike: UInt32 =
        LinuxNames.msBind | LinuxNames.msRec | LinuxNames.msRemount | LinuxNames.msMove | LinuxNames.umount

    private static func caps(_ names: [String]) -> [Int] { names.compactMap(LinuxNames.capability) }

    /// containerd's default capability set; `disable-cap-privileged` denies all the others.
    public static let defaultContainerCapabilities = [
        "chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap", "net_bind_service",
        "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap",
    ]

    private static func chmodArgs(_ bits: [UInt64]) -> [LinuxSyscall] {
        // chmod/fchmod take the mode in arg1, fchmodat/fchmodat2 in arg2.
        [
            LinuxSyscall(
                names: ["chmod"], action: "SCMP_ACT_ERRNO",
                args: bits.map { LinuxSeccompArg(index: 1, value: $0, valueTwo: $0, op: "SCMP_CMP_MASKED_EQ") }),
            LinuxSyscall(
                names: ["fchmod"], action: "SCMP_ACT_ERRNO",
                args: bits.map { LinuxSeccompArg(index: 1, value: $0, valueTwo: $0, op: "SCMP_CMP_MASKED_EQ") }),
            LinuxSyscall(
                names: ["fchmodat"], action: "SCMP_ACT_ERRNO",
                args: bits.map { LinuxSeccompArg(index: 2, value: $0, valueTwo: $0, op: "SCMP_CMP_MASKED_EQ") }),
            LinuxSyscall(
                names: ["fchmodat2"], action: "SCMP_ACT_ERRNO",
                args: bits.map { LinuxSeccompArg(index: 2, value: $0, valueTwo: $0, op: "SCMP_CMP_MASKED_EQ") }),
        ]
    }

    private static func rule(
        _ id: String, _ category: Category, aliases: [String] = [], apparmor: [AppArmorLine] = [],
        bpf: [BPFRule] = [], seccomp: [LinuxSyscall] = []
    ) -> BuiltinRule {
        BuiltinRule(id: id, aliases: aliases, category: category, appArmor: apparmor, bpf: bpf, seccomp: seccomp)
    }

    /// Every built-in rule, in vArmor's documentation order.
    public static let catalogue: [BuiltinRule] = {
        let rw: FilePermissions = [.read, .write, .append]
        let w: FilePermissions = [.write, .append]
        var rules: [BuiltinRule] = [
            // §2.1 Hardening: privileged containers / escape vectors
            rule(
                "disallow-write-core-pattern", .hardening, apparmor: [.rule("/proc/sys/kernel/core_pattern w,")],
                bpf: [.file("/proc/sys/kernel/core_pattern", w)]),
            rule(
                "disallow-mount-securityfs", .hardening, apparmor: [.rule("mount fstype=securityfs,")],
                bpf: [
                    .mount(
                        source: "**", fstype: "securityfs", flags: mountAllButCommands, reverse: LinuxNames.mountAll,
                        privilegedOnly: true)
                ]),
            rule(
                "disallow-mount-procfs", .hardening,
                apparmor: [
                    .rule("mount fstype=proc,"), .rule("mount options in (bind,rbind,move) /proc** -> /**,"),
                    .rule("mount options in (remount,bind,rbind) -> /proc**,"),
                ],
                bpf: [
                    .mount(
                        source: "**", fstype: "proc", flags: mountAllButCommands, reverse: LinuxNames.mountAll,
                        privilegedOnly: true),
                    .mount(source: "/proc**", fstype: "none", flags: bindLike, reverse: 0, privilegedOnly: false),
                ]),
            rule(
                "disallow-write-release-agent", .hardening, apparmor: [.rule("/sys/fs/cgroup/**/release_agent w,")],
                bpf: [.file("/sys/fs/cgroup/**/release_agent", w)]),
            rule(
                "disallow-mount-cgroupfs", .hardening,
                apparmor: [
                    .rule("mount fstype=cgroup,"), .rule("mount options in (bind,rbind,move) /sys/fs/cgroup** -> /**,"),
                    .rule("mount options in (rbind) /sys** -> /**,"),
                    .rule("mount options in (remount,bind,rbind) -> /sys/fs/cgroup**,"),
                ],
                bpf: [
                    .mount(
                        source: "**", fstype: "cgroup", flags: mountAllButCommands, reverse: LinuxNames.mountAll,
                        privilegedOnly: true),
                    .mount(source: "/sys**", fstype: "none", flags: bindLike, reverse: 0, privilegedOnly: false),
                ]),
            rule(
                "disallow-debug-disk-device", .hardening, apparmor: [.perDiskDevice("{dev} rw,")],
                bpf: [.diskDeviceFiles(rw)]),
            rule(
                "disallow-mount-disk-device", .hardening, apparmor: [.perDiskDevice("mount {dev},")],
                bpf: [.diskDeviceMounts(flags: mountAllButUmount, reverse: LinuxNames.mountAll, privilegedOnly: true)]),
            rule(
                "disallow-mount", .hardening, apparmor: [.rule("mount,")],
                bpf: [
                    .mount(
                        source: "**", fstype: "*", flags: mountAllButUmount, reverse: LinuxNames.mountAll,
                        privilegedOnly: true)
                ]),
            rule(
                "disallow-umount", .hardening, apparmor: [.rule("umount,")],
                bpf: [.mount(source: "**", fstype: "none", flags: LinuxNames.umount, reverse: 0, privilegedOnly: false)]
            ),
            rule(
                "disallow-insmod", .hardening, apparmor: [.rule("capability sys_module,")],
                bpf: [.capabilities(caps(["sys_module"]))]),
            rule(
                "disallow-load-bpf-prog", .hardening, aliases: ["disallow-load-ebpf"],
                apparmor: [.rule("capability sys_admin,"), .rule("capability bpf,")],
                bpf: [.capabilities(caps(["sys_admin", "bpf"]))]),
            rule(
                "disallow-access-procfs-root", .hardening, apparmor: [.rule("ptrace read,")],
                bpf: [.ptraceCrossNamespace([.read, .readBy])]),
            rule(
                "disallow-access-kallsyms", .hardening, apparmor: [.rule("/proc/kallsyms r,")],
                bpf: [.file("/proc/kallsyms", .read)]),
            // §2.2 Hardening: capabilities
            rule("disable-cap-all", .hardening, apparmor: [.rule("capability,")], bpf: [.capabilities(Array(0...40))]),
            rule(
                "disable-cap-all-except-net-bind-service", .hardening,
                apparmor: LinuxNames.capabilities.filter { $0 != "net_bind_service" }.map {
                    .rule("capability \($0),")
                },
                bpf: [.capabilities(Array(0...40).filter { $0 != 10 })]),
            rule(
                "disable-cap-privileged", .hardening,
                apparmor: LinuxNames.capabilities.filter { !defaultContainerCapabilities.contains($0) }.map {
                    .rule("capability \($0),")
                },
                bpf: [
                    .capabilities(caps(LinuxNames.capabilities.filter { !defaultContainerCapabilities.contains($0) }))
                ]),
        ]
        for (n, cap) in LinuxNames.capabilities.enumerated() {
            rules.append(
                rule(
                    "disable-cap-" + cap.replacingOccurrences(of: "_", with: "-"), .hardening,
                    apparmor: [.rule("capability \(cap),")], bpf: [.capabilities([n])]))
        }
        rules += [
            // §2.3 Hardening: exploit vectors
            rule(
                "disallow-abuse-user-ns", .hardening, apparmor: [.rule("capability sys_admin,")],
                bpf: [.capabilities(caps(["sys_admin"]))]),
            rule(
                "disallow-create-user-ns", .hardening,
                seccomp: [
                    LinuxSyscall(
                        names: ["unshare"], action: "SCMP_ACT_ERRNO",
                        args: [
                            LinuxSeccompArg(
                                index: 0, value: 0x1000_0000, valueTwo: 0x1000_0000, op: "SCMP_CMP_MASKED_EQ")
                        ])
                ]),
            rule(
                "disallow-load-all-bpf-prog", .hardening,
                seccomp: [
                    LinuxSyscall(
                        names: ["bpf"], action: "SCMP_ACT_ERRNO",
                        args: [LinuxSeccompArg(index: 0, value: 5, op: "SCMP_CMP_EQ")])
                ]),
            rule(
                "disallow-load-bpf-via-setsockopt", .hardening,
                seccomp: [
                    LinuxSyscall(
                        names: ["setsockopt"], action: "SCMP_ACT_ERRNO",
                        args: [
                            LinuxSeccompArg(index: 1, value: 1, op: "SCMP_CMP_EQ"),
                            LinuxSeccompArg(index: 2, value: 26, op: "SCMP_CMP_EQ"),
                        ]),
                    LinuxSyscall(
                        names: ["setsockopt"], action: "SCMP_ACT_ERRNO",
                        args: [
                            LinuxSeccompArg(index: 1, value: 1, op: "SCMP_CMP_EQ"),
                            LinuxSeccompArg(index: 2, value: 51, op: "SCMP_CMP_EQ"),
                        ]),
                ]),
            rule(
                "disallow-userfaultfd-creation", .hardening,
                seccomp: [LinuxSyscall(names: ["userfaultfd"], action: "SCMP_ACT_ERRNO")]),
            // §2.4 Attack protection: information leakage
            rule(
                "mitigate-sa-leak", .attackProtection,
                apparmor: [
                    .rule("/run/secrets/kubernetes.io/serviceaccount/** r,"),
                    .rule("/var/run/secrets/kubernetes.io/serviceaccount/** r,"),
                ],
                bpf: [
                    .file("/run/secrets/kubernetes.io/serviceaccount/**", .read),
                    .file("/var/run/secrets/kubernetes.io/serviceaccount/**", .read),
                ]),
            rule(
                "mitigate-disk-device-number-leak", .attackProtection,
                apparmor: [.rule("/proc/partitions r,"), .rule("/proc/**/mountinfo r,")],
                bpf: [.file("/proc/partitions", .read), .file("/proc/**/mountinfo", .read)]),
            rule(
                "mitigate-overlayfs-leak", .attackProtection,
                apparmor: [.rule("/proc/**/mounts r,"), .rule("/proc/**/mountinfo r,")],
                bpf: [.file("/proc/**/mounts", .read), .file("/proc/**/mountinfo", .read)]),
            rule(
                "mitigate-host-ip-leak", .attackProtection, apparmor: [.rule("/proc/**/net/arp r,")],
                bpf: [.file("/proc/**/net/arp", .read)]),
            rule(
                "block-access-to-metadata-service", .attackProtection, aliases: ["disallow-metadata-service"],
                bpf: [.egress(addresses: ["169.254.169.254", "fd00:ec2::254", "100.96.0.96"])]),
            rule(
                "block-access-to-aws-metadata-service", .attackProtection,
                bpf: [.egress(addresses: ["169.254.169.254", "fd00:ec2::254"])]),
            rule(
                "block-access-to-volc-metadata-service", .attackProtection, bpf: [.egress(addresses: ["100.96.0.96"])]),
            rule(
                "block-access-to-alibaba-metadata-service", .attackProtection,
                bpf: [.egress(addresses: ["100.100.100.200"])]),
            rule("block-access-to-oci-metadata-service", .attackProtection, bpf: [.egress(addresses: ["192.0.0.192"])]),
            // §2.5 Attack protection: sensitive operations
            rule("disable-write-etc", .attackProtection, apparmor: [.rule("/etc/** wl,")], bpf: [.file("/etc/**", w)]),
            rule(
                "disable-access-passwd", .attackProtection, apparmor: [.rule("/etc/passwd rw,")],
                bpf: [.file("/etc/passwd", rw)]),
            rule(
                "disable-access-shadow", .attackProtection, apparmor: [.rule("/etc/shadow rw,")],
                bpf: [.file("/etc/shadow", rw)]),
            rule(
                "disable-access-ssh-dir", .attackProtection, apparmor: [.rule("/**/.ssh/** rw,")],
                bpf: [.file("/**/.ssh", rw), .file("/root/.ssh/**", rw)]),
            rule("disable-write-skills", .attackProtection, apparmor: [.rule("/**/skills/** w,")]),
            rule(
                "disable-busybox", .attackProtection, apparmor: [.exec("/**/busybox")], bpf: [.process("/**/busybox")]),
            rule(
                "disable-shell", .attackProtection, apparmor: [.exec("/**/sh"), .exec("/**/bash"), .exec("/**/dash")],
                bpf: [.process("/**/sh"), .process("/**/bash"), .process("/**/dash")]),
            rule("disable-wget", .attackProtection, apparmor: [.exec("/**/wget")], bpf: [.process("/**/wget")]),
            rule("disable-curl", .attackProtection, apparmor: [.exec("/**/curl")], bpf: [.process("/**/curl")]),
            rule("disable-chmod", .attackProtection, apparmor: [.exec("/**/chmod")], bpf: [.process("/**/chmod")]),
            rule(
                "disable-su-sudo", .attackProtection, apparmor: [.exec("/**/su"), .exec("/**/sudo")],
                bpf: [.process("/**/su"), .process("/**/sudo")]),
            rule("disable-chmod-x-bit", .attackProtection, seccomp: chmodArgs([0o100, 0o010, 0o001])),
            rule("disable-chmod-s-bit", .attackProtection, seccomp: chmodArgs([0o4000, 0o2000])),
            // §2.6 Attack protection: others
            rule(
                "disable-network", .attackProtection, apparmor: [.rule("network,")],
                bpf: [.socket(domains: Array(0..<LinuxNames.addressFamilyMax), types: [], protocols: [])]),
            rule(
                "disable-inet", .attackProtection, aliases: ["disable-ipv4"], apparmor: [.rule("network inet,")],
                bpf: [.socket(domains: [2], types: [], protocols: [])]),
            rule(
                "disable-inet6", .attackProtection, aliases: ["disable-ipv6"], apparmor: [.rule("network inet6,")],
                bpf: [.socket(domains: [10], types: [], protocols: [])]),
            rule(
                "disable-unix-domain-socket", .attackProtection, apparmor: [.rule("network unix,")],
                bpf: [.socket(domains: [1], types: [], protocols: [])]),
            rule(
                "disable-icmp", .attackProtection, apparmor: [.rule("network icmp,")],
                bpf: [.socket(domains: [], types: [], protocols: [1, 58])]),
            rule(
                "disable-tcp", .attackProtection, apparmor: [.rule("network tcp,")],
                bpf: [.socket(domains: [], types: [], protocols: [6])]),
            rule(
                "disable-udp", .attackProtection, apparmor: [.rule("network udp,")],
                bpf: [.socket(domains: [], types: [], protocols: [17])]),
            rule(
                "block-access-to-kube-apiserver", .attackProtection,
                bpf: [.service(namespace: "default", name: "kubernetes")]),
            rule(
                "block-access-to-container-runtime", .attackProtection,
                apparmor: [.rule("/**/containerd.sock rw,"), .rule("/**/docker.sock rw,"), .rule("/**/crio.sock rw,")],
                bpf: [.file("/**/containerd.sock", rw), .file("/**/docker.sock", rw), .file("/**/crio.sock", rw)]),
            // §2.7 Vulnerability mitigation
            rule(
                "cgroups-lxcfs-escape-mitigation", .vulMitigation,
                apparmor: [
                    .rule("/**/release_agent w,"), .rule("/**/devices/devices.allow w,"),
                    .rule("/**/devices/**/devices.allow w,"), .rule("/**/devices/cgroup.procs w,"),
                    .rule("/**/devices/**/cgroup.procs w,"), .rule("/**/devices/tasks w,"),
                    .rule("/**/devices/**/tasks w,"),
                ],
                bpf: [
                    .file("/**/release_agent", w), .file("/**/devices.allow", w), .file("/**/cgroup.procs", w),
                    .file("/**/devices/tasks", w),
                ]),
            rule(
                "runc-override-mitigation", .vulMitigation, apparmor: [.rule("/**/runc w,")],
                bpf: [.file("/**/runc", w)]),
            rule(
                "dirty-pipe-mitigation", .vulMitigation,
                seccomp: [LinuxSyscall(names: ["splice"], action: "SCMP_ACT_ERRNO")]),
            rule(
                "ingress-nightmare-mitigation", .vulMitigation,
                bpf: [
                    .service(namespace: "ingress-nginx", name: "ingress-nginx-controller-admission"),
                    .service(namespace: "kube-system", name: "ingress-nginx-controller-admission"),
                ]),
            rule(
                "copy-fail-mitigation", .vulMitigation, apparmor: [.rule("network alg,")],
                bpf: [.socket(domains: [38], types: [], protocols: [])]),
        ]
        return rules
    }()
}
