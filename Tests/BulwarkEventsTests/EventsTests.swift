import BulwarkEvents
import BulwarkOCI
import BulwarkProfiles
import BulwarkTestSupport
import CBulwarkABI
import Foundation
import Testing

/// A ring-buffer record in the enforcer's own binary format, decoded by `BPFEvent(bytes:)`.
func record(
    action: Int32 = BULWARK_ACTION_DENIED, type: Int32, detail: UInt32, path: String = "", comm: String = "cat",
    configure: (inout bulwark_event) -> Void = { _ in }
) -> BPFEvent {
    var e = bulwark_event()
    e.action = UInt32(action)
    e.type = UInt32(type)
    e.mnt_ns = 4_026_532_637
    e.pid = 887_808
    e.ktime = 5_000_000_000
    e.profile = 3
    e.detail = detail
    withUnsafeMutableBytes(of: &e.path) { b in for (i, c) in path.utf8.enumerated() { b[i] = c } }
    withUnsafeMutableBytes(of: &e.comm) { b in for (i, c) in comm.utf8.enumerated() { b[i] = c } }
    configure(&e)
    return withUnsafeBytes(of: &e) { BPFEvent(bytes: $0)! }
}

@Suite("Violation events in vArmor's format")
struct EventsTests {
    /// vArmor's documented BPF example (reference/varmor.md §6.2), field for field and in order,
    /// plus `eventType` after `enforcer`.
    @Test func aBPFFileDenialMatchesVArmorsDocumentedEvent() throws {
        let token = "/run/secrets/kubernetes.io/serviceaccount/..2025_02_24_06_32_23.1519281840/token"
        let e = record(type: BULWARK_EVENT_FILE, detail: UInt32(BULWARK_PERM_READ), path: token)
        var c = ContainerIdentity()
        c.podUID = "be8ea9dd-28c0-4401-b1e5-09fa06b14761"
        c.podName = "demo-2-57cd6498bb-472vk"
        c.podNamespace = "demo"
        c.containerID = "fd808d9394a76680bd9f4de84413e6521cfc4e4c5097e0c6904b0f58e5f564cc"
        c.containerName = "c1"
        c.profileName = "varmor-demo-demo-2"
        c.policyKind = "VarmorPolicy"
        c.policyName = "demo-2"
        c.policyNamespace = "demo"
        let boot: UInt64 = 1_740_381_259 * 1_000_000_000
        let v = ViolationEvent(
            metadata: JSONObject([("varmorNamespace", .string("varmor")), ("clusterName", .string("prod"))]),
            nodeName: "192.168.0.24", container: c, pid: e.pid, mntNsID: e.mountNamespace,
            eventTimestamp: e.eventTimestamp(bootEpochNanoseconds: boot), enforcer: .bpf, action: e.action.rawValue,
            event: e.varmorBody)
        let line = String(decoding: v.line(time: rfc3339(unixSeconds: 1_740_381_264)), as: UTF8.self)
        let expected =
            #"{"level":"warn","metadata":{"varmorNamespace":"varmor","clusterName":"prod"},"nodeName":"192.168.0.24","#
            + #""podUID":"be8ea9dd-28c0-4401-b1e5-09fa06b14761","podName":"demo-2-57cd6498bb-472vk","podNamespace":"demo","#
            + #""containerID":"fd808d9394a76680bd9f4de84413e6521cfc4e4c5097e0c6904b0f58e5f564cc","containerName":"c1","#
            + #""image":"","pid":887808,"mntNsID":4026532637,"eventTimestamp":1740381264,"enforcer":"BPF","eventType":"BPF","#
            + #""action":"DENIED","profileName":"varmor-demo-demo-2","policyKind":"VarmorPolicy","policyName":"demo-2","#
            + #""policyNamespace":"demo","event":{"operation":"File","permissions":["read"],"path":"\#(token)"},"#
            + #""time":"2025-02-24T07:14:24Z","message":"violation event"}"# + "\n"
        #expect(line == expected)
    }

