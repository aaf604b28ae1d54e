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

    public init?(bytes: UnsafeRawBufferPointer) {
        guard bytes.count >= MemoryLayout<bulwark_event>.size else { return nil }
        let e = bytes.loadUnaligned(as: bulwark_event.self)
        switch Int32(e.action) {
        case BULWARK_ACTION_DENIED: action = .denied
        case BULWARK_ACTION_AUDIT: action = .audit
        case BULWARK_ACTION_ALLOWED: action = .allowed
        default: return nil
        }
        switch Int32(e.type) {
        case BULWARK_EVENT_CAPABILITY: kind = .capability
        case BULWARK_EVENT_FILE: kind = .file
        case BULWARK_EVENT_EXEC: kind = .exec
        case BULWARK_EVENT_NETWORK: kind = .network
        case BULWARK_EVENT_PTRACE: kind = .ptrace
        case BULWARK_EVENT_MOUNT: kind = .mount
        default: kind = .unknown
        }
        mountNamespace = e.mnt_ns
        pid = e.pid
        bootTimeNanoseconds = UInt64(e.ktime)
        profileID = e.profile
        detail = e.detail
        comm = Self.cString(e.comm)
        switch kind {
        case .file, .exec:
            path = Self.cString(e.path)
        case .mount:
            path = Self.cString(e.path)
            fstype = Self.cString(e.fstype)
        case .network:
            family = e.family
            socketType = e.sock_type
            `protocol` = e.protocol
            if detail != UInt32(BULWARK_NET_SOCKET) {
                port = e.port
                let a = withUnsafeBytes(of: e.addr) { Array($0) }
                address = e.family == 2 ? a.prefix(4).map(String.init).joined(separator: ".") : Self.ipv6(a)
            }
        case .ptrace:
            peer = e.peer
            external = e.external != 0
        case .capability, .unknown:
            break
        }
    }

    static func cString<T>(_ tuple: T) -> String {
        withUnsafeBytes(of: tuple) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    static func ipv6(_ b: [UInt8]) -> String {
        stride(from: 0, to: 16, by: 2).map { String(UInt16(b[$0]) << 8 | UInt16(b[$0 + 1]), radix: 16) }
            .joined(separator: ":")
    }

    /// vArmor's permission words for file events.
    public var permissionNames: [String] {
        guard kind == .file || kind == .exec else { return [] }
        let names: [(Int32, String)] = [
            (BULWARK_PERM_EXEC, "exec"), (BULWARK_PERM_READ, "read"), (BULWARK_PERM_WRITE, "write"),
            (BULWARK_PERM_APPEND, "append"), (BULWARK_PERM_CREATE, "create"), (BULWARK_PERM_RENAME, "rename"),
            (BULWARK_PERM_LINK, "link"),
        ]
        return names.filter { detail & UInt32($0.0) != 0 }.map(\.1)
    }
}
