import BulwarkOCI
import CAppArmor

/// An AppArmor audit record parsed by libapparmor's own log parser (`aalogparse`), converted to
/// the body vArmor writes (reference/varmor.md §6.2: the `aa_log_record` fields, camel-cased).
public struct AppArmorLog: Sendable, Equatable {
    public var pid: UInt32
    public var epoch: UInt64
    /// The profile label of the task (`varmor-x//child`), empty if none.
    public var profile: String
    public var body: JSONValue

    /// The longest line handed to libapparmor. The kernel's audit records are at most 8,970 bytes
    /// (MAX_AUDIT_MESSAGE_LENGTH) and /dev/kmsg's 1 KiB, but a followed log file is written by
    /// whoever can write it: libapparmor 3.0.8's `parse_record` corrupts the heap on a `name=` of
    /// 16 KiB (its lexer's buffer), so longer lines never reach it.
    public static let maxLineBytes = 8192

    /// Nil when the line is longer than `maxLineBytes`, libapparmor cannot parse it, or it is not
    /// a DENIED/AUDIT/ALLOWED record.
    public init?(normalized line: String) {
        guard line.utf8.count <= Self.maxLineBytes else { return nil }
        var bytes = Array(line.utf8CString)
        guard let record = bytes.withUnsafeMutableBufferPointer({ parse_record($0.baseAddress) }) else { return nil }
        defer { free_record(record) }
        let r = record.pointee
        switch r.event {
        case AA_RECORD_AUDIT, AA_RECORD_ALLOWED, AA_RECORD_DENIED: break
        default: return nil
        }
        func s(_ p: UnsafeMutablePointer<CChar>?) -> JSONValue { .string(p.map { String(cString: $0) } ?? "") }
        func n(_ v: UInt) -> JSONValue { .number(UInt64(v)) }
        pid = UInt32(truncatingIfNeeded: r.pid)
        epoch = UInt64(max(0, r.epoch))
        profile = r.profile.map { String(cString: $0) } ?? ""
        body = .object(
            JSONObject([
                ("version", .number(Int64(r.version.rawValue))), ("event", .number(Int64(r.event.rawValue))),
                ("pid", n(r.pid)), ("peerPID", n(r.peer_pid)), ("task", n(r.task)),
                ("magicToken", n(r.magic_token)), ("epoch", .number(Int64(r.epoch))),
                ("auditSubID", .number(UInt64(r.audit_sub_id))), ("bitMask", .number(Int64(r.bitmask))),
                ("auditID", s(r.audit_id)), ("operation", s(r.operation)), ("deniedMask", s(r.denied_mask)),
                ("requestedMask", s(r.requested_mask)), ("fsuid", n(r.fsuid)), ("ouid", n(r.ouid)),
                ("profile", s(r.profile)), ("peerProfile", s(r.peer_profile)), ("comm", s(r.comm)),
                ("name", s(r.name)), ("name2", s(r.name2)), ("namespace", s(r.namespace)),
                ("attribute", s(r.attribute)), ("parent", n(r.parent)), ("info", s(r.info)),
                ("peerInfo", s(r.peer_info)), ("errorCode", .number(Int64(r.error_code))),
                ("activeHat", s(r.active_hat)), ("netFamily", s(r.net_family)),
                ("netProtocol", s(r.net_protocol)), ("netSockType", s(r.net_sock_type)),
                ("netLocalAddr", s(r.net_local_addr)), ("netLocalPort", n(r.net_local_port)),
                ("netForeignAddr", s(r.net_foreign_addr)), ("netForeignPort", n(r.net_foreign_port)),
                ("dbusBus", s(r.dbus_bus)), ("dbusPath", s(r.dbus_path)), ("dbusInterface", s(r.dbus_interface)),
                ("dbusMember", s(r.dbus_member)), ("signal", s(r.signal)), ("peer", s(r.peer)),
                ("fsType", s(r.fs_type)), ("flags", s(r.flags)), ("srcName", s(r.src_name)),
            ]))
    }
}
