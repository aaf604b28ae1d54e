import BulwarkOCI

/// Turns recorded events (the `event` bodies of vArmor-format events: AppArmor complain-mode
/// records, BPF audit records) into model entries, as vArmor's preprocessor does
/// (reference/varmor.md §7.3), with paths generalised.
extension BehaviorModel {
    /// An AppArmor record of profile `name` (or one of its children, `name//…`). Returns false when
    /// the record is another profile's. Operations the model has no field for go to `unhandled`.
    @discardableResult
    public mutating func addAppArmor(_ body: JSONObject, generaliser: PathGeneraliser) -> Bool {
        let profile = body["profile"]?.string ?? ""
        guard profile == name || profile.hasPrefix(name + "//") else { return false }
        var a = appArmor ?? AppArmorBehavior()
        defer { appArmor = a }
        a.profiles.insert(profile)
        let op = body["operation"]?.string ?? ""
        let path = body["name"]?.string ?? ""
        let denied = body["deniedMask"]?.string ?? ""
        let requested = body["requestedMask"]?.string ?? ""
        switch op {
        case "exec":
            if path.hasPrefix("/") { a.executions.insert(path) }
        case "capable":
            if !path.isEmpty { a.capabilities.insert(path) }
        case "ptrace":
            let peer = Self.peerProfile(body["peerProfile"]?.string ?? body["peer"]?.string ?? "")
            a.ptraces[peer, default: []].formUnion(Self.words(requested))
        case "signal":
            let peer = Self.peerProfile(body["peerProfile"]?.string ?? body["peer"]?.string ?? "")
            var use = a.signals[peer] ?? SignalUse(permissions: [], signals: [])
            use.permissions.formUnion(Self.words(requested))
            if let s = body["signal"]?.string, !s.isEmpty { use.signals.insert(s) }
            a.signals[peer] = use
        default:
            if let family = body["netFamily"]?.string, !family.isEmpty {
                a.network.sockets.insert(
                    SocketUse(
                        domain: family, type: body["netSockType"]?.string ?? "",
                        protocol: body["netProtocol"]?.string ?? ""))
            } else if Self.isFileOperation(op), path.hasPrefix("/"), !(denied.isEmpty && requested.isEmpty) {
                // vArmor: c and d are writes; x is an execution, not a file permission
                let mask = denied.isEmpty ? requested : denied
                var perms = Set<String>()
                for c in mask {
                    switch c {
                    case "c", "d", "w": perms.insert("w")
                    case "r", "a", "l", "k", "m": perms.insert(String(c))
                    default: break
                    }
                }
                guard !perms.isEmpty else { break }
                let writes = !perms.isDisjoint(with: ["w", "a", "l", "k"])
                let fsuid = body["fsuid"]?.unsigned
                let ouid = body["ouid"]?.unsigned
                let generalised = generaliser.generalise(path, writes: writes)
                a.addFile(
                    FileAccess(
                        path: generalised, owner: fsuid != nil && fsuid == ouid, permissions: perms,
                        oldPath: generalised == path ? "" : path))
            } else {
                a.unhandled.insert("operation=\"\(op)\"" + (path.isEmpty ? "" : " name=\"\(path)\""))
            }
        }
        return true
    }

    /// A BPF audit record of this profile's containers (its `event` body).
    public mutating func addBPF(_ body: JSONObject, generaliser: PathGeneraliser) {
        var b = bpf ?? BPFBehavior()
        defer { bpf = b }
        switch body["operation"]?.string ?? "" {
        case "Capability":
            if let c = body["capability"]?.string, c != "unknown" { b.capabilities.insert(c) }
        case "Bprm":
            if let p = body["path"]?.string, p.hasPrefix("/") { b.executions.insert(p) }
        case "File":
            guard let p = body["path"]?.string, p.hasPrefix("/") else { break }
            let perms = Set((body["permissions"]?.array ?? []).compactMap(\.string))
            guard !perms.isEmpty else { break }
            let generalised = generaliser.generalise(p, writes: !perms.isSubset(of: ["read", "exec"]))
            b.addFile(FileAccess(path: generalised, permissions: perms, oldPath: generalised == p ? "" : p))
        case "Network":
            let type = body["type"]?.string ?? ""
            if type == "socket", let s = body["socket"]?.object {
                b.network.sockets.insert(
                    SocketUse(
                        domain: s["domain"]?.string ?? "", type: s["type"]?.string ?? "",
                        protocol: s["protocol"]?.string ?? ""))
            } else if let a = body["address"]?.object, let ip = a["ip"]?.string, !ip.isEmpty {
                let port = a["port"]?.unsigned.flatMap { $0 <= 65535 ? UInt16($0) : nil }
                b.network.egresses[ip, default: []].formUnion(port.map { [$0] } ?? [])
            }
        case "Ptrace":
            if let p = body["permission"]?.string, p != "unknown" {
                b.ptraces[body["external"]?.bool ?? false, default: []].insert(p)
            }
        case "Mount":
            guard let p = body["path"]?.string, !p.isEmpty else { break }
            let use = MountUse(path: p, type: body["type"]?.string ?? "")
            b.mounts[use, default: []].formUnion((body["flags"]?.array ?? []).compactMap(\.string))
        default: break
        }
    }

    /// A seccomp record's syscall.
    public mutating func addSyscall(_ name: String) {
        seccomp = SeccompBehavior(syscalls: (seccomp?.syscalls ?? []).union([name]))
    }

    /// `custom.profile//null-/usr/bin/top` → `custom.profile` (vArmor strips the null-profile suffix).
    static func peerProfile(_ p: String) -> String {
        let u = Array(p.utf8)
        let marker = Array("//null-".utf8)
        guard u.count >= marker.count else { return p }
        for i in 0...(u.count - marker.count) where Array(u[i..<(i + marker.count)]) == marker {
            return String(decoding: u[..<i], as: UTF8.self)
        }
        return p
    }

    static func words(_ mask: String) -> Set<String> {
        Set(mask.split(whereSeparator: { $0 == " " || $0 == "," }).map(String.init))
    }

    /// AppArmor's file operations (libapparmor's names; vArmor's list).
    static func isFileOperation(_ op: String) -> Bool {
        op.hasPrefix("file_") || op.hasPrefix("inode_")
            || [
                "open", "mkdir", "rmdir", "unlink", "rename_src", "rename_dest", "link", "symlink", "chmod", "chown",
                "truncate", "mknod", "getattr", "setattr", "exec",
            ].contains(op)
    }
}
