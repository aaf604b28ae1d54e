import BulwarkAgent
import BulwarkEvents
import BulwarkHook
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import CBulwarkABI
import Foundation
import Testing

/// Kernel records in their real formats → vArmor events with the container's and policy's names.
@Suite("Event pipeline: attribution and vArmor format")
struct PipelineTests {
    func pipeline(_ node: Node) -> (EventPipeline, EventHub, PolicyStore) {
        let hub = EventHub(queueLimit: 4096, file: nil)
        let store = PolicyStore(config: node.config, logger: quietLogger)
        store.reload()
        let registry = ContainerRegistry(directory: node.config.containerStateDirectory)
        return (EventPipeline(config: node.config, registry: registry, store: store, hub: hub), hub, store)
    }

    @Test func aBPFRecordNamesItsPodContainerAndPolicy() throws {
        let node = try Node("bpf")
        defer { node.remove() }
        try node.write(policy: "web.yaml", shopPolicy)
        try node.writeRecord(record(id: "c0ffee", namespace: 4_026_532_637))
        let (p, _, _) = pipeline(node)
        let e = p.event(bpf: bpfRecord(namespace: 4_026_532_637))
        let json = e.json(time: "2026-11-29T00:00:00Z")
        let keys = json.object?.members.map(\.key) ?? []
        #expect(
            keys == [
                "level", "metadata", "nodeName", "podUID", "podName", "podNamespace", "containerID", "containerName",
                "image", "pid", "mntNsID", "eventTimestamp", "enforcer", "eventType", "action", "profileName",
                "policyKind", "policyName", "policyNamespace", "event", "time", "message",
            ])
        let o = try #require(json.object)
        #expect(o["metadata"]?.text == #"{"clusterName":"test-cluster","region":"lab","varmorNamespace":"varmor"}"#)
        #expect(o["nodeName"] == .string("node-a"))
        #expect(o["podName"] == .string("web-1"))
        #expect(o["podNamespace"] == .string("shop"))
        #expect(o["podUID"] == .string("uid-web-1"))
        #expect(o["containerID"] == .string("c0ffee"))
        #expect(o["containerName"] == .string("app"))
        #expect(o["image"] == .string("registry.local/web:1"))
        #expect(o["mntNsID"]?.text == "4026532637")
        #expect(o["enforcer"] == .string("BPF"))
        #expect(o["action"] == .string("DENIED"))
        // the enforcer is not loaded here: the profile name comes from the hook's record
        #expect(o["profileName"] == .string("varmor-shop-web"))
        #expect(o["policyKind"] == .string("VarmorPolicy"))
        #expect(o["policyName"] == .string("web"))
        #expect(o["policyNamespace"] == .string("shop"))
        #expect(o["event"]?.text == #"{"operation":"File","permissions":["read"],"path":"/etc/shadow"}"#)
    }

    @Test func aBPFRecordOfAnUnknownNamespaceKeepsEmptyNames() throws {
        let node = try Node("unknown")
        defer { node.remove() }
        let (p, hub, _) = pipeline(node)
        p.ingest(bpf: [bpfRecord(namespace: 77)])
        let o = try #require(p.event(bpf: bpfRecord(namespace: 77)).json(time: "t").object)
        #expect(o["containerID"] == .string(""))
        #expect(o["podName"] == .string(""))
        #expect(hub.counts.total == 1)
        #expect(hub.counts.unattributed == 1)
    }

    /// A record written after the pipeline started is found (the registry rescans on a miss).
    @Test func aContainerRecordedLaterIsFound() throws {
        let node = try Node("later")
        defer { node.remove() }
        try node.write(policy: "web.yaml", shopPolicy)
        let (p, _, _) = pipeline(node)
        #expect(p.event(bpf: bpfRecord(namespace: 5555)).container.containerID == "")
        try node.writeRecord(record(id: "later", namespace: 5555))
        #expect(p.event(bpf: bpfRecord(namespace: 5555)).container.containerID == "later")
    }

    /// `/dev/kmsg` form of a seccomp SCMP_ACT_LOG record; the pid's mount namespace (this test
    /// process's) leads to the record; libseccomp names syscall 272.
    @Test func aSeccompKernelRecordIsAttributedThroughItsPid() throws {
        let node = try Node("seccomp")
        defer { node.remove() }
        try node.write(policy: "web.yaml", shopPolicy)
        try node.writeRecord(record(id: "sc", namespace: ownMountNamespace()))
        let (p, _, _) = pipeline(node)
        let line =
            "5,2261,18343891473,-;audit: type=1326 audit(1795985569.945:9): auid=4294967295 uid=0 gid=0 "
            + "ses=4294967295 pid=\(getpid()) comm=\"unshare\" exe=\"/bin/busybox\" sig=0 arch=c000003e syscall=272 "
            + "compat=0 ip=0x4815c7 code=0x7ffc0000\n"
        let e = try #require(p.event(kernelLine: line))
        let o = try #require(e.json(time: "t").object)
        #expect(o["enforcer"] == .string("Seccomp"))
        #expect(o["action"] == .string("AUDIT|ALLOWED"))
        #expect(o["containerID"] == .string("sc"))
        #expect(o["podName"] == .string("web-1"))
        #expect(o["policyName"] == .string("web"))
        #expect(o["mntNsID"]?.text == "\(ownMountNamespace())")
        #expect(o["eventTimestamp"]?.text == "1795985569")
        #expect(
            o["event"]?.text
                == #"{"auditID":"1795985569.945:9","epoch":1795985569,"subj":"","pid":\#(getpid()),"comm":"unshare","exe":"/bin/busybox","syscall":"unshare"}"#
        )
    }

    /// The kernel's AppArmor record (`type=1400`, as /dev/kmsg and kern.log carry it) parsed by
    /// libapparmor; the profile comes from the label (child suffix stripped).
    @Test func anAppArmorKernelRecordIsParsedByLibapparmor() throws {
        let node = try Node("apparmor")
        defer { node.remove() }
        try node.write(policy: "web.yaml", shopPolicy)
        try node.writeRecord(record(id: "aa", namespace: ownMountNamespace()))
        let (p, _, _) = pipeline(node)
        let line =
            "5,3001,1000,-;audit: type=1400 audit(1669601552.623:916365): apparmor=\"DENIED\" operation=\"open\" "
            + "class=\"file\" profile=\"varmor-shop-web//child_0\" name=\"/etc/shadow\" pid=\(getpid()) comm=\"cat\" "
            + "requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0"
        let e = try #require(p.event(kernelLine: line))
        let o = try #require(e.json(time: "t").object)
        #expect(o["enforcer"] == .string("AppArmor"))
        #expect(o["action"] == .string("DENIED"))
        #expect(o["profileName"] == .string("varmor-shop-web"))
        #expect(o["policyName"] == .string("web"))
        #expect(o["containerID"] == .string("aa"))
        #expect(o["eventTimestamp"]?.text == "1669601552")
        let body = try #require(o["event"]?.object)
        #expect(body["operation"] == .string("open"))
        #expect(body["name"] == .string("/etc/shadow"))
        #expect(body["deniedMask"] == .string("r"))
        #expect(body["requestedMask"] == .string("r"))
        #expect(body["profile"] == .string("varmor-shop-web//child_0"))
        #expect(body["comm"] == .string("cat"))
        #expect(body["auditID"] == .string("1669601552.623:916365"))
        #expect(body["pid"]?.text == "\(getpid())")
        // vArmor's AppArmor body: the aa_log_record fields, camel-cased, in this order (§6.2)
        let order =
            "version event pid peerPID task magicToken epoch auditSubID bitMask auditID operation deniedMask "
            + "requestedMask fsuid ouid profile peerProfile comm name name2 namespace attribute parent info peerInfo "
            + "errorCode activeHat netFamily netProtocol netSockType netLocalAddr netLocalPort netForeignAddr "
            + "netForeignPort dbusBus dbusPath dbusInterface dbusMember signal peer fsType flags srcName"
        #expect(body.members.map(\.key) == order.split(separator: " ").map(String.init))

        // newer mediation classes: `requested=`/`denied=` (kernel 6.x), a network denial
        let net =
            "audit: type=1400 audit(1.2:3): apparmor=\"DENIED\" operation=\"connect\" class=\"net\" "
            + "info=\"failed af match\" error=-13 profile=\"varmor-shop-web\" pid=\(getpid()) comm=\"curl\" "
            + "family=\"inet\" sock_type=\"stream\" protocol=6 requested=\"connect\" denied=\"connect\""
        let n = try #require(p.event(kernelLine: net)?.json(time: "t").object?["event"]?.object)
        #expect(n["operation"] == .string("connect"))
        #expect(n["deniedMask"] == .string("connect"))
        #expect(n["netFamily"] == .string("inet"))
        #expect(n["netSockType"] == .string("stream"))
    }

    /// Issue 12 (3): a `name=` of 16 KiB or more in a followed log file corrupted libapparmor's
    /// heap and aborted the agent. Lines up to the cap parse (in this process: a corruption here
    /// would crash the test run); longer ones are counted and never reach the C parser.
    @Test func overlongAppArmorRecordsNeverReachLibapparmor() throws {
        let node = try Node("aa-long")
        defer { node.remove() }
        let (p, _, _) = pipeline(node)
        func line(nameBytes: Int) -> String {
            "audit: type=1400 audit(1.2:3): apparmor=\"DENIED\" operation=\"open\" class=\"file\" "
                + "profile=\"varmor-shop-web\" name=\"/" + String(repeating: "a", count: nameBytes)
                + "\" pid=1 comm=\"cat\" requested_mask=\"r\" denied_mask=\"r\" fsuid=0 ouid=0"
        }
        func normalized(_ n: Int) -> String {
            guard case .appArmor(let normalized, _) = KernelLogLine(line(nameBytes: n)) else { return "" }
            return normalized
        }
        for n in [100, 4000, 7900] {
            let name = try #require(AppArmorLog(normalized: normalized(n))?.body.object?["name"]?.string)
            #expect(name.utf8.count == n + 1)
        }
        let before = p.ignoredRecords
        for n in [8200, 16 << 10, 64 << 10, 1 << 20] {
            #expect(AppArmorLog(normalized: normalized(n)) == nil)
            #expect(p.event(kernelLine: line(nameBytes: n)) == nil)
        }
        #expect(p.ignoredRecords == before + 4)
    }

    /// Records of software Bulwark does not manage (no container record, no Bulwark profile) are
    /// counted, not published; other kernel lines are not records at all.
    @Test func otherSoftwaresRecordsAreCountedNotPublished() throws {
        let node = try Node("other")
        defer { node.remove() }
        let (p, hub, _) = pipeline(node)
        p.ingest(kernelLines: [
            "audit: type=1326 audit(1.2:3): pid=4194303 comm=\"x\" exe=\"/x\" syscall=1",
            "6,1,1,-;eth0: link up",
            "type=SECCOMP msg=audit(1.2:3): garbage without a pid",
        ])
        #expect(hub.counts.total == 0)
        #expect(p.ignoredRecords == 1)
    }

    @Test func kernelLogLinesAreClassified() {
        #expect(KernelLogLine("6,1,1,-;eth0: link up") == .other)
        #expect(KernelLogLine.kmsgSequence("5,2261,18343891473,-;audit: x") == 2261)
        if case .appArmor(let normalized, let action) = KernelLogLine(
            "Nov 29 kernel: [1.0] audit: type=1400 audit(1.5:7): apparmor=\"AUDIT\" operation=\"exec\"")
        {
            #expect(normalized.hasPrefix("type=AVC msg=audit(1.5:7):"))
            #expect(action == "AUDIT")
        } else {
            Issue.record("not classified as AppArmor")
        }
        // a STATUS record (profile load) is not a violation
        #expect(
            KernelLogLine("audit: type=1400 audit(1.5:7): apparmor=\"STATUS\" operation=\"profile_load\"") == .other)
    }
}

