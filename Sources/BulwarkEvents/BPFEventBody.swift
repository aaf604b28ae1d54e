import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import CBulwarkABI

extension BPFEvent {
    /// The `event` body vArmor writes for a BPF record (reference/varmor.md §6.2).
    public var varmorBody: JSONValue {
        switch kind {
        case .capability:
            let name = Int(detail) < LinuxNames.capabilities.count ? LinuxNames.capabilities[Int(detail)] : "unknown"
            return .object(JSONObject([("operation", .string("Capability")), ("capability", .string(name))]))
        case .file, .exec:
            return .object(
                JSONObject([
                    ("operation", .string(kind == .exec ? "Bprm" : "File")),
                    ("permissions", .array(permissionNames.map(JSONValue.string))),
                    ("path", .string(path ?? "")),
                ]))
        case .network:
            let created = detail == UInt32(BULWARK_NET_SOCKET)
            let socket = JSONObject([
                ("domain", .string(created ? Self.domainName(family) : "")),
                ("type", .string(created ? Self.socketTypeName(socketType) : "")),
                ("protocol", .string(created ? Self.protocolName(self.protocol) : "")),
            ])
            let type = created ? "socket" : detail == UInt32(BULWARK_NET_SENDMSG) ? "sendmsg" : "connect"
            return .object(
                JSONObject([
                    ("operation", .string("Network")), ("type", .string(type)), ("socket", .object(socket)),
                    (
                        "address",
                        .object(JSONObject([("ip", .string(address ?? "")), ("port", .number(port ?? 0))]))
                    ),
                ]))
        case .ptrace:
            let names: [(Int32, String)] = [
                (BULWARK_PTRACE_TRACE, "trace"), (BULWARK_PTRACE_READ, "read"), (BULWARK_PTRACE_TRACEBY, "traceby"),
                (BULWARK_PTRACE_READBY, "readby"),
            ]
            let permission = names.first(where: { detail & UInt32($0.0) != 0 }).map(\.1) ?? "unknown"
            return .object(
                JSONObject([
                    ("operation", .string("Ptrace")), ("permission", .string(permission)),
                    ("external", .bool(external ?? false)),
                ]))
        case .mount:
            let fs = fstype ?? ""
            return .object(
                JSONObject([
                    ("operation", .string("Mount")), ("path", .string(path ?? "")),
                    ("type", .string(fs.isEmpty ? "none" : fs)),
                    ("flags", .array(Self.mountFlagNames(detail).map(JSONValue.string))),
                ]))
        case .unknown:
            return .object(JSONObject([("operation", .string("Unknown"))]))
        }
    }

    /// Unix seconds of the event: boot-relative kernel time plus the boot time.
    public func eventTimestamp(bootEpochNanoseconds: UInt64) -> UInt64 {
        (bootEpochNanoseconds &+ bootTimeNanoseconds) / 1_000_000_000
    }

    static func domainName(_ family: UInt16?) -> String {
        guard let f = family, let n = LinuxNames.addressFamilies.first(where: { $0.1 == Int(f) }) else { return "" }
        return "AF_" + n.0.uppercased()
    }

    static func socketTypeName(_ type: UInt16?) -> String {
        guard let t = type, let n = LinuxNames.socketTypes.first(where: { $0.1 == Int(t & 0xF) }) else { return "" }
        return "SOCK_" + n.0.uppercased()
    }

    static func protocolName(_ proto: UInt16?) -> String {
        switch proto {
        case 1: return "IPPROTO_ICMP"
        case 6: return "IPPROTO_TCP"
        case 17: return "IPPROTO_UDP"
        case 58: return "IPPROTO_ICMPV6"
        case 0, nil: return ""
        case let p?: return "\(p)"
        }
    }

    /// vArmor's flag words for a mount record: the plain flags, then one bind-family name.
    static func mountFlagNames(_ flags: UInt32) -> [String] {
        if flags & UInt32(BULWARK_MOUNT_UMOUNT) != 0 { return ["umount"] }
        let plain: [(UInt32, String)] = [
            (LinuxNames.msRdonly, "ro"), (LinuxNames.msNosuid, "nosuid"), (LinuxNames.msNodev, "nodev"),
            (LinuxNames.msNoexec, "noexec"), (LinuxNames.msSynchronous, "sync"), (LinuxNames.msRemount, "remount"),
            (LinuxNames.msMandlock, "mand"), (LinuxNames.msDirsync, "dirsync"), (LinuxNames.msNoatime, "noatime"),
            (LinuxNames.msNodiratime, "nodiratime"), (LinuxNames.msMove, "move"), (LinuxNames.msSilent, "silent"),
            (LinuxNames.msRelatime, "relatime"), (LinuxNames.msIversion, "iversion"),
            (LinuxNames.msStrictatime, "strictatime"),
        ]
        var out = plain.filter { flags & $0.0 != 0 }.map(\.1)
        let rec = flags & LinuxNames.msRec != 0
        let family: [(UInt32, String)] = [
            (LinuxNames.msUnbindable, "unbindable"), (LinuxNames.msPrivate, "private"), (LinuxNames.msSlave, "slave"),
            (LinuxNames.msShared, "shared"),
        ]
        if let f = family.first(where: { flags & $0.0 != 0 }) {
            out.append(rec ? "make-r\(f.1)" : "make-\(f.1)")
        } else if flags & LinuxNames.msBind != 0 {
            out.append(rec ? "rbind" : "bind")
        }
        return out
    }
}