    /// The directly written line is JSON that reads back to the same values, for strings that need
    /// escaping (quotes, backslashes, control characters, non-ASCII) and extreme numbers, and the
    /// tree writer writes it back byte for byte.
    @Test func theDirectLineReadsBackExactly() throws {
        let odd = ["", "plain", "q\"uote", "back\\slash", "nl\ncr\rtab\t", "\u{01}\u{1f}\u{7f}", "ünï 🚀", "a/b"]
        var c = ContainerIdentity()
        for (i, s) in odd.enumerated() {
            c.podName = s
            c.containerName = odd[(i + 1) % odd.count]
            c.policyNamespace = odd[(i + 3) % odd.count]
            for (pid, ns, ts) in [(UInt32(0), UInt32(9), UInt64(10)), (.max, .max, .max), (1, 99, 1_740_381_264)] {
                let v = ViolationEvent(
                    metadata: JSONObject([("k\"", .string(s))]), nodeName: s, container: c, pid: pid, mntNsID: ns,
                    eventTimestamp: ts, enforcer: i % 2 == 0 ? .seccomp : .appArmor, action: "AUDIT|ALLOWED",
                    event: .object(JSONObject([("path", .string(s)), ("x", .null)])))
                let line = v.line(time: s)
                #expect(line.last == 0x0A && line.dropLast().allSatisfy { $0 != 0x0A }, "one line")
                let o = try #require(try JSONValue.parse(Array(line.dropLast())).object)
                #expect(o.keys.count == 22)
                #expect(o["podName"] == .string(s) && o["nodeName"] == .string(s) && o["time"] == .string(s))
                #expect(o["containerName"] == .string(c.containerName))
                #expect(o["policyNamespace"] == .string(c.policyNamespace))
                #expect(o["metadata"]?.object?["k\""] == .string(s))
                #expect(o["pid"]?.unsigned == UInt64(pid) && o["mntNsID"]?.unsigned == UInt64(ns))
                #expect(o["eventTimestamp"]?.unsigned == ts)
                #expect(o["event"]?.object?["path"] == .string(s))
                #expect(JSONValue.object(o).serialized() + [0x0A] == line)
            }
        }
    }

