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
        withUnsafeMutableBytes(of: &v.compound) { buf in
            let words = buf.bindMemory(to: UInt64.self)
            for i in entry.compound where i < Int(BULWARK_COMPOUND_MAX) { words[i / 64] |= 1 << UInt64(i % 64) }
        }
        return v
    }

    public static func profileValue(_ p: BPFProfile, podSelfFirst: UInt32 = 0, generation: UInt32 = 0)
        -> bulwark_profile
    {
        var v = bulwark_profile()
        v.mode = p.mode == .enforce ? UInt32(BULWARK_PROFILE_ENFORCE) : UInt32(BULWARK_PROFILE_COMPLAIN)
        v.generation = generation
        v.cap_deny = bulwark_u64(p.capabilityDeny)
        v.cap_audit = bulwark_u64(p.capabilityAudit)
        v.ptrace_deny_strict = p.ptrace.denyStrict
        v.ptrace_deny_cross = p.ptrace.denyCross
        v.ptrace_audit_strict = p.ptrace.auditStrict
        v.ptrace_audit_cross = p.ptrace.auditCross
        v.pod_self_ranges_first = podSelfFirst
        v.pod_self_ranges_count = UInt32(p.podSelfRanges.count)
        v.mount_rules = UInt32(p.mounts.count)
        return v
    }
}
