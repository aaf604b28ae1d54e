import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import Foundation
import Testing

@Suite struct ModelTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func fixture(_ name: String) throws -> String {
        try String(contentsOf: fixtures.appendingPathComponent(name), encoding: .utf8)
    }

    @Test func recordedPathsGeneraliseAsTheCorpusSays() throws {
        let generaliser = PathGeneraliser()
        var rows = 0
        for line in try Self.fixture("paths.tsv").split(separator: "\n") where !line.hasPrefix("#") {
            let f = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            try #require(f.count == 3, "bad corpus line \(line)")
            #expect(generaliser.generalise(f[1], writes: f[0] == "w") == f[2], "\(f[1])")
            rows += 1
        }
        #expect(rows >= 40)
    }

    @Test func overlayPrefixesComeFromMountsAndTheirNumbersBecomeStars() throws {
        let prefixes = PathGeneraliser.overlayPrefixes(mounts: try Self.fixture("mounts.txt"))
        #expect(prefixes == ["/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/"])
        let g = PathGeneraliser(overlayPrefixes: prefixes)
        #expect(
            g.generalise(
                "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/4961/fs/etc/passwd", writes: false
            )
                == "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs/etc/passwd")
        // digits inside a name are not snapshot ids
        #expect(
            g.generalise(
                "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/7/fs/etc/nginx1.conf",
                writes: false)
                == "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/*/fs/etc/nginx1.conf")
    }

    @Test func aVArmorModelIsReadAndWrittenBackLosslessly() throws {
        let text = try Self.fixture("varmor-demo-demo-4.json")
        let models = try BehaviorModel.models(in: text, file: "varmor-demo-demo-4.json")
        let m = try #require(models.first)
        #expect(models.count == 1)
        #expect(m.name == "varmor-demo-demo-4" && m.namespace == "demo")
        let a = try #require(m.appArmor)
        #expect(a.executions == ["/bin/sleep", "/bin/dash", "/usr/bin/id"])
        #expect(a.files["/tmp/**"] == FileAccess(path: "/tmp/**", permissions: ["r", "w"], oldPath: "/tmp/x"))
        #expect(a.files["/etc/ld.so.cache"]?.owner == true)
        #expect(a.network.sockets == [SocketUse(domain: "inet", type: "raw", protocol: "icmp")])
        #expect(a.signals["varmor-demo-demo-4"]?.signals == ["term"])
        let b = try #require(m.bpf)
        #expect(b.network.egresses == ["10.96.0.10": [53]])
        #expect(b.ptraces == [true: ["read"]])
        #expect(b.mounts[MountUse(path: "/proc", type: "proc")] == ["nosuid"])
        #expect(m.seccomp?.syscalls == ["read", "write", "execve", "exit_group"])
        #expect(m.profile?["enforcer"] == .string("AppArmorSeccomp"))
        // written, read back: the same model; written twice: the same bytes
        let written = m.document.indented()
        let again = try #require(try BehaviorModel.models(in: written, file: "again").first)
        #expect(again == m)
        #expect(again.document.indented() == written)
        // and through YAML
        let yaml = m.document.yamlText()
        #expect(try BehaviorModel.models(in: yaml, file: "yaml").first == m)
    }

    @Test func mergeIsSetUnionWithOwnerAnded() throws {
        var a = BehaviorModel(name: "varmor-demo-x")
        var aa = AppArmorBehavior()
        aa.addFile(FileAccess(path: "/etc/hosts", owner: true, permissions: ["r"], oldPath: ""))
        aa.executions = ["/bin/sh"]
        a.appArmor = aa
        a.seccomp = SeccompBehavior(syscalls: ["read"])
        var b = BehaviorModel(name: "varmor-demo-x")
        var ab = AppArmorBehavior()
        ab.addFile(FileAccess(path: "/etc/hosts", owner: false, permissions: ["w"], oldPath: "/etc/hosts"))
        ab.executions = ["/bin/sh", "/bin/ls"]
        b.appArmor = ab
        var bpf = BPFBehavior()
        bpf.network.egresses = ["10.0.0.1": [80]]
        b.bpf = bpf
        b.seccomp = SeccompBehavior(syscalls: ["write"])
        var c = BehaviorModel(name: "varmor-demo-x")
        var bpf2 = BPFBehavior()
        bpf2.network.egresses = ["10.0.0.1": [443], "::1": [8080]]
        c.bpf = bpf2

        var ab1 = a
        ab1.merge(b)
        var ba = b
        ba.merge(a)
        #expect(ab1 == ba, "merge is commutative")
        #expect(
            ab1.appArmor?.files["/etc/hosts"]
                == FileAccess(path: "/etc/hosts", owner: false, permissions: ["r", "w"], oldPath: "/etc/hosts"))
        #expect(ab1.appArmor?.executions == ["/bin/sh", "/bin/ls"])
        #expect(ab1.seccomp?.syscalls == ["read", "write"])
        var abc = ab1
        abc.merge(c)
        // vArmor loses c's egresses when the model had no network yet; a union does not
        #expect(abc.bpf?.network.egresses == ["10.0.0.1": [80, 443], "::1": [8080]])
        var twice = abc
        twice.merge(abc)
        #expect(twice == abc, "merge is idempotent")
    }

    @Test(arguments: [
        (
            "{\"apiVersion\":\"v1\",\"kind\":\"ArmorProfileModel\",\"metadata\":{\"name\":\"x\"},\"data\":{}}",
            "apiVersion"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"Bad_Name"},"data":{}}"#,
            "metadata.name"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"x"},"data":{"dynamicResult":{"apparmor":{}}}}"#,
            "data.dynamicResult.apparmor"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"x"},"data":{"dynamicResult":{"appArmor":{"files":[{"path":"/etc/x,\n  /** rwx","permissions":["r"]}]}}}}"#,
            "data.dynamicResult.appArmor.files[0].path"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"x"},"data":{"dynamicResult":{"appArmor":{"files":[{"path":"etc/x","permissions":["r"]}]}}}}"#,
            "data.dynamicResult.appArmor.files[0].path"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"x"},"data":{"dynamicResult":{"bpf":{"network":{"egresses":[{"ip":"10.0.0.300","ports":[1]}]}}}}}"#,
            "data.dynamicResult.bpf.network.egresses[0].ip"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"x"},"data":{"dynamicResult":{"bpf":{"network":{"egresses":[{"ip":"10.0.0.3","ports":[70000]}]}}}}}"#,
            "data.dynamicResult.bpf.network.egresses[0].ports[0]"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"x"},"data":{"dynamicResult":{"seccomp":{"syscalls":["read", 3]}}}}"#,
            "data.dynamicResult.seccomp.syscalls[1]"
        ),
        (
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel","metadata":{"name":"x"},"storageType":"LocalDisk","data":{}}"#,
            "storageType"
        ),
    ])
    func modelsThatCannotBeUsedAreRefusedNamingTheMember(text: String, member: String) {
        do {
            _ = try BehaviorModel.models(in: text, file: "t.json")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.member == member, "\(error)")
        }
    }

    @Test func theStoreWritesAtomicallyAndRefusesAForeignName() throws {
        let dir = NSTemporaryDirectory() + "bw-models-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = ModelStore(directory: dir)
        #expect(try store.names() == [])
        #expect(try store.load("varmor-demo-a") == nil)
        var m = BehaviorModel(name: "varmor-demo-a")
        m.seccomp = SeccompBehavior(syscalls: ["read"])
        try store.save(m)
        #expect(try store.load("varmor-demo-a") == m)
        var more = BehaviorModel(name: "varmor-demo-a")
        more.seccomp = SeccompBehavior(syscalls: ["openat"])
        #expect(try store.merge(more).seccomp?.syscalls == ["read", "openat"])
        #expect(try store.names() == ["varmor-demo-a"])
        let st = try FileManager.default.attributesOfItem(atPath: dir + "/varmor-demo-a.json")
        #expect((st[.posixPermissions] as? Int) == 0o600)
        // a file whose content names another profile is not that profile's model
        try FileManager.default.copyItem(atPath: dir + "/varmor-demo-a.json", toPath: dir + "/varmor-demo-b.json")
        #expect(throws: ModelStore.Failure.self) { try store.load("varmor-demo-b") }
        #expect(throws: ModelStore.Failure.self) { try store.load("../etc/passwd") }
    }
}
