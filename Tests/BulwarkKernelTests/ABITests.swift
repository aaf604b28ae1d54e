import BulwarkBPF
import BulwarkBPFMaps
import BulwarkBPFObject
import BulwarkPolicy
import CBulwarkABI
import CLibBPF
import Foundation
import Testing

/// The C view (BTF of the object clang built for -target bpf) and the Swift view (the same
/// header imported by Swift for the host) of every shared struct agree on size and offsets.
/// Runs on any machine: opening an object and reading its BTF needs no kernel support.
@Suite("ABI: BPF object vs Swift")
struct ABITests {
    struct Field {
        var name: String
        var offset: Int
    }

    static func swiftView<T>(_ t: T.Type, _ fields: [(String, PartialKeyPath<T>)]) -> (Int, [Field]) {
        (MemoryLayout<T>.size, fields.map { Field(name: $0.0, offset: MemoryLayout<T>.offset(of: $0.1)!) })
    }

    static let structs: [String: (Int, [Field])] = [
        "bulwark_verdict": swiftView(
            bulwark_verdict.self, [("deny", \.deny), ("audit", \.audit), ("allow", \.allow), ("pad", \.pad)]),
        "bulwark_profile": swiftView(
            bulwark_profile.self,
            [
                ("mode", \.mode), ("path_tables", \.path_tables), ("cap_deny", \.cap_deny), ("cap_audit", \.cap_audit),
                ("ptrace_deny_strict", \.ptrace_deny_strict), ("ptrace_deny_cross", \.ptrace_deny_cross),
                ("ptrace_audit_strict", \.ptrace_audit_strict), ("ptrace_audit_cross", \.ptrace_audit_cross),
                ("pod_self_ranges_first", \.pod_self_ranges_first), ("pod_self_ranges_count", \.pod_self_ranges_count),
                ("mount_rules", \.mount_rules), ("tables", \.tables), ("allowlist", \.allowlist),
                ("ptrace_allow_any", \.ptrace_allow_any), ("ptrace_allow_inner", \.ptrace_allow_inner),
                ("pad", \.pad), ("cap_allow", \.cap_allow),
            ]),
        "bulwark_path_key": swiftView(
            bulwark_path_key.self,
            [("prefixlen", \.prefixlen), ("profile", \.profile), ("kind", \.kind), ("path", \.path)]),
        "bulwark_path_value": swiftView(bulwark_path_value.self, [("verdict", \.verdict), ("compound", \.compound)]),
        "bulwark_compound_key": swiftView(
            bulwark_compound_key.self, [("profile", \.profile), ("kind", \.kind), ("index", \.index)]),
        "bulwark_socket_key": swiftView(
            bulwark_socket_key.self,
            [("profile", \.profile), ("family", \.family), ("type", \.type), ("protocol", \.protocol), ("pad", \.pad)]),
        "bulwark_egress4_key": swiftView(
            bulwark_egress4_key.self, [("prefixlen", \.prefixlen), ("profile", \.profile), ("addr", \.addr)]),
        "bulwark_egress6_key": swiftView(
            bulwark_egress6_key.self, [("prefixlen", \.prefixlen), ("profile", \.profile), ("addr", \.addr)]),
        "bulwark_egress_value": swiftView(
            bulwark_egress_value.self, [("ranges_first", \.ranges_first), ("ranges_count", \.ranges_count)]),
        "bulwark_port_range_key": swiftView(bulwark_port_range_key.self, [("profile", \.profile), ("index", \.index)]),
        "bulwark_port_range": swiftView(
            bulwark_port_range.self, [("first", \.first), ("last", \.last), ("mode", \.mode), ("pad", \.pad)]),
        "bulwark_mount_key": swiftView(bulwark_mount_key.self, [("profile", \.profile), ("index", \.index)]),
        "bulwark_mount_rule": swiftView(
            bulwark_mount_rule.self,
            [
                ("mode", \.mode), ("flags", \.flags), ("reverse_flags", \.reverse_flags),
                ("pattern_flags", \.pattern_flags), ("fstype", \.fstype), ("prefix", \.prefix), ("suffix", \.suffix),
            ]),
        "bulwark_binding": swiftView(
            bulwark_binding.self,
            [
                ("ns_instance", \.ns_instance), ("profile", \.profile), ("arm", \.arm), ("pid", \.pid),
                ("flags", \.flags), ("pod_ip4", \.pod_ip4), ("pod_ip6", \.pod_ip6), ("pad", \.pad),
            ]),
        "bulwark_name_key": swiftView(bulwark_name_key.self, [("name", \.name)]),
        "bulwark_meta": swiftView(
            bulwark_meta.self,
            [
                ("abi_version", \.abi_version), ("next_tables", \.next_tables), ("object_id", \.object_id),
                ("loaded_at", \.loaded_at),
            ]),
        "bulwark_event": swiftView(
            bulwark_event.self,
            [
                ("action", \.action), ("type", \.type), ("mnt_ns", \.mnt_ns), ("pid", \.pid), ("ktime", \.ktime),
                ("profile", \.profile), ("detail", \.detail), ("family", \.family), ("sock_type", \.sock_type),
                ("protocol", \.protocol), ("port", \.port), ("addr", \.addr), ("peer", \.peer),
                ("external", \.external), ("fstype", \.fstype), ("comm", \.comm), ("path", \.path),
            ]),
    ]

