import BulwarkModel
import BulwarkOCI
import BulwarkPolicy

/// A profile that cannot be compiled on this node now (a DefenseInDepth policy whose behaviour
/// model is missing or holds nothing for the enforcer). The profile is not delivered; containers
/// the policy targets are refused (or, with failure policy Ignore, run without that enforcer and
/// reported) — never silently unconfined.
public struct ProfileUnavailable: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String

    public init(_ description: String) { self.description = description }

    /// `subject`: the profile (or policy) whose model is missing.
    static func noModel(_ subject: String, _ enforcer: String) -> ProfileUnavailable {
        ProfileUnavailable(
            "no behaviour model of \(subject) with \(enforcer) data on this node (profileType BehaviorModel): record one with the same policy in mode BehaviorModeling, or `bulwark model import FILE`"
        )
    }
}

/// The allow-list profiles generated from a behaviour model (DefenseInDepth, `profileType:
/// BehaviorModel`), with vArmor's templates (reference/varmor.md §4.2, §5): what the model holds is
/// allowed, everything else is not.
public enum ModelProfiles {
    /// File permissions AppArmor rules take, in the order they are written.
    static let filePermissions: [Character] = ["m", "r", "w", "a", "l", "k"]

    /// The AppArmor allow-list body (inside `profile NAME … { }`): executions (`ix`), files (with
    /// `owner` where every access was by the file's owner), capabilities, then the fixed network,
    /// ptrace, signal and umount rules of vArmor's `defenseInDepthTemplate`.
    public static func appArmorBody(
        _ model: BehaviorModel, name: String, notes: inout [String]
    ) throws(ProfileUnavailable) -> String {
        guard let a = model.appArmor, !a.isEmpty else { throw .noModel(name, "AppArmor") }
        var lines = ["  #include <abstractions/base>", "", "  # ---- EXEC ----"]
        for exe in a.executions.sorted() { lines.append("  \(quoted(exe)) ix,") }
        lines.append("  # ---- FILE ----")
        for path in a.files.keys.sorted() {
            let f = a.files[path]!
            var perms = filePermissions.filter { f.permissions.contains(String($0)) }
            if perms.contains("w") { perms.removeAll { $0 == "a" } }  // w includes a
            let unknown = f.permissions.subtracting(filePermissions.map(String.init) + ["x"])
            if !unknown.isEmpty {
                notes.append("model file \(path): permissions \(unknown.sorted().joined(separator: ",")) ignored")
            }
            guard !perms.isEmpty else { continue }
            lines.append("  \(f.owner ? "owner " : "")\(quoted(path)) \(String(perms)),")
        }
        lines.append("  # ---- CAPABILITY ----")
        for cap in a.capabilities.sorted() {
            if LinuxNames.capability(cap) == nil {
                notes.append("model capability \(cap) is not a Linux capability; ignored")
                continue
            }
            lines.append("  capability \(cap),")
        }
        lines += [
            "  # ---- NETWORK ----", "  network,",
            "  # ---- PTRACE ----", "  ptrace (trace,read,tracedby,readby) peer=\(name),",
            "  # ---- SIGNAL ----", "  signal (receive) peer=unconfined,", "  signal (send,receive) peer=\(name),",
            "  # ---- ADDITIONAL ----", "  umount,", "",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// The seccomp allow-list: ERRNO by default; the syscalls vArmor always allows (the recording
    /// profile's own), then the model's. Names libseccomp does not know on any architecture are
    /// left out with a note (runc would refuse the whole filter).
    public static func seccomp(_ model: BehaviorModel) throws(ProfileUnavailable) -> LinuxSeccomp {
        guard let s = model.seccomp, !s.isEmpty else { throw .noModel(model.name, "Seccomp") }
        let known = s.syscalls.filter { SyscallNames.known.contains($0) }.sorted()
        return LinuxSeccomp(
            defaultAction: "SCMP_ACT_ERRNO",
            syscalls: [
                LinuxSyscall(names: SeccompCompiler.modelingAllowed, action: "SCMP_ACT_ALLOW"),
                LinuxSyscall(names: known, action: "SCMP_ACT_ALLOW"),
            ])
    }

    /// A path as an AppArmor rule names it: quoted when it has a space, a comma or a `#`, AppArmor's
    /// glob characters (other than the `*` wildcards a model uses) escaped.
    static func quoted(_ path: String) -> String {
        var out = ""
        for c in path {
            switch c {
            case "\\", "\"", "{", "}", "[", "]", "?", "^": out += "\\" + String(c)
            default: out.append(c)
            }
        }
        return path.contains(where: { $0 == " " || $0 == "\t" || $0 == "," || $0 == "#" }) ? "\"\(out)\"" : out
    }
}

extension ModelProfiles {
    /// Why `policy`'s profile cannot be compiled for `enforcers` on this node with `model` (nil when
    /// it can) — what the start path and the NRI plugin check before promising confinement. The
    /// same compilers decide, so the answer cannot disagree with what delivery does.
    public static func unavailable(
        _ policy: Policy, profileName: String, enforcers: EnforcerSet, model: BehaviorModel?
    ) -> String? {
        guard policy.spec.policy.mode == .defenseInDepth, policy.spec.policy.defenseInDepth?.needsModel == true else {
            return nil
        }
        if enforcers.contains(.seccomp) {
            do { _ = try SeccompCompiler(model: model).compile(policy) } catch { return error.description }
        }
        if enforcers.contains(.appArmor) {
            do { _ = try AppArmorCompiler(model: model).compile(policy, profileName: profileName) } catch {
                return error.description
            }
        }
        return nil
    }
}
