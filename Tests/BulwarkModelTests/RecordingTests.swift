import BulwarkModel
import BulwarkOCI
import Testing

/// Recorded events (the `event` bodies Bulwark's pipeline writes for AppArmor and BPF records) into
/// model entries, as vArmor's preprocessor turns them (reference/varmor.md §7.3).
@Suite struct RecordingTests {
    static func body(_ members: [(String, JSONValue)]) -> JSONObject { JSONObject(members) }

    @Test func appArmorRecordsBecomeModelEntries() {
        var m = BehaviorModel(name: "varmor-demo-web")
        let g = PathGeneraliser()
        let p: (String, JSONValue) = ("profile", .string("varmor-demo-web"))
        let records: [JSONObject] = [
            Self.body([
                p, ("operation", .string("exec")), ("name", .string("/usr/bin/id")), ("deniedMask", .string("x")),
            ]),
            Self.body([
                p, ("operation", .string("open")), ("name", .string("/etc/passwd")), ("deniedMask", .string("r")),
                ("requestedMask", .string("r")), ("fsuid", .number(0)), ("ouid", .number(0)),
            ]),
            // c is a write; a path another uid owns is not owner-only
            Self.body([
                p, ("operation", .string("mknod")), ("name", .string("/tmp/pip-xyz/build.log")),
                ("deniedMask", .string("c")), ("fsuid", .number(1000)), ("ouid", .number(0)),
            ]),
            Self.body([
                p, ("operation", .string("file_mmap")), ("name", .string("/lib/x86_64-linux-gnu/libc.so.6")),
                ("deniedMask", .string("mr")), ("fsuid", .number(0)), ("ouid", .number(0)),
            ]),
            Self.body([p, ("operation", .string("capable")), ("name", .string("net_raw"))]),
            Self.body([
                ("profile", .string("varmor-demo-web//child_0")), ("operation", .string("create")),
                ("netFamily", .string("inet")), ("netSockType", .string("raw")), ("netProtocol", .string("icmp")),
            ]),
            Self.body([
                p, ("operation", .string("signal")), ("requestedMask", .string("send")), ("signal", .string("term")),
                ("peer", .string("varmor-demo-web//null-/usr/bin/top")),
            ]),
            Self.body([p, ("operation", .string("dbus_method_call")), ("name", .string("org.example"))]),
        ]
        for r in records {
            let accepted = m.addAppArmor(r, generaliser: g)
            #expect(accepted)
        }
        // another profile's record is not this model's
        let foreign = m.addAppArmor(
            Self.body([("profile", .string("varmor-demo-other")), ("operation", .string("exec"))]), generaliser: g)
        #expect(!foreign)
        let a = m.appArmor!
        #expect(a.profiles == ["varmor-demo-web", "varmor-demo-web//child_0"])
        #expect(a.executions == ["/usr/bin/id"])
        #expect(a.files["/etc/passwd"] == FileAccess(path: "/etc/passwd", owner: true, permissions: ["r"]))
        #expect(
            a.files["/tmp/**"]
                == FileAccess(path: "/tmp/**", owner: false, permissions: ["w"], oldPath: "/tmp/pip-xyz/build.log"))
        #expect(a.files["/lib/x86_64-linux-gnu/**"]?.permissions == ["m", "r"])
        #expect(a.capabilities == ["net_raw"])
        #expect(a.network.sockets == [SocketUse(domain: "inet", type: "raw", protocol: "icmp")])
        #expect(a.signals["varmor-demo-web"] == SignalUse(permissions: ["send"], signals: ["term"]))
        #expect(a.unhandled == [#"operation="dbus_method_call" name="org.example""#])
    }

    @Test func bpfRecordsBecomeModelEntries() {
        var m = BehaviorModel(name: "varmor-demo-web")
        let g = PathGeneraliser()
        let records: [JSONObject] = [
            Self.body([("operation", .string("Capability")), ("capability", .string("chown"))]),
            Self.body([
                ("operation", .string("Bprm")), ("permissions", .array([.string("exec")])),
                ("path", .string("/bin/sh")),
            ]),
            Self.body([
                ("operation", .string("File")), ("permissions", .array([.string("read")])),
                ("path", .string("/proc/4711/status")),
            ]),
            Self.body([
                ("operation", .string("File")), ("permissions", .array([.string("write"), .string("read")])),
                ("path", .string("/data/3f2504e0-4f89-11d3-9a0c-0305e82c3301.db")),
            ]),
            Self.body([
                ("operation", .string("Network")), ("type", .string("socket")),
                (
                    "socket",
                    .object(
                        JSONObject([
                            ("domain", .string("AF_INET")), ("type", .string("SOCK_STREAM")),
                            ("protocol", .string("IPPROTO_TCP")),
                        ]))
                ), ("address", .object(JSONObject([("ip", .string("")), ("port", .number(0))]))),
            ]),
            Self.body([
                ("operation", .string("Network")), ("type", .string("connect")),
                ("address", .object(JSONObject([("ip", .string("10.96.0.10")), ("port", .number(53))]))),
            ]),
            Self.body([
                ("operation", .string("Network")), ("type", .string("connect")),
                ("address", .object(JSONObject([("ip", .string("10.96.0.10")), ("port", .number(443))]))),
            ]),
            Self.body([("operation", .string("Ptrace")), ("permission", .string("read")), ("external", .bool(true))]),
            Self.body([
                ("operation", .string("Mount")), ("path", .string("/mnt")), ("type", .string("tmpfs")),
                ("flags", .array([.string("nosuid")])),
            ]),
        ]
        for r in records { m.addBPF(r, generaliser: g) }
        let b = m.bpf!
        #expect(b.capabilities == ["chown"])
        #expect(b.executions == ["/bin/sh"])
        #expect(b.files["/proc/*/status"]?.oldPath == "/proc/4711/status")
        #expect(b.files["/data/*.db"]?.permissions == ["read", "write"])
        #expect(b.network.sockets == [SocketUse(domain: "AF_INET", type: "SOCK_STREAM", protocol: "IPPROTO_TCP")])
        #expect(b.network.egresses == ["10.96.0.10": [53, 443]])
        #expect(b.ptraces == [true: ["read"]])
        #expect(b.mounts[MountUse(path: "/mnt", type: "tmpfs")] == ["nosuid"])
    }

    /// `bulwark model suggest`: the allowed violations of one profile since a time, as model entries.
    @Test func allowedViolationsBecomeASuggestion() throws {
        let lines = [
            #"{"profileName":"varmor-demo-web","enforcer":"Seccomp","action":"AUDIT|ALLOWED","eventTimestamp":200,"event":{"syscall":"unshare"}}"#,
            #"{"profileName":"varmor-demo-web","enforcer":"AppArmor","action":"ALLOWED","eventTimestamp":210,"event":{"profile":"varmor-demo-web","operation":"open","name":"/etc/shadow","deniedMask":"r","requestedMask":"r","fsuid":0,"ouid":0}}"#,
            #"{"profileName":"varmor-demo-web","enforcer":"BPF","action":"ALLOWED","eventTimestamp":220,"event":{"operation":"Network","type":"connect","address":{"ip":"192.0.2.7","port":8443}}}"#,
            // denied (enforcing): not something observation mode let through
            #"{"profileName":"varmor-demo-web","enforcer":"Seccomp","action":"DENIED","eventTimestamp":230,"event":{"syscall":"ptrace"}}"#,
            // another profile, and one before --since
            #"{"profileName":"varmor-demo-db","enforcer":"Seccomp","action":"AUDIT|ALLOWED","eventTimestamp":240,"event":{"syscall":"mount"}}"#,
            #"{"profileName":"varmor-demo-web","enforcer":"Seccomp","action":"AUDIT|ALLOWED","eventTimestamp":100,"event":{"syscall":"bpf"}}"#,
        ]
        let events = try lines.map { try #require(try JSONValue.parse($0).object) }
        let (m, used) = BehaviorModel.suggestion(
            for: "varmor-demo-web", from: events, since: 150, generaliser: PathGeneraliser())
        #expect(used == 3)
        #expect(m.seccomp?.syscalls == ["unshare"])
        #expect(m.appArmor?.files["/etc/shadow"]?.permissions == ["r"])
        #expect(m.bpf?.network.egresses == ["192.0.2.7": [8443]])
    }
}