    /// (size, [member name: byte offset]) of a struct in the object's BTF.
    static func btfView(_ name: String, in btf: OpaquePointer) -> (Int, [String: Int])? {
        let id = btf__find_by_name_kind(btf, name, UInt32(BTF_KIND_STRUCT))
        guard id > 0, let t = btf__type_by_id(btf, UInt32(id)) else { return nil }
        var members: [String: Int] = [:]
        let count = Int(btf_vlen(t))
        let first = btf_members(t)!
        for i in 0..<count {
            let m = first[i]
            let memberName = String(cString: btf__name_by_offset(btf, m.name_off))
            members[memberName] = Int(btf_member_bit_offset(t, UInt32(i))) / 8
        }
        return (Int(t.pointee.size), members)
    }

    @Test func everySharedStructHasTheSameLayoutInCAndSwift() throws {
        let object = BPFObject.bulwark
        #expect(object.count > 1000, "the build embedded no BPF object")
        try object.withUnsafeBytes { raw in
            var opts = bpf_object_open_opts()
            opts.sz = MemoryLayout<bpf_object_open_opts>.size
            let obj = try #require(bpf_object__open_mem(raw.baseAddress, raw.count, &opts))
            defer { bpf_object__close(obj) }
            let btf = try #require(bpf_object__btf(obj))
            for (name, (size, fields)) in Self.structs.sorted(by: { $0.key < $1.key }) {
                guard let (cSize, cMembers) = Self.btfView(name, in: btf) else {
                    Issue.record("struct \(name) is not in the object's BTF (unused by the programs?)")
                    continue
                }
                #expect(cSize == size, "\(name): C \(cSize) bytes, Swift \(size)")
                #expect(Set(cMembers.keys) == Set(fields.map(\.name)), "\(name): member names differ")
                for f in fields {
                    #expect(
                        cMembers[f.name] == f.offset,
                        "\(name).\(f.name): C \(cMembers[f.name] ?? -1), Swift \(f.offset)")
                }
            }
        }
    }

    @Test func theObjectHasOneLSMProgramPerHook() throws {
        let object = BPFObject.bulwark
        try object.withUnsafeBytes { raw in
            var opts = bpf_object_open_opts()
            opts.sz = MemoryLayout<bpf_object_open_opts>.size
            let obj = try #require(bpf_object__open_mem(raw.baseAddress, raw.count, &opts))
            defer { bpf_object__close(obj) }
            var names: [String] = []
            var sections: [String] = []
            var p = bpf_object__next_program(obj, nil)
            while let prog = p {
                names.append(String(cString: bpf_program__name(prog)))
                sections.append(String(cString: bpf_program__section_name(prog)))
                p = bpf_object__next_program(obj, prog)
            }
            #expect(Set(names) == Set(Enforcer.programs))
            #expect(sections.allSatisfy { $0.hasPrefix("lsm/") })
        }
    }
}

/// Runs anywhere: every policy `bulwark selftest` loads is valid vArmor YAML (a case whose policy
/// does not validate would only show as a FAIL on a kernel with BPF LSM).
@Suite("Selftest policies")
struct SelftestPolicyTests {
    @Test func everyCaseInEveryModeValidates() {
        for c in Selftest.cases {
            for mode in Selftest.Mode.allCases {
                let r = PolicyParser.inline(Selftest.policyYAML(c, mode, dir: "/tmp/d"), name: "selftest")
                #expect(r.isValid, "\(c.name) [\(mode.rawValue)]: \(r.errors.map(\.description))")
                if c.allowList && mode != .complain {
                    #expect(r.policies.first?.spec.policy.mode == .defenseInDepth, "\(c.name)")
                }
            }
        }
    }
}
