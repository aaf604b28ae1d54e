import CBulwarkABI

/// A decoded `struct bulwark_event` (one ring-buffer record of the BPF enforcer).
public struct BPFEvent: Sendable, Codable, Equatable {
    public enum Action: String, Sendable, Codable {
        case denied = "DENIED"
        case audit = "AUDIT"
        case allowed = "ALLOWED"
    }
    public enum Kind: String, Sendable, Codable {
        case capability, file, exec, network, ptrace, mount, unknown
    }

    public var action: Action
    public var kind: Kind
    public var mountNamespace: UInt32
    public var pid: UInt32
    public var bootTimeNanoseconds: UInt64
    public var profileID: UInt32
    public var comm: String
    /// FILE/EXEC: BULWARK_PERM_* requested; CAPABILITY: number; PTRACE: permission; MOUNT: flags;
    /// NETWORK: BULWARK_NET_*.
    public var detail: UInt32
    public var path: String?
    public var family: UInt16?
    public var socketType: UInt16?
    public var `protocol`: UInt16?
    public var port: UInt16?
    public var address: String?
    public var peer: UInt32?
    public var external: Bool?
    public var fstype: String?

    /// Decodes one record. Fields are read in place at their offsets: copying the 4 KiB C struct
    /// (or its char arrays, imported as tuples) costs tens of thousands of instructions an event.
    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= MemoryLayout<bulwark_event>.size else { return nil }
        func load<T>(_ field: KeyPath<bulwark_event, T>) -> T {
            bytes.loadUnaligned(fromByteOffset: MemoryLayout<bulwark_event>.offset(of: field)!, as: T.self)
        }
        func string<T>(_ field: KeyPath<bulwark_event, T>) -> String {
            let start = MemoryLayout<bulwark_event>.offset(of: field)!
            let raw = UnsafeRawBufferPointer(rebasing: bytes[start..<start + MemoryLayout<T>.size])
            let n = raw.firstIndex(of: 0) ?? raw.count
            return String(decoding: UnsafeRawBufferPointer(rebasing: raw[..<n]), as: UTF8.self)
        }
        switch Int32(load(\.action)) {
        case BULWARK_ACTION_DENIED: action = .denied
        case BULWARK_ACTION_AUDIT: action = .audit
        case BULWARK_ACTION_ALLOWED: action = .allowed
        default: return nil
        }
        switch Int32(load(\.type)) {
        case BULWARK_EVENT_CAPABILITY: kind = .capability
        case BULWARK_EVENT_FILE: kind = .file
        case BULWARK_EVENT_EXEC: kind = .exec
        case BULWARK_EVENT_NETWORK: kind = .network
        case BULWARK_EVENT_PTRACE: kind = .ptrace
        case BULWARK_EVENT_MOUNT: kind = .mount
        default: kind = .unknown
        }
        mountNamespace = load(\.mnt_ns)
        pid = load(\.pid)
        bootTimeNanoseconds = UInt64(load(\.ktime))
        profileID = load(\.profile)
        detail = load(\.detail)
        comm = string(\.comm)
        switch kind {
        case .file, .exec:
            path = string(\.path)
        case .mount:
            path = string(\.path)
            fstype = string(\.fstype)
        case .network:
            let family = load(\.family)
            self.family = family
            socketType = load(\.sock_type)
            `protocol` = load(\.protocol)
            if detail != UInt32(BULWARK_NET_SOCKET) {
                port = load(\.port)
                let a = withUnsafeBytes(of: load(\.addr)) { Array($0) }
                address = family == 2 ? a.prefix(4).map(String.init).joined(separator: ".") : Self.ipv6(a)
            }
        case .ptrace:
            peer = load(\.peer)
            external = load(\.external) != 0
        case .capability, .unknown:
            break
        }
    }

    static func ipv6(_ b: [UInt8]) -> String {
        stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }

    /// vArmor's permission words for file events.
    public var permissionNames: [String] {
        guard kind == .file || kind == .exec else { return [] }
        var out: [String] = []
        for (bit, name) in Self.permissionBits where detail & UInt32(bit) != 0 { out.append(name) }
        return out
    }

    static let permissionBits: [(Int32, String)] = [
        (BULWARK_PERM_EXEC, "exec"), (BULWARK_PERM_READ, "read"), (BULWARK_PERM_WRITE, "write"),
        (BULWARK_PERM_APPEND, "append"), (BULWARK_PERM_CREATE, "create"), (BULWARK_PERM_RENAME, "rename"),
        (BULWARK_PERM_LINK, "link"),
    ]
}
