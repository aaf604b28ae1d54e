import BulwarkPolicy
import CBulwarkABI

/// Encodes table rows into the exact bytes of the structs in `bulwark_abi.h` (the map keys and
/// values the enforcer writes). Swift sees the same header as the BPF programs, so layouts
/// agree by construction; tests still pin every size and offset.
public enum BPFTableEncoding {
    public static func bytes<T>(of value: T) -> [UInt8] {
        withUnsafeBytes(of: value) { Array($0) }
    }

    /// `struct bulwark_path_key` for a trie lookup/update. `reversed` for the suffix trie.
    public static func pathKey(profile: UInt32, entry: BPFProfile.PathEntry, reversed: Bool) -> bulwark_path_key? {
        let text = Array(entry.key.utf8)
        var path = (reversed ? Array(text.reversed()) : text)
        if entry.exact { path.append(0) }
        guard path.count <= Int(BULWARK_PATH_KEY_MAX) else { return nil }
        var key = bulwark_path_key()
        key.prefixlen = UInt32(32 + 8 + 8 * path.count)
        key.profile = profile.bigEndian
        key.kind = entry.kind.rawValue
        withUnsafeMutableBytes(of: &key.path) { buf in
            for (i, b) in path.enumerated() { buf[i] = b }
        }
        return key
    }

    public static func pathValue(_ entry: BPFProfile.PathEntry) -> bulwark_path_value {
        var v = bulwark_path_value()
        v.verdict.deny = entry.verdict.deny
        v.verdict.audit = entry.verdict.audit
        v.verdict.allow = entry.verdict.allow
        withUnsafeMutableBytes(of: &v.compound) { buf in
            let words = buf.bindMemory(to: UInt64.self)
            for i in entry.compound where i < Int(BULWARK_COMPOUND_MAX) { words[i / 64] |= 1 << UInt64(i % 64) }
        }
        return v
    }

    public static func profileValue(_ p: BPFProfile, podSelfFirst: UInt32 = 0)
        -> bulwark_profile
    {
        var v = bulwark_profile()
        v.mode = p.mode == .enforce ? UInt32(BULWARK_PROFILE_ENFORCE) : UInt32(BULWARK_PROFILE_COMPLAIN)
        for e in p.prefixes { v.path_tables |= 1 << (2 * UInt32(e.kind.rawValue)) }
        for e in p.suffixes { v.path_tables |= 1 << (2 * UInt32(e.kind.rawValue) + 1) }
        v.cap_deny = bulwark_u64(p.capabilityDeny)
        v.cap_audit = bulwark_u64(p.capabilityAudit)
        v.ptrace_deny_strict = p.ptrace.denyStrict
        v.ptrace_deny_cross = p.ptrace.denyCross
        v.ptrace_audit_strict = p.ptrace.auditStrict
        v.ptrace_audit_cross = p.ptrace.auditCross
        v.ptrace_allow_any = p.ptrace.allowAny
        v.ptrace_allow_inner = p.ptrace.allowInner
        v.cap_allow = bulwark_u64(p.capabilityAllow)
        v.allowlist = p.allowList.rawValue
        v.pod_self_ranges_first = podSelfFirst
        v.pod_self_ranges_count = UInt32(p.podSelfRanges.count)
        v.mount_rules = UInt32(p.mounts.count)
        return v
    }
}

/// Every map row of one version of a profile, as raw key/value bytes, ready to be written into
/// the enforcer's maps. `tables` is the table id all keys carry (see `bulwark_profile.tables`).
public struct BPFTableRows: Sendable, Equatable {
    public struct Row: Sendable, Equatable {
        public var key: [UInt8]
        public var value: [UInt8]
    }
    public var tables: UInt32
    public var profile: [UInt8]
    public var pathPrefix: [Row] = []
    public var pathSuffix: [Row] = []
    public var compound: [Row] = []
    public var sockets: [Row] = []
    public var egress4: [Row] = []
    public var egress6: [Row] = []
    public var portRanges: [Row] = []
    public var mounts: [Row] = []
    /// Rows the kernel tables cannot hold (over-long paths or patterns), for the operator.
    public var skipped: [String] = []

    public var count: Int {
        pathPrefix.count + pathSuffix.count + compound.count + sockets.count + egress4.count + egress6.count
            + portRanges.count + mounts.count
    }
}