    @Test func networkBodies() {
        let connect = record(type: BULWARK_EVENT_NETWORK, detail: UInt32(BULWARK_NET_CONNECT)) { e in
            e.family = 2
            e.sock_type = 1
            e.protocol = 6
            e.port = 443
            withUnsafeMutableBytes(of: &e.addr) { b in for (i, x) in [10, 0, 0, 1].enumerated() { b[i] = UInt8(x) } }
        }
        #expect(
            connect.varmorBody.text
                == #"{"operation":"Network","type":"connect","socket":{"domain":"","type":"","protocol":""},"address":{"ip":"10.0.0.1","port":443}}"#
        )
        let socket = record(type: BULWARK_EVENT_NETWORK, detail: UInt32(BULWARK_NET_SOCKET)) { e in
            e.family = 10
            e.sock_type = 2
            e.protocol = 17
        }
        #expect(
            socket.varmorBody.text
                == #"{"operation":"Network","type":"socket","socket":{"domain":"AF_INET6","type":"SOCK_DGRAM","protocol":"IPPROTO_UDP"},"address":{"ip":"","port":0}}"#
        )
    }

    @Test func capabilityPtraceExecAndMountBodies() {
        #expect(
            record(type: BULWARK_EVENT_CAPABILITY, detail: 21).varmorBody.text
                == #"{"operation":"Capability","capability":"sys_admin"}"#)
        #expect(
            record(type: BULWARK_EVENT_CAPABILITY, detail: 99).varmorBody.text
                == #"{"operation":"Capability","capability":"unknown"}"#)
        let ptrace = record(type: BULWARK_EVENT_PTRACE, detail: UInt32(BULWARK_PTRACE_TRACEBY)) { $0.external = 1 }
        #expect(ptrace.varmorBody.text == #"{"operation":"Ptrace","permission":"traceby","external":true}"#)
        let exec = record(type: BULWARK_EVENT_EXEC, detail: UInt32(BULWARK_PERM_EXEC), path: "/bin/sh")
        #expect(exec.varmorBody.text == #"{"operation":"Bprm","permissions":["exec"],"path":"/bin/sh"}"#)
        let flags: [(UInt32, String)] = [
            (4096 | 16384, #"["rbind"]"#),
            (1 | 32 | 4096, #"["ro","remount","bind"]"#),
            (UInt32(1 << 18) | 16384, #"["make-rprivate"]"#),
            (UInt32(1 << 20), #"["make-shared"]"#),
            (UInt32(BULWARK_MOUNT_UMOUNT), #"["umount"]"#),
        ]
        for (f, names) in flags {
            let m = record(type: BULWARK_EVENT_MOUNT, detail: f, path: "/dev/sda1")
            #expect(m.varmorBody.text == #"{"operation":"Mount","path":"/dev/sda1","type":"none","flags":\#(names)}"#)
        }
    }

    /// A record as `/dev/kmsg` shows it on this machine's kernel (seccomp SCMP_ACT_LOG).
    @Test func seccompKernelLogRecord() throws {
        let line =
            #"6,1234,5678901,-;audit: type=1326 audit(1740621808.346:683): auid=4294967295 uid=0 gid=0 ses=4294967295 "#
            + #"subj=varmor-demo-demo-5 (enforce) pid=1448697 comm="unshare" exe="/usr/bin/unshare" sig=0 arch=c000003e "#
            + #"syscall=272 compat=0 ip=0x7f2b0c8e7a1b code=0x7ffc0000"#
        let r = try #require(SeccompAuditRecord(line: line))
        #expect(r.auditID == "1740621808.346:683" && r.epoch == 1_740_621_808)
        #expect(r.pid == 1_448_697 && r.comm == "unshare" && r.exe == "/usr/bin/unshare" && r.syscall == 272)
        #expect(r.subject == "varmor-demo-demo-5 (enforce)" && r.profileName == "varmor-demo-demo-5")
        #expect(
            r.body(syscallName: "unshare").text
                == #"{"auditID":"1740621808.346:683","epoch":1740621808,"subj":"varmor-demo-demo-5 (enforce)","pid":1448697,"comm":"unshare","exe":"/usr/bin/unshare","syscall":"unshare"}"#
        )
        let unconfined = try #require(
            SeccompAuditRecord(
                line: #"audit: type=SECCOMP audit(1.5:7): subj=unconfined pid=9 comm="a b" exe="/x" syscall=83"#))
        #expect(unconfined.profileName == nil && unconfined.comm == "a b" && unconfined.syscall == 83)
        #expect(
            SeccompAuditRecord(line: #"audit: type=1326 audit(1.5:7): pid=9 comm="x" exe="/x" syscall=83"#)?.subject
                == "")
        #expect(SeccompAuditRecord(line: "audit: type=1400 audit(1.5:7): apparmor=\"DENIED\" pid=9") == nil)
        #expect(SeccompAuditRecord(line: "audit: type=1326 audit(1.5:7): pid=9 comm=\"x\"") == nil, "no syscall")
        #expect(SeccompAuditRecord(line: "type=1326 pid=9 syscall=1") == nil, "no audit id")
    }

    @Test(arguments: [
        (Int64(0), "1970-01-01T00:00:00Z"), (951_782_400, "2000-02-29T00:00:00Z"),
        (1_740_381_264, "2025-02-24T07:14:24Z"), (4_102_444_799, "2099-12-31T23:59:59Z"),
        (-1, "1969-12-31T23:59:59Z"),
    ])
    func rfc3339Times(seconds: Int64, text: String) {
        #expect(rfc3339(unixSeconds: seconds) == text)
    }
}

/// The kernel's own format: a runc container whose filter logs `mkdir` (SCMP_ACT_LOG) leaves a
/// `type=1326` record in /dev/kmsg on this machine, and the parser reads it.
@Suite("Seccomp records from the kernel log")
struct KernelLogTests {
    static let runc = Needs.tool("/usr/sbin/runc", "/usr/bin/runc")
    static let needs = Needs(root: true, [runc, "/bin/busybox"], "needs root, runc and busybox-static")

    @Test(.needs(needs)) func aRealSeccompLogRecordParses() throws {
        guard Self.needs.check(), let runc = Self.runc else { return }
        let dir = NSTemporaryDirectory() + "bw-kmsg-\(UUID().uuidString.prefix(8))"
        for d in ["rootfs/bin", "rootfs/proc", "rootfs/tmp"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/\(d)", withIntermediateDirectories: true)
        }
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: dir + "/rootfs/bin/mkdir")
        let spec = JSONValue.object(
            JSONObject([
                ("ociVersion", .string("1.0.2")),
                (
                    "process",
                    .object(
                        JSONObject([
                            ("user", .object(JSONObject([("uid", .number(0)), ("gid", .number(0))]))),
                            ("args", .array(["/bin/mkdir", "/tmp/logged"].map(JSONValue.string))),
                            ("cwd", .string("/")),
                        ]))
                ),
                ("root", .object(JSONObject([("path", .string("rootfs"))]))),
                (
                    "mounts",
                    .array([
                        .object(
                            JSONObject([
                                ("destination", .string("/proc")), ("type", .string("proc")),
                                ("source", .string("proc")),
                            ]))
                    ])
                ),
                (
                    "linux",
                    .object(
                        JSONObject([
                            (
                                "namespaces",
                                .array(["pid", "mount"].map { .object(JSONObject([("type", .string($0))])) })
                            ),
                            (
                                "seccomp",
                                LinuxSeccomp(
                                    defaultAction: "SCMP_ACT_ALLOW",
                                    syscalls: [LinuxSyscall(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_LOG")]
                                ).json
                            ),
                        ]))
                ),
            ]))
        try Data(spec.serialized()).write(to: URL(fileURLWithPath: dir + "/config.json"))
        let kmsg = open("/dev/kmsg", O_RDONLY | O_NONBLOCK)
        guard kmsg >= 0 else {
            Issue.record("cannot open /dev/kmsg: errno \(errno)")
            return
        }
        defer { close(kmsg) }
        lseek(kmsg, 0, SEEK_END)  // only records from now on
        let p = Process()
        p.executableURL = URL(fileURLWithPath: runc)
        p.arguments = ["run", "--bundle", dir, "bw-kmsg-\(getpid())"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        #expect(p.terminationStatus == 0, "mkdir is only logged, not refused")
        var records: [SeccompAuditRecord] = []
        var buffer = [UInt8](repeating: 0, count: 8192)
        while true {
            let n = read(kmsg, &buffer, buffer.count)  // one record per read
            if n <= 0 { break }
            if let r = SeccompAuditRecord(line: String(decoding: buffer[0..<n], as: UTF8.self)) { records.append(r) }
        }
        let mkdir = try #require(records.first { $0.comm == "mkdir" }, "no seccomp record for mkdir in /dev/kmsg")
        #expect(mkdir.syscall == 83 || mkdir.syscall == 258, "mkdir or mkdirat on x86_64: \(mkdir.syscall)")
        #expect(mkdir.pid > 1 && mkdir.epoch > 1_600_000_000 && mkdir.exe == "/bin/mkdir")
    }
}

@Suite("Audit netlink datagrams")
struct AuditNetlinkTests {
    /// One `nlmsghdr` + text, as the kernel sends it (host byte order, padded to 4 bytes).
    static func message(type: UInt16, _ text: String, nul: Bool = true) -> [UInt8] {
        let payload = Array(text.utf8) + (nul ? [0] : [])
        var length = UInt32(16 + payload.count)
        var t = type
        var out = withUnsafeBytes(of: &length) { Array($0) } + withUnsafeBytes(of: &t) { Array($0) }
        out += [UInt8](repeating: 0, count: 10) + payload
        while out.count % 4 != 0 { out.append(0) }
        return out
    }

    static let avc =
        #"audit(1764700000.123:42): apparmor="ALLOWED" operation="open" class="file" profile="varmor-a" name="/etc/motd" pid=7 comm="cat" requested_mask="r" denied_mask="r" fsuid=0 ouid=0"#

    @Test func recordsBecomeKernelLogLinesThatTheSameParserReads() {
        let d =
            Self.message(type: 1400, Self.avc) + Self.message(type: 1300, "audit(1.2:3): arch=c000003e syscall=2")
            + Self.message(
                type: 1326, "audit(1764700000.5:43): auid=0 uid=0 pid=9 comm=\"sh\" syscall=83 code=0x7ffc0000")
        let lines = AuditNetlink.lines(d)
        #expect(lines.count == 2)  // SYSCALL (1300) is not read
        #expect(lines.first == "type=1400 " + Self.avc)
        guard case .appArmor(_, let action) = KernelLogLine(lines[0]) else {
            Issue.record("not read as AppArmor: \(lines[0])")
            return
        }
        #expect(action == "ALLOWED")
        guard case .seccomp(let r) = KernelLogLine(lines[1]) else {
            Issue.record("not read as seccomp: \(lines[1])")
            return
        }
        #expect(r.pid == 9 && r.syscall == 83)
    }

    @Test func aMalformedHeaderEndsTheDatagram() {
        let good = Self.message(type: 1400, Self.avc)
        var lying = Self.message(type: 1400, Self.avc)
        lying[0] = 0xff  // claims more bytes than there are
        lying[1] = 0xff
        #expect(AuditNetlink.lines(good + lying).count == 1)
        var short = Self.message(type: 1400, Self.avc)
        short[0] = 8  // shorter than its own header
        short[1] = 0
        #expect(AuditNetlink.lines(short + good).isEmpty)
        #expect(AuditNetlink.lines(Array(good.prefix(15))).isEmpty)
        #expect(AuditNetlink.lines(Self.message(type: 1400, "")).isEmpty)
        #expect(AuditNetlink.lines(Self.message(type: 1400, Self.avc, nul: false)).count == 1)
    }
}
