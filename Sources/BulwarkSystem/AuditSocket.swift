#if canImport(Glibc)
    import Glibc
#endif

/// A socket on the kernel audit's read-only multicast group (`NETLINK_AUDIT`,
/// `AUDIT_NLGRP_READLOG`, since Linux 3.16): every audit record, whether or not auditd runs, and
/// not rate-limited as the kernel log is. Needs CAP_AUDIT_READ and the initial network namespace
/// (the kernel multicasts audit records there only). Datagrams are bounded; a record the kernel
/// could not queue is reported as `ENOBUFS` by `receive`, counted by the caller.
public final class AuditSocket {
    public let descriptor: Int32
    /// The largest datagram read (an audit record is at most 8 KiB: MAX_AUDIT_MESSAGE_LENGTH).
    public static let datagramBytes = 16384

    /// `NETLINK_AUDIT`.
    static let netlinkAudit: Int32 = 9

    public init(group: UInt32, receiveBufferBytes: Int32 = 8 << 20) throws(Errno) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Self.netlinkAudit)
        guard fd >= 0 else { throw Errno.current }
        // struct sockaddr_nl { sa_family_t nl_family; unsigned short nl_pad; __u32 nl_pid; __u32 nl_groups; }
        var address = [UInt8](repeating: 0, count: 12)
        address.withUnsafeMutableBytes { b in
            b.storeBytes(of: UInt16(AF_NETLINK), toByteOffset: 0, as: UInt16.self)
            b.storeBytes(of: group, toByteOffset: 8, as: UInt32.self)
        }
        let bound = address.withUnsafeBytes { b in
            bind(fd, b.baseAddress!.assumingMemoryBound(to: sockaddr.self), socklen_t(b.count))
        }
        guard bound == 0 else {
            let e = Errno.current
            close(fd)
            throw e
        }
        // a large queue for bursts (root may exceed rmem_max; otherwise the default stays)
        var size = receiveBufferBytes
        if setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, socklen_t(MemoryLayout<Int32>.size)) != 0 {
            _ = setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, socklen_t(MemoryLayout<Int32>.size))
        }
        descriptor = fd
    }

    deinit { close(descriptor) }

    /// The next datagram into `buffer` (resized to `datagramBytes`): its length, 0 when none came
    /// within `timeoutMilliseconds`. Throws ENOBUFS when the kernel dropped records (queue full).
    public func receive(into buffer: inout [UInt8], timeoutMilliseconds: Int32) throws(Errno) -> Int {
        if buffer.count < Self.datagramBytes { buffer = [UInt8](repeating: 0, count: Self.datagramBytes) }
        var p = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
        let ready = try Errno.retrying { poll(&p, 1, timeoutMilliseconds) }
        guard ready > 0 else { return 0 }
        let fd = descriptor
        let received = buffer.withUnsafeMutableBytes { b in
            Result { () throws(Errno) in try Errno.retrying { recv(fd, b.baseAddress, b.count, Int32(MSG_DONTWAIT)) } }
        }
        switch received {
        case .success(let n): return n
        case .failure(let e) where e == .wouldBlock: return 0
        case .failure(let e): throw e
        }
    }
}