extension BPFTableEncoding {
    /// Encodes every table of `p` under table id `tables`.
    public static func rows(_ p: BPFProfile, tables: UInt32) -> BPFTableRows {
        var portRanges: [BPFTableRows.Row] = []
        func addRanges(_ ranges: [BPFProfile.PortRangeMode]) -> UInt32 {
            let first = UInt32(portRanges.count)
            for r in ranges {
                var k = bulwark_port_range_key()
                k.profile = tables
                k.index = UInt32(portRanges.count)
                var v = bulwark_port_range()
                v.first = r.first
                v.last = r.last
                v.mode = r.mode
                portRanges.append(.init(key: bytes(of: k), value: bytes(of: v)))
            }
            return first
        }

        var out = BPFTableRows(tables: tables, profile: [])
        for (entries, reversed) in [(p.prefixes, false), (p.suffixes, true)] {
            for e in entries {
                guard let k = pathKey(profile: tables, entry: e, reversed: reversed) else {
                    out.skipped.append("path \"\(e.key.prefix(48))…\" is longer than \(BULWARK_PATH_KEY_MAX - 1) bytes")
                    continue
                }
                let row = BPFTableRows.Row(key: bytes(of: k), value: bytes(of: pathValue(e)))
                if reversed { out.pathSuffix.append(row) } else { out.pathPrefix.append(row) }
            }
        }
        for c in p.compound {
            guard c.index < Int(BULWARK_COMPOUND_MAX) else {
                out.skipped.append("compound pattern \(c.pattern): more than \(BULWARK_COMPOUND_MAX) per kind")
                continue
            }
            var k = bulwark_compound_key()
            k.profile = tables
            k.kind = UInt16(c.kind.rawValue)
            k.index = UInt16(c.index)
            var v = bulwark_verdict()
            v.deny = c.verdict.deny
            v.audit = c.verdict.audit
            v.allow = c.verdict.allow
            out.compound.append(.init(key: bytes(of: k), value: bytes(of: v)))
        }
        let any = UInt16(BULWARK_SOCKET_ANY)
        for s in p.sockets {
            var k = bulwark_socket_key()
            k.profile = tables
            k.family = s.family.map { UInt16($0) } ?? any
            k.type = s.type.map { UInt16($0) } ?? any
            k.protocol = s.protocol.map { UInt16($0) } ?? any
            var v = bulwark_verdict()
            v.deny = s.mode & 1 != 0 ? 1 : 0
            v.audit = s.mode & 2 != 0 ? 1 : 0
            v.allow = s.mode & 4 != 0 ? 1 : 0
            out.sockets.append(.init(key: bytes(of: k), value: bytes(of: v)))
        }
        for (entries, v6) in [(p.egress4, false), (p.egress6, true)] {
            for e in entries {
                guard let n = IPNetwork.cidr(e.network) ?? IPNetwork.host(e.network) else {
                    out.skipped.append("egress network \(e.network) does not parse")
                    continue
                }
                var value = bulwark_egress_value()
                value.ranges_first = addRanges(e.ranges)
                value.ranges_count = UInt32(e.ranges.count)
                if v6 {
                    var k = bulwark_egress6_key()
                    k.prefixlen = UInt32(32 + n.prefixLength)
                    k.profile = tables.bigEndian
                    withUnsafeMutableBytes(of: &k.addr) { b in
                        for (i, x) in n.bytes.prefix(16).enumerated() { b[i] = x }
                    }
                    out.egress6.append(.init(key: bytes(of: k), value: bytes(of: value)))
                } else {
                    var k = bulwark_egress4_key()
                    k.prefixlen = UInt32(32 + n.prefixLength)
                    k.profile = tables.bigEndian
                    withUnsafeMutableBytes(of: &k.addr) { b in for (i, x) in n.bytes.prefix(4).enumerated() { b[i] = x }
                    }
                    out.egress4.append(.init(key: bytes(of: k), value: bytes(of: value)))
                }
            }
        }
        let podSelfFirst = addRanges(p.podSelfRanges)
        var mountCount: UInt32 = 0
        for m in p.mounts {
            switch mountRule(m) {
            case .success(let rule):
                var k = bulwark_mount_key()
                k.profile = tables
                k.index = mountCount
                mountCount += 1
                out.mounts.append(.init(key: bytes(of: k), value: bytes(of: rule)))
            case .failure(let why):
                out.skipped.append(why.message)
            }
        }
        out.portRanges = portRanges
        var profile = profileValue(p, podSelfFirst: podSelfFirst)
        profile.mount_rules = mountCount
        profile.tables = tables
        out.profile = bytes(of: profile)
        return out
    }

    public struct EncodingError: Error, Sendable {
        public var message: String
    }

    /// `struct bulwark_mount_rule` for a mount rule: the source pattern as prefix/suffix with
    /// BULWARK_PATTERN_* flags (exact sources compare whole, unlike vArmor's prefix match).
    public static func mountRule(_ m: BPFProfile.Mount) -> Result<bulwark_mount_rule, EncodingError> {
        var r = bulwark_mount_rule()
        r.mode = UInt32(m.mode)
        r.flags = m.flags
        r.reverse_flags = m.reverseFlags
        let fstype = Array(m.fstype.utf8)
        guard fstype.count < Int(BULWARK_FSTYPE_MAX) else {
            return .failure(
                .init(message: "mount fstype \"\(m.fstype)\" is longer than \(BULWARK_FSTYPE_MAX - 1) bytes"))
        }
        withUnsafeMutableBytes(of: &r.fstype) { b in for (i, x) in fstype.enumerated() { b[i] = x } }
        let maxPart = Int(BULWARK_MOUNT_PATTERN_MAX) - 1
        guard case .success(let pattern) = PathPattern.parse(m.source, maxPart: maxPart) else {
            return .failure(.init(message: "mount source pattern \"\(m.source)\" does not fit the kernel table"))
        }
        var prefix: [UInt8] = []
        var suffix: [UInt8] = []
        switch pattern.form {
        case .exact(let text):
            r.pattern_flags = UInt32(BULWARK_PATTERN_PRECISE)
            prefix = Array(text.utf8)
        case .greedy(let p, let s), .basename(let p, let s):
            if case .basename = pattern.form { r.pattern_flags |= UInt32(BULWARK_PATTERN_BASENAME) }
            if !p.isEmpty { r.pattern_flags |= UInt32(BULWARK_PATTERN_PREFIX) }
            if !s.isEmpty { r.pattern_flags |= UInt32(BULWARK_PATTERN_SUFFIX) }
            prefix = Array(p.utf8)
            suffix = Array(s.utf8.reversed())
        }
        withUnsafeMutableBytes(of: &r.prefix) { b in for (i, x) in prefix.enumerated() { b[i] = x } }
        withUnsafeMutableBytes(of: &r.suffix) { b in for (i, x) in suffix.enumerated() { b[i] = x } }
        return .success(r)
    }
}
