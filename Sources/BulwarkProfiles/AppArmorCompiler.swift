import BulwarkModel
import BulwarkPolicy
import Foundation

/// A compiled AppArmor profile: the text for `apparmor_parser`, and whether to load it in
/// complain mode (`-C`).
public struct AppArmorProfile: Sendable, Equatable {
    public var name: String
    public var text: String
    public var complain: Bool
    public var notes: [String]
}

/// Compiles a policy to AppArmor profile text with vArmor's templates (reference/varmor.md §4).
/// Disk-device rules expand over the device list the caller gives (on a node: the names in
/// /proc/partitions). Text is produced directly, never through an HTML template (vArmor §9.3.9).
public struct AppArmorCompiler: Sendable {
    public var diskDevices: [String]
    /// The behaviour model of the profile being compiled, for DefenseInDepth `profileType:
    /// BehaviorModel` (nil: none on this node).
    public var model: BehaviorModel?

    public init(diskDevices: [String] = [], model: BehaviorModel? = nil) {
        self.diskDevices = diskDevices
        self.model = model
    }

    static let header =
        "## == Managed by Bulwark (vArmor policy language) == ##\n\nabi <abi/3.0>,\n#include <tunables/global>\n\n"
    static let flags = "flags=(attach_disconnected,mediate_deleted)"

    static let alwaysAllowBody = """
          #include <abstractions/base>

          file,
          capability,
          network,
          mount,
          remount,
          umount,
          pivot_root,
          ptrace,
          signal,
          dbus,
          unix,

        """

    /// containerd's `cri-containerd.apparmor.d` as vArmor carries it; `Q` is the qualifier slot.
    static func runtimeDefaultRules(_ q: String, allow: Bool) -> [String] {
        let x = allow ? "wklix" : "wklx"
        let rx = allow ? "rwklix" : "rwklx"
        return [
            "\(q)@{PROC}/* w,",
            "\(q)@{PROC}/{[^1-9],[^1-9][^0-9],[^1-9s][^0-9y][^0-9s],[^1-9][^0-9][^0-9][^0-9]*}/** w,",
            "\(q)@{PROC}/sys/[^k]** w,",
            "\(q)@{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,",
            "\(q)@{PROC}/sysrq-trigger \(rx),",
            "\(q)@{PROC}/mem \(rx),",
            "\(q)@{PROC}/kmem \(rx),",
            "\(q)@{PROC}/kcore \(rx),",
            "",
            "\(q)mount,",
            "",
            "\(q)/sys/[^f]*/** \(x),",
            "\(q)/sys/f[^s]*/** \(x),",
            "\(q)/sys/fs/[^c]*/** \(x),",
            "\(q)/sys/fs/c[^g]*/** \(x),",
            "\(q)/sys/fs/cg[^r]*/** \(x),",
            "\(q)/sys/firmware/** \(rx),",
            "\(q)/sys/devices/virtual/powercap/** \(rx),",
            "\(q)/sys/kernel/security/** \(rx),",
        ]
    }

