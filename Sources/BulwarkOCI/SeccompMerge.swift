/// Merges a compiled seccomp profile into the one a spec already has (podman's default, a
/// containerd/CRI-O default), so that the container gets both restrictions.
///
/// libseccomp ignores a rule for a syscall that an unconditional allow entry already names, so a
/// denial is only effective once the name is removed from every allow entry first. Cases:
/// - existing default allows: the compiled rules are appended (and removed from allow entries);
/// - existing allow-list (default denies): an unconditional denial removes the name from the allow
///   entries (the default then refuses it: the compiled action is appended too); a conditional
///   denial whose conditions are single-bit `MASKED_EQ` tests on one argument becomes "allow only
///   when none of those bits are set"; other conditional shapes cannot be expressed against an
///   allow-list and are reported (`notes`), not silently dropped.
public enum SeccompMerge {
    public struct Result: Sendable, Equatable {
        public var profile: LinuxSeccomp
        public var notes: [String]
    }

    static func allows(_ action: String) -> Bool { action == "SCMP_ACT_ALLOW" }

    public static func merge(existing: LinuxSeccomp?, compiled: LinuxSeccomp) -> Result {
        guard var out = existing else { return Result(profile: compiled, notes: []) }
        var notes: [String] = []
        if !allows(compiled.defaultAction) {
            // A complete allow-list of its own: it replaces the runtime's (vArmor's semantics).
            return Result(profile: compiled, notes: ["the policy's seccomp profile replaces the runtime's default"])
        }
        let rules = (compiled.syscalls ?? []).filter { !allows($0.action) }
        var syscalls = out.syscalls ?? []
        let defaultDenies = !allows(out.defaultAction)
        for rule in rules {
            for name in rule.names {
                let allowed = syscalls.contains { allows($0.action) && $0.names.contains(name) }
                // drop the name from every allow entry (keeping the entry's other names)
                syscalls = syscalls.compactMap { e -> LinuxSyscall? in
                    guard allows(e.action), e.names.contains(name) else { return e }
                    var e = e
                    e.names.removeAll { $0 == name }
                    return e.names.isEmpty ? nil : e
                }
                let conditional = !(rule.args ?? []).isEmpty
                if conditional && defaultDenies && allowed {
                    if let complement = complement(rule, name: name) {
                        syscalls.append(complement)
                    } else {
                        notes.append("conditional rule for \(name) cannot be merged into an allow-list; not enforced")
                        continue
                    }
                }
                syscalls.append(
                    LinuxSyscall(names: [name], action: rule.action, errnoRet: rule.errnoRet, args: rule.args))
            }
        }
        out.syscalls = syscalls
        return Result(profile: out, notes: notes)
    }

    /// "Allow when none of the tested bits is set" for denials made of single-bit MASKED_EQ tests
    /// (`value == valueTwo == bit`) on one argument index, e.g. chmod with an x or s bit (runc
    /// turns several args on the same index into separate, OR-ed rules).
    static func complement(_ rule: LinuxSyscall, name: String) -> LinuxSyscall? {
        guard let args = rule.args, !args.isEmpty else { return nil }
        let index = args[0].index
        var mask: UInt64 = 0
        for a in args {
            guard a.op == "SCMP_CMP_MASKED_EQ", a.index == index, a.valueTwo == a.value, a.value.nonzeroBitCount == 1
            else { return nil }
            mask |= a.value
        }
        return LinuxSyscall(
            names: [name], action: "SCMP_ACT_ALLOW",
            args: [LinuxSeccompArg(index: index, value: mask, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")])
    }
}
