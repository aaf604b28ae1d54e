import CBulwarkABI
import CLibBPF

#if canImport(Glibc)
    import Glibc
#endif

extension Enforcer {
    public enum Arming: UInt32, Sendable, Codable {
        /// Armed when task `pid` execs (the container's entrypoint): used by the OCI hook at
        /// createRuntime, while the runtime still sets the container up.
        case exec = 1
        /// Armed by the first checked operation in the namespace: for a process already running.
        case firstUse = 2
    }

    public struct Binding: Sendable, Codable, Equatable {
        public var namespace: UInt32
        public var profileID: UInt32
        public var profileName: String?
        public var arming: Arming?
        public var pid: UInt32
        public var armed: Bool
        public var instance: UInt64
    }

    /// Binds the mount namespace of `pid` to the loaded profile `profile`.
    @discardableResult
    public func bind(
        pid: Int32, profile: String, arming: Arming, podIPv4: [UInt8]? = nil, podIPv6: [UInt8]? = nil
    ) throws(EnforcerError) -> Binding {
        guard let ino = Self.namespaceInode(pid: pid) else {
            throw .errno("cannot read /proc/\(pid)/ns/mnt", hint: "is process \(pid) running?")
        }
        guard ino <= UInt64(UInt32.max) else { throw EnforcerError("namespace inode \(ino) does not fit 32 bits") }
        guard let id = try profileID(named: profile) else {
            throw EnforcerError(
                "no BPF profile named \(profile) is loaded", hint: "load it first: bulwark profile apply POLICY.yaml")
        }
        // Binding the host's mount namespace would confine the whole host once armed.
        if ino == Self.namespaceInode(pid: 1) || ino == Self.namespaceInode(pid: getpid()) {
            throw EnforcerError(
                "process \(pid) shares the host's mount namespace",
                hint: "only a process in its own mount namespace can be bound (OCI: linux.namespaces type mount)")
        }
        var b = bulwark_binding()
        b.profile = id
        b.arm = arming.rawValue
        b.pid = UInt32(pid)
        if let v4 = podIPv4, v4.count == 4 {
            b.flags |= UInt32(BULWARK_BINDING_POD_IP4)
            withUnsafeMutableBytes(of: &b.pod_ip4) { d in for (i, x) in v4.enumerated() { d[i] = x } }
        }
        if let v6 = podIPv6, v6.count == 16 {
            b.flags |= UInt32(BULWARK_BINDING_POD_IP6)
            withUnsafeMutableBytes(of: &b.pod_ip6) { d in for (i, x) in v6.enumerated() { d[i] = x } }
        }
        let ns = UInt32(ino)
        try map(BULWARK_MAP_BINDINGS).update(key: Bytes.of(ns), value: Bytes.of(b))
        // The process may have died and its inode been reused between the stat and the update.
        guard Self.namespaceInode(pid: pid) == ino else {
            _ = try? map(BULWARK_MAP_BINDINGS).delete(key: Bytes.of(ns))
            throw EnforcerError("process \(pid) exited while it was being bound")
        }
        return Binding(
            namespace: ns, profileID: id, profileName: profile, arming: arming, pid: UInt32(pid), armed: false,
            instance: 0)
    }

    /// Binds with the pod's addresses as text (`PodSandbox.ips`, the `bulwark.io/pod-ips`
    /// annotation): the first IPv4 and the first IPv6 address are the pod's own for `pod-self`.
    @discardableResult
    public func bind(pid: Int32, profile: String, arming: Arming, podIPs: [String]) throws(EnforcerError) -> Binding {
        let a = Self.podAddresses(podIPs)
        return try bind(pid: pid, profile: profile, arming: arming, podIPv4: a.v4, podIPv6: a.v6)
    }

    /// What `setPodAddresses` did.
    public enum PodAddressUpdate: Sendable, Equatable {
        case updated, unchanged
        /// Not armed yet: asked again later (see `setPodAddresses`).
        case notArmed
        case noBinding
    }

