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
        if enforcers.contains(.bpf) {
            do { _ = try BPFCompiler(model: model).compile(policy, profileName: profileName) } catch {
                return error.description
            }
        }
        return nil
    }
}

extension ModelProfiles {
    /// The BPF allow-list entries of a model (`dynamicResult.bpf`, as the modeler records it from the
    /// BPF enforcer's complain-mode records): each execution, file access, capability, socket,
    /// destination, ptrace and mount becomes an `allow` entry in the same tables deny rules use. What
    /// cannot be expressed is left out with a note — so it stays refused (an allow-list fails closed).
    static func addBPFAllowList(_ m: BPFBehavior, into b: inout Builder) {
        let exec = FilePermissions.exec.rawValue
        func path(_ text: String, exec isExec: Bool, _ bits: UInt32) {
            var pattern = PathPattern.parse(text, maxPart: PolicyParser.maxPathPart)
            if case .failure = pattern, let wider = bpfExpressible(text) {
                // `/proc/*/fd/*` (a `*` inside a path, or several wildcards) is wider in BPF's
                // syntax: the text before the first wildcard and after the last one
                pattern = PathPattern.parse(wider, maxPart: PolicyParser.maxPathPart)
                if case .success = pattern { b.profile.notes.append("model path \(text) is allowed as \(wider)") }
            }
            switch pattern {
            case .success(let p): b.addPath(p, exec: isExec, verdict: .init(allow: bits))
            case .failure(let why):
                b.profile.notes.append(
                    "model path \(text) cannot be a BPF allow entry (\(why.message)); it stays refused")
            }
        }
        for e in m.executions.sorted() { path(e, exec: true, exec) }
        for (p, f) in m.files.sorted(by: { $0.key < $1.key }) {
            var bits: UInt32 = 0
            for name in f.permissions {
                guard let bit = filePermissionBits[name] else {
                    b.profile.notes.append("model file \(p): permission \(name) is not a BPF permission; ignored")
                    continue
                }
                bits |= bit
            }
            if bits & ~exec != 0 { path(p, exec: false, bits & ~exec) }
            if bits & exec != 0 { path(p, exec: true, exec) }
        }
        for c in m.capabilities.sorted() {
            guard let n = LinuxNames.capability(c), n < 64 else {
                b.profile.notes.append("model capability \(c) is not a Linux capability; it stays refused")
                continue
            }
            b.profile.capabilityAllow |= 1 << UInt64(n)
        }
        for s in m.network.sockets.sorted() {
            guard let family = socketNumber(s.domain, "AF_", LinuxNames.addressFamilies),
                let type = socketNumber(s.type, "SOCK_", LinuxNames.socketTypes),
                let proto = protocolNumber(s.protocol)
            else {
                b.profile.notes.append(
                    "model socket \(s.domain)/\(s.type)/\(s.protocol) has a name Linux does not know; it stays refused")
                continue
            }
            b.addSocket(
                domains: family.map { [$0] } ?? [], types: type.map { [$0] } ?? [], protocols: proto.map { [$0] } ?? [],
                mode: .allow)
        }
        for (ip, ports) in m.network.egresses.sorted(by: { $0.key < $1.key }) {
            guard let n = IPNetwork.host(ip) else {
                b.profile.notes.append("model destination \(ip) is not an IP address; it stays refused")
                continue
            }
            b.addEgress(n, ports: ports.sorted().map { PortRange($0, $0) }, mode: .allow)
        }
        for (external, perms) in m.ptraces {
            var bits: UInt32 = 0
            for p in perms { bits |= ptraceBits[p] ?? 0 }
            if external { b.profile.ptrace.allowAny |= bits } else { b.profile.ptrace.allowInner |= bits }
        }
        // a recorded mount allows its source and filesystem type with any flags
        for use in m.mounts.keys.sorted() {
            b.addMount(use.path, use.type.isEmpty ? "none" : use.type, LinuxNames.mountAll, LinuxNames.mountAll, .allow)
        }
    }

    /// `prefix**suffix` for a model pattern BPF's one-wildcard syntax cannot hold: every path the
    /// pattern matches starts with the text before its first `*` and ends with the text after its last.
    static func bpfExpressible(_ text: String) -> String? {
        guard let first = text.firstIndex(of: "*"), let last = text.lastIndex(of: "*") else { return nil }
        return String(text[..<first]) + "**" + String(text[text.index(after: last)...])
    }

    /// The permission names of BPF file records (`BPFEvent.permissionNames`).
    static let filePermissionBits: [String: UInt32] = [
        "exec": FilePermissions.exec.rawValue, "read": FilePermissions.read.rawValue,
        "write": FilePermissions.write.rawValue, "append": FilePermissions.append.rawValue,
        "create": FilePermissions.create.rawValue, "rename": FilePermissions.rename.rawValue,
        "link": FilePermissions.link.rawValue,
    ]

    static let ptraceBits: [String: UInt32] = [
        "trace": PtracePermissions.trace.rawValue, "read": PtracePermissions.read.rawValue,
        "traceby": PtracePermissions.traceBy.rawValue, "readby": PtracePermissions.readBy.rawValue,
    ]

    /// `AF_INET` → 2; "" → any (`.some(nil)`); unknown → nil.
    static func socketNumber(_ name: String, _ prefix: String, _ table: [(String, Int)]) -> Int?? {
        if name.isEmpty { return .some(nil) }
        let bare = name.hasPrefix(prefix) ? String(name.dropFirst(prefix.count)) : name
        if let n = table.first(where: { $0.0 == bare.lowercased() }) { return .some(n.1) }
        return Int(bare).map { .some($0) } ?? nil
    }

    /// `IPPROTO_TCP` → 6, a number as itself, "" → any.
    static func protocolNumber(_ name: String) -> Int?? {
        switch name {
        case "": return .some(nil)
        case "IPPROTO_ICMP": return .some(1)
        case "IPPROTO_TCP": return .some(6)
        case "IPPROTO_UDP": return .some(17)
        case "IPPROTO_ICMPV6": return .some(58)
        default: return Int(name).map { .some($0) } ?? nil
        }
    }
}