@Suite("Subscriber filters")
struct FilterTests {
    func event(action: String, enforcer: ViolationEvent.Enforcer, namespace: String, pod: String) -> ViolationEvent {
        var c = ContainerIdentity()
        c.podNamespace = namespace
        c.podName = pod
        c.containerName = "app"
        c.containerID = "id-\(pod)"
        return ViolationEvent(
            metadata: JSONObject(), nodeName: "n", container: c, pid: 1, mntNsID: 1, eventTimestamp: 1,
            enforcer: enforcer, action: action, event: .object(JSONObject()))
    }

    @Test func listsAreAlternativesAndFieldsAreAllRequired() throws {
        let f = try EventFilter(
            json: JSONValue.parse(#"{"action":["denied","AUDIT"],"namespace":"shop","enforcer":["bpf","seccomp"]}"#))
        #expect(f.matches(event(action: "DENIED", enforcer: .bpf, namespace: "shop", pod: "a")))
        #expect(f.matches(event(action: "AUDIT|ALLOWED", enforcer: .seccomp, namespace: "shop", pod: "a")))
        #expect(!f.matches(event(action: "DENIED", enforcer: .appArmor, namespace: "shop", pod: "a")))
        #expect(!f.matches(event(action: "DENIED", enforcer: .bpf, namespace: "other", pod: "a")))
        #expect(!f.matches(event(action: "ALLOWED", enforcer: .bpf, namespace: "shop", pod: "a")))
        let byContainer = try EventFilter(json: JSONValue.parse(#"{"container":["id-b"]}"#))
        #expect(byContainer.matches(event(action: "DENIED", enforcer: .bpf, namespace: "x", pod: "b")))
        #expect(!byContainer.matches(event(action: "DENIED", enforcer: .bpf, namespace: "x", pod: "c")))
        #expect(EventFilter().matches(event(action: "DENIED", enforcer: .bpf, namespace: "x", pod: "c")))
    }

    @Test func aTypoIsAnErrorNotAWiderFilter() throws {
        #expect(throws: EventFilter.Invalid.self) { try EventFilter(json: JSONValue.parse(#"{"namspace":"shop"}"#)) }
        #expect(throws: EventFilter.Invalid.self) { try EventFilter(json: JSONValue.parse(#"{"pod":[1]}"#)) }
        #expect(throws: EventFilter.Invalid.self) { try EventFilter(json: JSONValue.parse(#"["shop"]"#)) }
    }
}

@Suite("Rotating violation log")
struct RotatingFileTests {
    @Test func rotatesBySizeAndKeepsTheConfiguredBackups() throws {
        let node = try Node("rotate")
        defer { node.remove() }
        let path = node.dir + "/log/violations.log"
        let file = try RotatingFile(path: path, maxBytes: 4096, backups: 2)
        let line = Array(repeating: UInt8(ascii: "x"), count: 999) + [0x0A]
        for _ in 0..<20 { file.write([line]) }
        let fm = FileManager.default
        for p in [path, path + ".1", path + ".2"] {
            let size = try #require(try fm.attributesOfItem(atPath: p)[.size] as? Int)
            #expect(size > 0 && size <= 4096, "\(p): \(size) bytes")
            #expect(size % 1000 == 0, "\(p): whole lines only")
        }
        #expect(!fm.fileExists(atPath: path + ".3"))
        let perms = try #require(try fm.attributesOfItem(atPath: path)[.posixPermissions] as? Int)
        #expect(perms == 0o640)
        #expect(file.failures == 0)
    }
}

@Suite("Container records")
struct RegistryTests {
    /// The kernel's record of a container's last act can be read after poststop removed the
    /// container's record: it is still named for a grace period.
    @Test func aDepartedContainerStillNamesLateEvents() throws {
        let node = try Node("departed")
        defer { node.remove() }
        try node.writeRecord(record(id: "gone", namespace: 999))
        let registry = ContainerRegistry(directory: node.config.containerStateDirectory)
        #expect(registry.record(namespace: 999)?.id == "gone")
        try FileManager.default.removeItem(atPath: node.config.containerStateDirectory + "/gone.json")
        #expect(registry.records.isEmpty)
        #expect(registry.record(namespace: 999)?.id == "gone")
        // a planted record that is not a regular file of root's (a symlink) is not read
        try FileManager.default.createSymbolicLink(
            atPath: node.config.containerStateDirectory + "/evil.json", withDestinationPath: "/etc/hostname")
        #expect(registry.records.isEmpty)
    }
}
