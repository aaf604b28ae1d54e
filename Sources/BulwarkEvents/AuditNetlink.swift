/// Records from the kernel's audit netlink socket (`NETLINK_AUDIT`, multicast group
/// `AUDIT_NLGRP_READLOG`): every audit record the kernel emits, whether or not auditd runs and
/// without the kernel log's rate limit (10 lines / 5 s when no auditd runs, which drops AppArmor
/// and seccomp records in bursts). Pure: a datagram in, the records as kernel-log lines out.
public enum AuditNetlink {
    /// `AUDIT_NLGRP_READLOG`: the read-only multicast group (CAP_AUDIT_READ, initial network namespace).
    public static let readLogGroup: UInt32 = 1
    /// `AUDIT_AVC` (AppArmor's records) and `AUDIT_SECCOMP`: the only types the agent reads.
    public static let wanted: Set<UInt16> = [1400, 1326]
    static let headerSize = 16

    /// The records of one datagram (a datagram holds one or more `nlmsghdr` + text), as the kernel
    /// log writes them (`type=1400 audit(…): …`) so that one parser reads both sources. Messages of
    /// other types are skipped; a malformed header ends the datagram (nothing past it is trusted).
    public static func lines(_ datagram: some Collection<UInt8>) -> [String] {
        let bytes = Array(datagram)
        var out: [String] = []
        var offset = 0
        while bytes.count - offset >= headerSize {
            // host byte order, as the kernel writes netlink headers
            let (length, type) = bytes.withUnsafeBytes {
                (
                    Int($0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)),
                    $0.loadUnaligned(fromByteOffset: offset + 4, as: UInt16.self)
                )
            }
            guard length >= headerSize, length <= bytes.count - offset else { break }
            if wanted.contains(type) {
                var text = bytes[(offset + headerSize)..<(offset + length)]
                while let last = text.last, last == 0 || last == 0x0A { text = text.dropLast() }
                if !text.isEmpty { out.append("type=\(type) " + String(decoding: text, as: UTF8.self)) }
            }
            offset += (length + 3) & ~3  // NLMSG_ALIGN
        }
        return out
    }
}