    /// Sets the pod's addresses (`pod-self`) of an existing binding: the agent does, from the API's
    /// pod status, for containers the OCI hook bound without them. Only an armed binding is
    /// rewritten: the kernel arms a binding by storing its `ns_instance` in place, once; a rewrite
    /// of an unarmed binding could undo an arming between the read and the write, and an entrypoint
    /// that is no longer exec'd would never arm it again. An armed binding is never written by the
    /// kernel, so the rewrite carries what was read; `BPF_EXIST` keeps a binding removed meanwhile
    /// removed.
    public func setPodAddresses(namespace: UInt32, podIPs: [String]) throws(EnforcerError) -> PodAddressUpdate {
        let m = try map(BULWARK_MAP_BINDINGS)
        guard let b = m.lookup(key: Bytes.of(namespace)).flatMap({ Bytes.load(bulwark_binding.self, from: $0) })
        else { return .noBinding }
        guard b.ns_instance != 0 else { return .notArmed }
        var next = b
        next.flags &= ~UInt32(BULWARK_BINDING_POD_IP4 | BULWARK_BINDING_POD_IP6)
        next.pod_ip4 = (0, 0, 0, 0)
        next.pod_ip6 = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        let a = Self.podAddresses(podIPs)
        if let v4 = a.v4 {
            next.flags |= UInt32(BULWARK_BINDING_POD_IP4)
            withUnsafeMutableBytes(of: &next.pod_ip4) { d in for (i, x) in v4.enumerated() { d[i] = x } }
        }
        if let v6 = a.v6 {
            next.flags |= UInt32(BULWARK_BINDING_POD_IP6)
            withUnsafeMutableBytes(of: &next.pod_ip6) { d in for (i, x) in v6.enumerated() { d[i] = x } }
        }
        if Bytes.of(next) == Bytes.of(b) { return .unchanged }
        do throws(EnforcerError) {
            try m.update(key: Bytes.of(namespace), value: Bytes.of(next), flags: UInt64(BPF_EXIST))
        } catch {
            if m.lookup(key: Bytes.of(namespace)) == nil { return .noBinding }
            throw error
        }
        return .updated
    }

    /// The first IPv4 and the first IPv6 address of a list (IPv4-mapped IPv6 counts as IPv4, as
    /// the enforcer compares); what is not an address is ignored.
    public static func podAddresses(_ list: [String]) -> (v4: [UInt8]?, v6: [UInt8]?) {
        var v4: [UInt8]?
        var v6: [UInt8]?
        for text in list {
            let s = String(text.drop { $0 == " " }.reversed().drop { $0 == " " }.reversed())
            var a4 = in_addr()
            var a6 = in6_addr()
            if inet_pton(AF_INET, s, &a4) == 1 {
                if v4 == nil { v4 = withUnsafeBytes(of: &a4) { Array($0) } }
            } else if inet_pton(AF_INET6, s, &a6) == 1 {
                let bytes = withUnsafeBytes(of: &a6) { Array($0) }
                if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                    if v4 == nil { v4 = Array(bytes[12..<16]) }
                } else if v6 == nil {
                    v6 = bytes
                }
            }
        }
        return (v4, v6)
    }

    /// Removes the binding of a namespace inode. Returns false if there was none.
    @discardableResult
    public func unbind(namespace: UInt32) throws(EnforcerError) -> Bool {
        try map(BULWARK_MAP_BINDINGS).delete(key: Bytes.of(namespace))
    }

    @discardableResult
    public func unbind(pid: Int32) throws(EnforcerError) -> Bool {
        guard let ino = Self.namespaceInode(pid: pid), ino <= UInt64(UInt32.max) else {
            throw .errno("cannot read /proc/\(pid)/ns/mnt", hint: "is process \(pid) running?")
        }
        return try unbind(namespace: UInt32(ino))
    }

    /// The binding of one namespace inode (one map lookup), without its profile name.
    public func binding(namespace: UInt32) -> Binding? {
        guard let m = try? map(BULWARK_MAP_BINDINGS),
            let b = m.lookup(key: Bytes.of(namespace)).flatMap({ Bytes.load(bulwark_binding.self, from: $0) })
        else { return nil }
        return Binding(
            namespace: namespace, profileID: b.profile, profileName: nil, arming: Arming(rawValue: b.arm),
            pid: b.pid, armed: b.ns_instance != 0, instance: UInt64(b.ns_instance))
    }

    public func bindings() -> [Binding] {
        guard let m = try? map(BULWARK_MAP_BINDINGS) else { return [] }
        let names = Dictionary(loadedProfiles().map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        var out: [Binding] = []
        for key in m.keys() {
            guard let ns = Bytes.load(UInt32.self, from: key),
                let b = m.lookup(key: key).flatMap({ Bytes.load(bulwark_binding.self, from: $0) })
            else { continue }
            out.append(
                Binding(
                    namespace: ns, profileID: b.profile, profileName: names[b.profile], arming: Arming(rawValue: b.arm),
                    pid: b.pid, armed: b.ns_instance != 0, instance: UInt64(b.ns_instance)))
        }
        return out.sorted { $0.namespace < $1.namespace }
    }
}