    static func runtimeDefaultBody(name: String, q: String, allow: Bool) -> String {
        var lines = [
            "  #include <abstractions/base>", "", "  network,", "  capability,", "  file,", "  umount,", "",
            "  # host (privileged) processes may send signals to container processes.",
            "  signal (receive) peer=unconfined,", "  # runc may send signals to container processes.",
            "  signal (receive) peer=runc,", "  # crun may send signals to container processes.",
            "  signal (receive) peer=crun,", "  # container processes may send signals amongst themselves.",
            "  signal (send,receive) peer=\(name),", "",
        ]
        lines += runtimeDefaultRules(q, allow: allow).map { $0.isEmpty ? "" : "  " + $0 }
        lines += [
            "", "  # allow processes within the container to trace each other,",
            "  # provided all other LSM and yama setting allow it.",
            "  ptrace (trace,read,tracedby,readby) peer=\(name),", "",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    static func wrap(_ name: String, _ body: String) -> String {
        header + "profile \(name) \(flags) {\n" + body + "}\n"
    }

    public func compile(_ policy: Policy, profileName name: String) throws(ProfileUnavailable) -> AppArmorProfile {
        let body = policy.spec.policy
        var notes: [String] = []
        switch body.mode {
        case .alwaysAllow:
            return AppArmorProfile(name: name, text: Self.wrap(name, Self.alwaysAllowBody), complain: false, notes: [])
        case .runtimeDefault:
            return AppArmorProfile(
                name: name, text: Self.wrap(name, Self.runtimeDefaultBody(name: name, q: "deny ", allow: false)),
                complain: false,
                notes: [])
        case .behaviorModeling:
            return AppArmorProfile(
                name: name, text: Self.header + "profile \(name) \(Self.flags) {\n}\n", complain: true, notes: [])
        case .defenseInDepth:
            guard let aa = body.defenseInDepth?.appArmor else {
                return AppArmorProfile(
                    name: name, text: Self.wrap(name, Self.alwaysAllowBody), complain: false,
                    notes: ["no appArmor profile"])
            }
            var text: String
            switch aa.source {
            case .custom(let custom): text = Self.renameProfile(custom, to: name, notes: &notes)
            case .behaviorModel:
                guard let model, model.name == name else { throw .noModel(name, "AppArmor") }
                text = Self.wrap(name, try ModelProfiles.appArmorBody(model, name: name, notes: &notes))
            }
            let global = aa.rawRules.filter { $0.targets.isEmpty }
            var extra = global.isEmpty ? "" : "\n  # Custom Rules\n" + global.map { Self.indent($0.rules) }.joined()
            extra += childProfiles(
                name: name, q: "", allow: false, privileged: false, parentRules: nil,
                groups: Self.groups([], aa.rawRules), defenseInDepth: true)
            if let close = text.range(of: "}", options: .backwards) {
                text.insert(contentsOf: extra, at: close.lowerBound)
            }
            return AppArmorProfile(
                name: name, text: text, complain: body.defenseInDepth?.allowViolations ?? false, notes: notes)
        case .enhanceProtect:
            let ep = body.enhanceProtect ?? EnhanceProtect()
            let q = (ep.auditViolations ? "audit " : "") + (ep.allowViolations ? "" : "deny ")
            var text =
                ep.privileged
                ? Self.alwaysAllowBody : Self.runtimeDefaultBody(name: name, q: q, allow: ep.allowViolations)
            let rules = globalRules(ep, q: q)
            text += rules
            text += childProfiles(
                name: name, q: q, allow: ep.allowViolations, privileged: ep.privileged, parentRules: rules,
                groups: Self.groups(ep.attackProtectionRules.filter { !$0.targets.isEmpty }, ep.appArmorRawRules),
                defenseInDepth: false)
            if diskDevices.isEmpty && (ep.hardeningRules.contains { $0.id.contains("disk-device") }) {
                notes.append("no disk devices given: disk-device rules expand to nothing")
            }
            return AppArmorProfile(name: name, text: Self.wrap(name, text), complain: false, notes: notes)
        }
    }

    func lines(_ refs: [RuleReference], q: String, allow: Bool) -> [String] {
        var out: [String] = []
        for ref in refs {
            guard let rule = BuiltinRule.lookup(ref.id) else { continue }
            for line in rule.appArmor {
                switch line {
                case .rule(let r): out.append("  \(q)\(r)")
                case .exec(let path): out.append("  \(q)\(path) \(allow ? "rix" : "rx"),")
                case .perDiskDevice(let template):
                    for d in diskDevices {
                        out.append("  \(q)" + template.replacingOccurrences(of: "{dev}", with: "/dev/\(d)"))
                    }
                }
            }
        }
        return out
    }

    private func globalRules(_ ep: EnhanceProtect, q: String) -> String {
        var out = "\n  # Hardening Rules\n"
        out += lines(ep.hardeningRules, q: q, allow: ep.allowViolations).map { $0 + "\n" }.joined()
        out += "\n  # Attack Protection Rules\n"
        out += lines(
            ep.attackProtectionRules.filter { $0.targets.isEmpty }.flatMap { $0.rules }, q: q, allow: ep.allowViolations
        )
        .map { $0 + "\n" }.joined()
        out += "\n  # Vulnerability Mitigation Rules\n"
        out += lines(ep.vulMitigationRules, q: q, allow: ep.allowViolations).map { $0 + "\n" }.joined()
        out += "\n  # Custom Rules\n"
        out += ep.appArmorRawRules.filter { $0.targets.isEmpty }.map { Self.indent($0.rules) }.joined()
        return out
    }

    /// Target executables grouped as vArmor does: rules per target are merged, then targets
    /// with identical rule sets share one child profile. Order: first appearance.
    struct Group {
        var targets: [String]
        var builtin: [RuleReference]
        var raw: [String]
    }

    static func groups(_ attack: [EnhanceProtect.AttackProtection], _ raw: [EnhanceProtect.AppArmorRaw]) -> [Group] {
        var order: [String] = []
        var perTarget: [String: (builtin: [RuleReference], raw: [String])] = [:]
        for a in attack {
            for t in a.targets {
                if perTarget[t] == nil { order.append(t) }
                for r in a.rules where !(perTarget[t]?.builtin.contains { $0.id == r.id } ?? false) {
                    perTarget[t, default: ([], [])].builtin.append(r)
                }
            }
        }
        for r in raw where !r.targets.isEmpty {
            for t in r.targets {
                if perTarget[t] == nil { order.append(t) }
                perTarget[t, default: ([], [])].raw.append(r.rules)
            }
        }
        var groups: [Group] = []
        for t in order {
            let v = perTarget[t]!
            if let i = groups.firstIndex(where: { $0.builtin.map(\.id) == v.builtin.map(\.id) && $0.raw == v.raw }) {
                groups[i].targets.append(t)
            } else {
                groups.append(Group(targets: [t], builtin: v.builtin, raw: v.raw))
            }
        }
        return groups
    }

    private func childProfiles(
        name: String, q: String, allow: Bool, privileged: Bool, parentRules: String?, groups: [Group],
        defenseInDepth: Bool
    ) -> String {
        guard !groups.isEmpty else { return "" }
        var out = "\n  ## Child Profile for Target Executables ##\n"
        for (i, g) in groups.enumerated() {
            let child = "child_\(i)"
            let full = "\(name)//\(child)"
            if !privileged {
                out += "\n  # processes with parent profile may send signal to processes with child profile\n"
                out += "  signal (send) peer=\(full),\n"
                out +=
                    "  # processes with parent profile may ptrace processes with child profile, but not vice versa.\n"
                out += "  ptrace (trace,read) peer=\(full),\n"
            }
            out += "\n" + g.targets.map { "  \($0) cx -> \(child),\n" }.joined()
            out += "\n  profile \(child) \(Self.flags) {\n\n"
            out += g.targets.map { "    \($0) rix,\n" }.joined() + "\n"
            var body = ""
            if defenseInDepth {
                body += "  signal (receive) peer=\(name),\n  signal (send,receive) peer=\(full),\n"
                body +=
                    "  ptrace (tracedby,readby) peer=\(name),\n  ptrace (trace,read,tracedby,readby) peer=\(full),\n"
                body += "\n  # Custom Rules\n" + g.raw.map { Self.indent($0) }.joined()
            } else {
                if privileged {
                    body += Self.alwaysAllowBody
                } else {
                    body += "  #include <abstractions/base>\n\n  network,\n  capability,\n  file,\n  umount,\n"
                    body +=
                        "  signal (receive) peer=unconfined,\n  signal (receive) peer=runc,\n  signal (receive) peer=crun,\n"
                    body += "  signal (receive) peer=\(name),\n  signal (send,receive) peer=\(full),\n"
                    body += Self.runtimeDefaultRules(q, allow: allow).filter { !$0.isEmpty }.map { "  \($0)\n" }
                        .joined()
                    body +=
                        "  ptrace (tracedby,readby) peer=\(name),\n  ptrace (trace,read,tracedby,readby) peer=\(full),\n"
                }
                body += parentRules ?? ""
                body +=
                    "\n  # Attack Protection Rules\n" + lines(g.builtin, q: q, allow: allow).map { $0 + "\n" }.joined()
                body += "\n  # Custom Rules\n" + g.raw.map { Self.indent($0) }.joined()
            }
            out += body.split(separator: "\n", omittingEmptySubsequences: false).map { $0.isEmpty ? "" : "  " + $0 }
                .joined(separator: "\n")
            out += "  }\n"
        }
        return out
    }

    static func indent(_ rules: String) -> String {
        rules.split(separator: "\n", omittingEmptySubsequences: false).compactMap { line -> String? in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.isEmpty ? nil : "  \(t)\n"
        }.joined()
    }

    /// A custom profile is attached by name: its first `profile <name>` must be the policy's
    /// profile name. vArmor leaves a mismatch to fail silently; Bulwark renames and says so.
    static func renameProfile(_ text: String, to name: String, notes: inout [String]) -> String {
        guard let r = text.range(of: #"profile\s+("[^"]+"|[^\s{]+)"#, options: .regularExpression) else { return text }
        let found = text[r].split(whereSeparator: \.isWhitespace).dropFirst().joined(separator: " ")
        if found == name || found == "\"\(name)\"" { return text }
        notes.append("customProfile names profile \(found); renamed to \(name) so containers attach to it")
        var out = text
        out.replaceSubrange(r, with: "profile \(name)")
        return out
    }
}
