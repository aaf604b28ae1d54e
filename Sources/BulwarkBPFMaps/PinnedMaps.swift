import CBulwarkABI
import CLibBPF

#if canImport(Glibc)
    import Glibc
#endif

/// A BPF error: what failed, the errno text, and what to do.
public struct EnforcerError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var hint: String?
    public init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }
    public var description: String { hint.map { "\(message)\nhint: \($0)" } ?? message }

    package static func errno(_ what: String, _ code: Int32 = Glibc.errno, hint: String? = nil) -> EnforcerError {
        EnforcerError("\(what): \(String(cString: strerror(code)))", hint: hint)
    }
}

/// One pinned map, addressed by raw key/value bytes.
public struct BPFMap: ~Copyable {
    public let name: String
    public let fd: Int32
    public let keySize: Int
    public let valueSize: Int

    public init(path: String, name: String) throws(EnforcerError) {
        let fd = bpf_obj_get(path)
        guard fd >= 0 else {
            throw .errno(
                "cannot open pinned map \(path)", hint: "load the enforcer first: bulwark enforcer load")
        }
        var info = bpf_map_info()
        var len = UInt32(MemoryLayout<bpf_map_info>.size)
        guard bpf_obj_get_info_by_fd(fd, &info, &len) == 0 else {
            let e = errno
            close(fd)
            throw .errno("cannot inspect pinned map \(path)", e)
        }
        self.name = name
        self.fd = fd
        self.keySize = Int(info.key_size)
        self.valueSize = Int(info.value_size)
    }

    deinit { close(fd) }

    public func update(key: [UInt8], value: [UInt8], flags: UInt64 = UInt64(BPF_ANY)) throws(EnforcerError) {
        guard key.count == keySize, value.count == valueSize else {
            throw EnforcerError(
                "\(name): row of \(key.count)/\(value.count) bytes, map wants \(keySize)/\(valueSize)",
                hint: "the pinned maps come from another Bulwark version: bulwark enforcer unload, then load")
        }
        let rc = key.withUnsafeBytes { k in
            value.withUnsafeBytes { v in bpf_map_update_elem(fd, k.baseAddress, v.baseAddress, flags) }
        }
        if rc != 0 { throw .errno("\(name): update failed", -rc) }
    }

    public func lookup(key: [UInt8]) -> [UInt8]? {
        var value = [UInt8](repeating: 0, count: valueSize)
        let rc = key.withUnsafeBytes { k in
            value.withUnsafeMutableBytes { v in bpf_map_lookup_elem(fd, k.baseAddress, v.baseAddress) }
        }
        return rc == 0 ? value : nil
    }

    @discardableResult
    public func delete(key: [UInt8]) -> Bool {
        key.withUnsafeBytes { bpf_map_delete_elem(fd, $0.baseAddress) } == 0
    }

    /// Every key (a snapshot; entries may change meanwhile).
    public func keys(limit: Int = 1 << 20) -> [[UInt8]] {
        var out: [[UInt8]] = []
        var next = [UInt8](repeating: 0, count: keySize)
        var current: [UInt8]? = nil
        while out.count < limit {
            let rc: Int32
            if let c = current {
                rc = c.withUnsafeBytes { k in
                    next.withUnsafeMutableBytes { n in bpf_map_get_next_key(fd, k.baseAddress, n.baseAddress) }
                }
            } else {
                rc = next.withUnsafeMutableBytes { n in bpf_map_get_next_key(fd, nil, n.baseAddress) }
            }
            if rc != 0 { break }
            out.append(next)
            current = next
        }
        return out
    }

    /// Sum of a per-CPU u64 array slot.
    public func perCPUSum(index: UInt32) -> UInt64 {
        let cpus = Int(libbpf_num_possible_cpus())
        guard cpus > 0 else { return 0 }
        var values = [UInt64](repeating: 0, count: cpus)
        var key = index
        let rc = values.withUnsafeMutableBytes { bpf_map_lookup_elem(fd, &key, $0.baseAddress) }
        return rc == 0 ? values.reduce(0, &+) : 0
    }
}

/// Typed views of fixed-layout structs as bytes.
package enum Bytes {
    package static func of<T>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v) { Array($0) } }
    package static func load<T>(_ type: T.Type, from bytes: [UInt8]) -> T? {
        guard bytes.count >= MemoryLayout<T>.size else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }
}
