import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkStart
import Foundation
import Testing

/// The start path's pure parts: the start index (what `bulwark-runtime` decides from) and the spec
/// patcher, with golden outputs for the specs runc, crun, podman and containerd write.
@Suite("Start index and spec patcher")
struct StartPathTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static let policies = """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorClusterPolicy
        metadata: {name: web}
        spec:
          target: {kind: Container, selector: {matchLabels: {bulwark.io/policy: web}}}
          policy:
            enforcer: AppArmorBPFSeccomp
            mode: EnhanceProtect
            enhanceProtect:
              hardeningRules: [disallow-create-user-ns, disallow-mount]
        ---
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorPolicy
        metadata: {name: db, namespace: default}
        spec:
          target: {kind: Container, name: db}
          policy: {enforcer: Seccomp, mode: RuntimeDefault}
        ---
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorPolicy
        metadata: {name: pods, namespace: shop}
        spec:
          target: {kind: Deployment, name: web}
          policy: {enforcer: BPF, mode: AlwaysAllow}
        """

    static func index(_ text: String = policies, enforcers: EnforcerSet = [.seccomp, .appArmor, .bpf]) -> StartIndex {
        var config = NodeConfig()
        config.enforcers = enforcers
        config.bpfPinPath = "/sys/fs/bpf/bulwark"
        return StartIndexPublisher.build(
            config: config, configPath: "/etc/bulwark/bulwark.yaml",
            stamps: [.init(path: "/etc/bulwark/bulwark.yaml", identity: [1, 2, 3, 4, 5])],
            policies: PolicyParser.parse(text, file: "p.yaml").policies, rejected: [])
    }

    /// A BehaviorModeling policy records (vArmor's LOG profile where the kernel recorder is not
    /// pinned); once its model says the window closed, the index — also when `bulwark deliver`
    /// builds it from the files — allows everything and records nothing.
    @Test func aCompletedRecordingIsAlwaysAllowInTheIndex() throws {
        let dir = NSTemporaryDirectory() + "bw-idx-models-\(UUID().uuidString.prefix(6))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var config = NodeConfig()
        config.enforcers = [.seccomp]
        config.bpfPinPath = "/nonexistent/bulwark"
        config.modelDirectory = dir
        let policies = PolicyParser.parse(
            """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorClusterPolicy
            metadata: {name: learn}
            spec:
              target: {kind: Container, selector: {matchLabels: {app: x}}}
              policy: {enforcer: Seccomp, mode: BehaviorModeling, modelingOptions: {duration: 5}}
            """, file: "l.yaml"
        ).policies
        func entry() throws -> StartIndex.Entry {
            try #require(
                StartIndexPublisher.build(
                    config: config, configPath: "/x.yaml", stamps: [], policies: policies, rejected: []
                ).entries.first)
        }
        let recording = try entry()
        #expect(recording.recording)
        #expect(recording.seccompProfile?.object?["defaultAction"] == .string("SCMP_ACT_LOG"))
        var model = BehaviorModel(name: "varmor-cluster-varmor-learn")
        RecordingWindow(started: 1, completed: 2).store(in: &model)
        try ModelStore(directory: dir).save(model)
        let done = try entry()
        #expect(!done.recording)
        #expect(done.seccompProfile?.object?["defaultAction"] == .string("SCMP_ACT_ALLOW"))
    }

    @Test func theIndexHoldsStandalonePoliciesAndRoundTrips() throws {
        let index = Self.index()
        #expect(index.entries.map(\.policy) == ["web", "default/db"], "cluster first, pod policies left out")
        let web = try #require(index.entries.first)
        #expect(web.seccomp && web.appArmor && web.bpf && web.failurePolicy == "Fail")
        #expect(web.seccompProfile != nil)
        #expect(try StartIndex(json: JSONValue.parse(index.json.serialized())) == index)
        // a node that does not run AppArmor: the entry says so
        #expect(Self.index(enforcers: [.seccomp]).entries.first.map { !$0.appArmor && !$0.bpf } == true)
        // an index of another format version is refused, not half-read
        var other = index.json.object!
        other["version"] = .number(99)
        #expect(throws: StartIndex.FormatError.self) { try StartIndex(json: .object(other)) }
    }

    @Test func staleOrForeignIndexesAreNotCurrent() {
        let index = Self.index()
        let same: (String) -> [Int64]? = { _ in [1, 2, 3, 4, 5] }
        #expect(index.isCurrent(configPath: "/etc/bulwark/bulwark.yaml", identity: same))
        #expect(!index.isCurrent(configPath: "/etc/bulwark/bulwark.yaml", identity: { _ in [1, 2, 3, 4, 6] }))
        #expect(!index.isCurrent(configPath: "/etc/bulwark/bulwark.yaml", identity: { _ in nil }))
        #expect(!index.isCurrent(configPath: "/other.yaml", identity: same))
        #expect(StartIndex.location(configPath: "/a.yaml") != StartIndex.location(configPath: "/b.yaml"))
        #expect(StartIndex.location(configPath: "/a.yaml").hasPrefix("/run/bulwark/start/"))
        #expect(StartIndex.defaultConfigPath == NodeConfig.defaultPath)
        #expect(StartIndex.configVariable == NodeConfig.environmentVariable)
    }

    /// The index decides standalone containers exactly as the decision engine does, on random
    /// policy sets and containers.
    @Test func theIndexDecidesAsTheEngine() {
        var rng = SplitMix(seed: 11)
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        var differences = 0
        for round in 0..<40 {
            var docs: [String] = []
            for i in 0..<Int(1 + rng.next() % 12) {
                let cluster = rng.next() % 2 == 0
                var target: [String] = ["kind: \(pick(["Container", "Container", "Pod"]))"]
                if rng.next() % 2 == 0 { target.append("name: \(pick(["a", "b"]))") }
                if rng.next() % 3 != 0 || target.count == 1 {
                    let op = pick(["In", "NotIn", "Exists", "DoesNotExist"])
                    let values = op == "In" || op == "NotIn" ? ", values: [x]" : ""
                    target.append(
                        rng.next() % 2 == 0
                            ? "selector: {matchLabels: {p: \(pick(["x", "y"]))}}"
                            : "selector: {matchExpressions: [{key: q, operator: \(op)\(values)}]}")
                }
                docs.append(
                    """
                    apiVersion: crd.varmor.org/v1beta1
                    kind: \(cluster ? "VarmorClusterPolicy" : "VarmorPolicy")
                    metadata: {name: p\(round)-\(i)\(cluster ? "" : ", namespace: \(pick(["a", "b"]))")}
                    spec:
                      target: {\(target.joined(separator: ", "))}
                      policy: {enforcer: Seccomp, mode: AlwaysAllow}
                    """)
            }
            let text = docs.joined(separator: "\n---\n")
            let policies = PolicyParser.parse(text, file: "r.yaml").policies
            let index = Self.index(text)
            for _ in 0..<30 {
                var annotations: [String: String] = [:]
                if rng.next() % 2 == 0 { annotations["p"] = pick(["x", "y"]) }
                if rng.next() % 2 == 0 { annotations["q"] = pick(["x", "z"]) }
                let name = pick(["a", "b", "c"])
                let engine = DecisionEngine.decide(
                    policies, ContainerDescriptor(pod: nil, containerName: name, annotations: annotations))
                let fast = index.decide(containerName: name, annotations: annotations)
                if engine.policy?.displayName != fast?.policy || engine.profileName != fast?.profile {
                    differences += 1
                }
            }
        }
        #expect(differences == 0)
    }

    // MARK: Golden specs

    static let hook = "/usr/libexec/bulwark/bulwark-hook"

    static func patcher(appArmorLoaded: Bool) -> SpecPatcher {
        SpecPatcher(
            facts: .init(
                hookPath: hook, bpfPinPath: "/sys/fs/bpf/bulwark", containerStateDirectory: "/run/bulwark/containers",
                appArmorLoaded: { _ in appArmorLoaded }, isOurHook: { $0 == hook }))
    }

    /// Each runtime's spec through the patcher against the golden output
    /// (`BULWARK_UPDATE_GOLDEN=1` rewrites them; review the diff).
    @Test(arguments: [
        ("runc", "web", true), ("crun", "web", false), ("podman", "web", true), ("containerd", "", true),
    ])
    func specsPatchToTheGoldenOutput(runtime: String, container: String, appArmorLoaded: Bool) throws {
        let input = try JSONValue.parse(
            Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("specs/\(runtime).json"))))
        let spec = try #require(input.object)
        let index = Self.index()
        let entry = index.decide(containerName: container, annotations: SpecPatcher.annotations(of: spec))
        let outcome = try Self.patcher(appArmorLoaded: appArmorLoaded).patch(spec, entry: entry, restore: false)
        guard case .patched(let patched, _, _, let notes) = outcome else {
            Issue.record("\(runtime): not patched")
            return
        }
        var out = JSONValue.object(patched).serialized()
        out += Array(("\n" + notes.map { "note: \($0)" }.joined(separator: "\n") + "\n").utf8)
        let golden = Self.fixtures.appendingPathComponent("golden/\(runtime).out")
        if ProcessInfo.processInfo.environment["BULWARK_UPDATE_GOLDEN"] == "1" {
            try Data(out).write(to: golden)
        }
        let expected = try Data(contentsOf: golden)
        #expect(Array(expected) == out, "\(runtime): the patched spec differs from \(golden.path)")
        // what the golden files must show, checked here too so a careless update cannot hide it
        let o = try #require(try JSONValue.parse(Array(out.prefix { $0 != 0x0A })).object)
        let hooks = o["hooks"]?.object?["createRuntime"]?.array ?? []
        #expect(hooks.filter { $0.object?["path"]?.string == Self.hook }.count == 1, "\(runtime): one hook")
        let profile = runtime == "containerd" ? "varmor-shop-web" : "varmor-cluster-varmor-web"  // NRI chose it
        #expect(o["process"]?.object?["apparmorProfile"]?.string == (appArmorLoaded ? profile : nil))
        if runtime != "containerd" {
            #expect(o["annotations"]?.object?[DecisionAnnotations.bpfProfile]?.string == "varmor-cluster-varmor-web")
            #expect(o["linux"]?.object?["seccomp"] != nil)
        }
        if runtime == "podman" {
            // podman's own filter stays the base: its default action and its rules survive the merge
            let before = try #require(spec["linux"]?.object?["seccomp"].map { try LinuxSeccomp(json: $0) })
            let after = try LinuxSeccomp(json: o["linux"]!.object!["seccomp"]!)
            #expect(after.defaultAction == before.defaultAction)
            #expect(after.syscalls?.count ?? 0 > before.syscalls?.count ?? 0)
        }
    }

    /// A standalone container's caller cannot choose the address `pod-self` matches: a
    /// `bulwark.io/pod-ips` it wrote is emptied before the hook binds (only NRI writes it).
    @Test func aCallersPodAddressesDoNotReachTheBinding() throws {
        let input = try JSONValue.parse(
            Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("specs/runc.json"))))
        var spec = try #require(input.object)
        var annotations = spec["annotations"]?.object ?? JSONObject()
        annotations[DecisionAnnotations.podIPs] = .string("10.1.2.3")
        spec["annotations"] = .object(annotations)
        let entry = Self.index().decide(containerName: "web", annotations: SpecPatcher.annotations(of: spec))
        guard
            case .patched(let patched, _, _, _) = try Self.patcher(appArmorLoaded: true).patch(
                spec, entry: entry, restore: false)
        else {
            Issue.record("not patched")
            return
        }
        #expect(patched["annotations"]?.object?[DecisionAnnotations.bpfProfile] != nil)
        #expect(patched["annotations"]?.object?[DecisionAnnotations.podIPs] == .string(""))
    }

    @Test func restoresAndHollowEntriesAreRefusedAndUntargetedSpecsAreUntouched() throws {
        let spec = try #require(
            try JSONValue.parse(Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("specs/runc.json"))))
                .object)
        let entry = Self.index().decide(containerName: "x", annotations: SpecPatcher.annotations(of: spec))
        #expect(throws: SpecPatcher.Refusal.self) {
            try Self.patcher(appArmorLoaded: true).patch(spec, entry: entry, restore: true)
        }
        // an entry that asks for seccomp without a filter is refused, never applied without it
        var hollow = try #require(entry)
        hollow.seccompProfile = nil
        #expect(throws: SpecPatcher.Refusal.self) {
            try Self.patcher(appArmorLoaded: true).patch(spec, entry: hollow, restore: false)
        }
        var json = Self.index().json.object!
        var entries = json["entries"]!.array!
        var first = entries[0].object!
        first["seccompProfile"] = nil
        entries[0] = .object(first)
        json["entries"] = .array(entries)
        #expect(throws: StartIndex.FormatError.self) { try StartIndex(json: .object(json)) }
        var plain = spec
        plain["annotations"] = .object(JSONObject())
        #expect(try Self.patcher(appArmorLoaded: true).patch(plain, entry: nil, restore: true) == .untargeted)
    }

    /// A DefenseInDepth policy whose behaviour model is missing: its containers are refused (failure
    /// policy Fail), or run without the missing filter and are reported (Ignore) — never patched as
    /// if the profile were there; the reason survives the index's JSON.
    @Test func entriesWhoseProfileIsUnavailableAreRefusedUnlessIgnored() throws {
        let spec = try #require(
            try JSONValue.parse(Array(try Data(contentsOf: Self.fixtures.appendingPathComponent("specs/runc.json"))))
                .object)
        var entry = try #require(
            Self.index().decide(containerName: "x", annotations: SpecPatcher.annotations(of: spec)))
        entry.seccompProfile = nil
        entry.unavailable = "no behaviour model of varmor-x with Seccomp data on this node"
        entry.failurePolicy = "Fail"
        do {
            _ = try Self.patcher(appArmorLoaded: true).patch(spec, entry: entry, restore: false)
            Issue.record("patched a container whose profile is unavailable")
        } catch {
            #expect(error.description.contains("no behaviour model"))
        }
        entry.failurePolicy = "Ignore"
        guard
            case .patched(let patched, _, _, let notes) = try Self.patcher(appArmorLoaded: true).patch(
                spec, entry: entry, restore: false)
        else {
            Issue.record("not patched")
            return
        }
        #expect(notes.contains { $0.contains("no behaviour model") && $0.contains("Ignore") })
        #expect(patched["linux"]?.object?["seccomp"] == spec["linux"]?.object?["seccomp"])
        var index = Self.index()
        index.entries[0] = entry
        let again = try StartIndex(json: index.json)
        #expect(again.entries[0].unavailable == entry.unavailable)
    }
}
