import BulwarkModel
import BulwarkOCI
import BulwarkPolicy

/// Compiles a policy to an OCI `LinuxSeccomp` (reference/varmor.md §5).
///
/// Differences from vArmor, all deterministic: entries come in a fixed order (raw rules, then
/// built-in rules in catalogue order; vArmor iterates a Go map); with `allowViolations` and
/// without `auditViolations` built-in rules are dropped (allowed silently, as for AppArmor and
/// BPF; vArmor still returns ERRNO there).
public struct SeccompCompiler: Sendable {
    /// The behaviour model of the profile being compiled, for DefenseInDepth `profileType:
    /// BehaviorModel` (nil: none on this node).
    public var model: BehaviorModel?
    /// The node records modeled containers' syscalls in the kernel (the agent's process tracker):
    /// the BehaviorModeling profile then allows without logging, instead of vArmor's
    /// `SCMP_ACT_LOG` default — whose audit lines (10 per 5 s without auditd) would crowd out every
    /// other container's events and still miss most syscalls.
    public var kernelRecordsSyscalls: Bool

    public init(model: BehaviorModel? = nil, kernelRecordsSyscalls: Bool = false) {
        self.model = model
        self.kernelRecordsSyscalls = kernelRecordsSyscalls
    }

    public static let modelingAllowed = ["open", "openat", "openat2", "close", "read", "write"]

    public func compile(_ policy: Policy) throws(ProfileUnavailable) -> LinuxSeccomp {
        let body = policy.spec.policy
        switch body.mode {
        case .alwaysAllow, .runtimeDefault:
            // RuntimeDefault keeps the runtime's own default profile in the spec; the stored
            // profile is allow-all, as vArmor's node file.
            return LinuxSeccomp(defaultAction: "SCMP_ACT_ALLOW")
        case .behaviorModeling:
            if kernelRecordsSyscalls { return LinuxSeccomp(defaultAction: "SCMP_ACT_ALLOW") }
            return LinuxSeccomp(
                defaultAction: "SCMP_ACT_LOG",
                syscalls: [LinuxSyscall(names: Self.modelingAllowed, action: "SCMP_ACT_ALLOW")])
        case .defenseInDepth:
            guard let sc = body.defenseInDepth?.seccomp else { return LinuxSeccomp(defaultAction: "SCMP_ACT_ALLOW") }
            var profile: LinuxSeccomp
            switch sc.source {
            case .custom(let custom): profile = custom
            case .behaviorModel:
                guard let model else { throw .noModel("policy \(policy.displayName)", "Seccomp") }
                profile = try ModelProfiles.seccomp(model)
            }
            profile.defaultAction = (body.defenseInDepth?.allowViolations ?? false) ? "SCMP_ACT_LOG" : "SCMP_ACT_ERRNO"
            let raw = sc.syscallRawRules
            if !raw.isEmpty { profile.syscalls = (profile.syscalls ?? []) + raw }
            return profile
        case .enhanceProtect:
            return enhance(body.enhanceProtect ?? EnhanceProtect())
        }
    }

    private func enhance(_ ep: EnhanceProtect) -> LinuxSeccomp {
        var builtin: [LinuxSyscall] = []
        var owner: [String] = []  // rule id of each built-in entry
        let drop = ep.allowViolations && !ep.auditViolations
        let action = ep.allowViolations && ep.auditViolations ? "SCMP_ACT_LOG" : "SCMP_ACT_ERRNO"
        if !drop {
            let refs =
                ep.hardeningRules + ep.attackProtectionRules.filter { $0.targets.isEmpty }.flatMap { $0.rules }
                + ep.vulMitigationRules
            var seen = Set<String>()
            for ref in refs where seen.insert(ref.id).inserted {
                guard let rule = BuiltinRule.lookup(ref.id) else { continue }
                for var entry in rule.seccomp {
                    entry.action = action
                    // disable-chmod-x-bit and disable-chmod-s-bit: the second appends its args to
                    // the first's entry for the same syscall, as vArmor (runc turns several args
                    // on one index into OR-ed libseccomp rules).
                    if let i = builtin.indices.first(where: {
                        builtin[$0].names == entry.names && owner[$0] != rule.id
                            && owner[$0].hasPrefix("disable-chmod-")
                            && rule.id.hasPrefix("disable-chmod-")
                    }) {
                        let have = builtin[i].args ?? []
                        builtin[i].args = have + (entry.args ?? []).filter { !have.contains($0) }
                        continue
                    }
                    builtin.append(entry)
                    owner.append(rule.id)
                }
            }
        }
        var raw: [LinuxSyscall] = []
        for r in ep.syscallRawRules {
            for name in r.names {
                if let i = builtin.firstIndex(where: {
                    $0.names == [name] && $0.action == r.action && $0.errnoRet == r.errnoRet
                }) {
                    let bArgs = builtin[i].args ?? []
                    let rArgs = r.args ?? []
                    if rArgs.isEmpty && !bArgs.isEmpty {
                        raw.append(LinuxSyscall(names: [name], action: r.action, errnoRet: r.errnoRet))
                    } else if !rArgs.isEmpty && bArgs.isEmpty {
                        continue  // already blocked unconditionally
                    } else if !rArgs.isEmpty {
                        builtin[i].args = bArgs + rArgs.filter { !bArgs.contains($0) }
                    }
                    continue
                }
                raw.append(LinuxSyscall(names: [name], action: r.action, errnoRet: r.errnoRet, args: r.args))
            }
        }
        let all = raw + builtin
        return LinuxSeccomp(defaultAction: "SCMP_ACT_ALLOW", syscalls: all.isEmpty ? nil : all)
    }
}
