import BulwarkOCI
import BulwarkPolicy
import Foundation
import Testing

@Suite("Parsing, hostile input, decisions, node config")
struct PolicyTests {
    static let standalone = """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorPolicy
        metadata:
          name: web
        spec:
          target:
            kind: Container
            selector:
              matchLabels: {bulwark.io/policy: web}
          policy:
            enforcer: AppArmorBPFSeccomp
            mode: EnhanceProtect
            enhanceProtect:
              hardeningRules: [DISALLOW_UMOUNT, disable-cap-privileged]
        ---
        apiVersion: apps/v1
        kind: Deployment
        metadata: {name: x}
        """

    @Test func multiDocumentSkipsOtherKindsAndNormalisesRuleNames() throws {
        let r = PolicyParser.parse(Self.standalone, file: "s.yaml")
        #expect(r.isValid)
        #expect(r.policies.count == 1)
        let p = try #require(r.policies.first)
        #expect(p.namespace == "default")
        #expect(ProfileNaming.profileName(for: p) == "varmor-default-web")
        #expect(p.spec.policy.enforcers == [.appArmor, .bpf, .seccomp])
        #expect(
            p.spec.policy.enhanceProtect?.hardeningRules.map(\.id) == ["disallow-umount", "disable-cap-privileged"])
        #expect(r.diagnostics.contains { $0.severity == .notice && $0.message.contains("Deployment") && $0.line == 17 })
    }

    @Test func jsonIsAccepted() {
        let json =
            #"{"apiVersion":"crd.varmor.org/v1beta1","kind":"VarmorClusterPolicy","metadata":{"name":"c"},"#
            + #""spec":{"target":{"kind":"Pod","selector":{"matchLabels":{"a":"b"}}},"policy":{"enforcer":"Seccomp","mode":"AlwaysAllow"}}}"#
        let r = PolicyParser.parse(json, file: "c.json")
        #expect(r.isValid)
        #expect(r.policies.first.map { ProfileNaming.profileName(for: $0) } == "varmor-cluster-varmor-c")
    }

    @Test func enforcerSubstringParsing() {
        #expect(EnforcerSet.parse("AppArmorBPFSeccomp") == [.appArmor, .bpf, .seccomp])
        #expect(EnforcerSet.parse("bpfseccomp") == [.bpf, .seccomp])
        #expect(EnforcerSet.parse("selinux") == [])
    }

    @Test func aliasBombIsRefusedQuickly() {
        var text = "a0: &a0 [x, x]\n"
        for i in 1..<40 { text += "a\(i): &a\(i) [*a\(i-1), *a\(i-1)]\n" }
        let start = ContinuousClock.now
        let r = PolicyParser.parse(text, file: "bomb.yaml")
        #expect(!r.isValid)
        #expect(r.errors.first?.message.contains("aliases") == true)
        #expect(ContinuousClock.now - start < .seconds(5))
    }

    /// Issue 12 (2): an alias spelled so that a hand-written pre-scan missed it (no space after
    /// the colon in a flow mapping) hung every reader of the file. Aliases are now found by
    /// libyaml's own parser: every spelling of this bomb is refused at once.
    @Test(arguments: [#""k":*a"#, #""k": *a"#, "k: *a", #"? "k" : *a"#, "*a : v", #""k":[*a,*a]"#])
    func aliasBombInAnySpellingIsRefusedQuickly(entry: String) {
        var text = "a0: &a0 [x, x]\n"
        for i in 1..<40 {
            let e = entry.replacingOccurrences(of: "*a", with: "*a\(i - 1)")
            text += "a\(i): &a\(i) {\(e), \(e.replacingOccurrences(of: "k", with: "j"))}\n"
        }
        text += "apiVersion: crd.varmor.org/v1beta1\n"
        let start = ContinuousClock.now
        let r = PolicyParser.parse(text, file: "bomb.yaml")
        #expect(!r.isValid)
        #expect(r.errors.first?.message.contains("aliases") == true, "\(r.errors)")
        #expect(ContinuousClock.now - start < .seconds(5))
        // the node config reader takes the same path
        #expect(throws: (any Error).self) { try NodeConfig.parse(text, file: "bulwark.yaml") }
    }

    /// Issue 12 (9): node-config values that escaped validation.
    @Test(arguments: [
        ("clusterProfileNamespace: ../../etc", "not a Kubernetes namespace name"),
        ("nriPluginIndex: \"１０\"", "not a two-digit plugin index"),
        ("eventLogBackups: 100000000", "from 0 to 100"),
        ("socketPath: /run/" + String(repeating: "s", count: 120) + ".sock", "more than a unix socket address holds"),
        ("policyDirectories: [\"/etc/bulwark\\0x\"]", "NUL"),
    ])
    func nodeConfigValuesAreChecked(line: String, message: String) {
        #expect {
            try NodeConfig.parse(line + "\n", file: "bulwark.yaml")
        } throws: { "\($0)".contains(message) }
    }

    @Test func unknownSyscallsGetTheClosestName() {
        let r = PolicyParser.inline(
            """
                enforcer: Seccomp
                mode: EnhanceProtect
                enhanceProtect:
                  syscallRawRules:
                  - {names: [unshare, mkdri, socketcall, arm_fadvise64_64], action: SCMP_ACT_ERRNO}
            """, name: "s")
        // names of other architectures (socketcall on x86, arm_fadvise64_64 on arm) are fine
        #expect(r.errors.count == 1)
        #expect(r.errors.first?.hint.contains("mkdir") == true, "\(r.errors)")
    }

    @Test func deepFlowNestingIsRefused() {
        // libyaml's own limit (1,000 flow levels) or the guard's (64), whichever is met first
        for n in [100, 100_000] {
            let text = String(repeating: "[", count: n) + String(repeating: "]", count: n)
            let r = PolicyParser.parse(text, file: "deep.yaml")
            #expect(r.errors.first?.message.lowercased().contains("nest") == true, "\(r.errors)")
        }
    }

    @Test func deepBlockNestingIsRefused() {
        let text = (0..<600).map { String(repeating: " ", count: $0) + "k:" }.joined(separator: "\n")
        let r = PolicyParser.parse(text, file: "deep.yaml")
        #expect(!r.isValid)
    }

    @Test func compactSequenceNestingIsRefused() {
        let text = String(repeating: "- ", count: 10_000) + "x\n"
        #expect(
            PolicyParser.parse(text, file: "deep.yaml").errors.first?.message.contains("nested deeper") == true)
    }

    @Test func hugeFileIsRefused() {
        let text = "a: " + String(repeating: "x", count: 2 << 20)
        #expect(PolicyParser.parse(text, file: "big.yaml").errors.first?.message.contains("limit") == true)
    }

    @Test func garbageNeverCrashes() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("ab:-[]{}&*!|>'\"#\n ,?%@`\t0123456789")
        for _ in 0..<500 {
            let text = String(
                (0..<Int.random(in: 0..<200, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            _ = PolicyParser.parse(text, file: "fuzz.yaml")
        }
        // Mutations of a valid policy.
        let base = Array(Self.standalone)
        for _ in 0..<300 {
            var t = base
            for _ in 0..<3 { t[Int.random(in: 0..<t.count, using: &rng)] = alphabet.randomElement(using: &rng)! }
            _ = PolicyParser.parse(String(t), file: "fuzz.yaml")
        }
    }

    @Test func patternSemanticsAreExactWhereVArmorWasAPrefix() throws {
        let exact = try PathPattern.parse("/etc/passwd", maxPart: 246).get()
        #expect(exact.matches("/etc/passwd"))
        #expect(!exact.matches("/etc/passwd-"))
        let greedy = try PathPattern.parse("/tmp/**/33", maxPart: 246).get()
        #expect(greedy.matches("/tmp/a/b/33"))
        #expect(greedy.matches("/tmp/33"))  // vArmor: the halves are checked independently
        let name = try PathPattern.parse("*.sh", maxPart: 246).get()
        #expect(name.matches("/usr/bin/run.sh"))
        #expect(!name.matches("/usr/bin/run.shx"))
    }

    @Test func ipv4MappedIPv6IsIPv4() throws {
        let n = try #require(IPNetwork.host("::ffff:10.0.0.1"))
        #expect(n.family == .ipv4)
        #expect(n.description == "10.0.0.1/32")
        #expect(IPNetwork.cidr("fd00::/8")?.contains(IPNetwork.host("fd12::1")!) == true)
        #expect(IPNetwork.host("1.2.3") == nil)
        #expect(IPNetwork.host("01.2.3.4") == nil)
    }

    // MARK: decisions

    func policies(_ text: String) -> [Policy] { PolicyParser.parse(text, file: "d.yaml").policies }

    static let deployAndCluster = """
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorPolicy
        metadata: {name: web, namespace: shop}
        spec:
          target: {kind: Deployment, name: web}
          policy: {enforcer: BPF, mode: RuntimeDefault}
        ---
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorClusterPolicy
        metadata: {name: all-web}
        spec:
          target: {kind: Pod, selector: {matchLabels: {app: web}}, containers: [main]}
          policy: {enforcer: AppArmorSeccomp, mode: RuntimeDefault}
        ---
        apiVersion: crd.varmor.org/v1beta1
        kind: VarmorPolicy
        metadata: {name: sts, namespace: shop}
        spec:
          target: {kind: StatefulSet, name: db}
          policy: {enforcer: BPF, mode: AlwaysAllow}
        """

    @Test func clusterPoliciesTakePrecedenceDeterministically() {
        let ps = policies(Self.deployAndCluster)
        #expect(ps.count == 3)
        let pod = ContainerDescriptor.Pod(
            namespace: "shop", name: "web-5d4f8b7c9-x2x7k", labels: ["app": "web", "pod-template-hash": "5d4f8b7c9"])
        let d = DecisionEngine.decide(ps, ContainerDescriptor(pod: pod, containerName: "main"))
        #expect(d.policy?.name == "all-web")
        #expect(d.shadowed.map(\.name) == ["web"])
        #expect(d.profileName == "varmor-cluster-varmor-all-web")
        // Same answer whatever the input order.
        #expect(
            DecisionEngine.decide(ps.reversed(), ContainerDescriptor(pod: pod, containerName: "main")).policy?.name
                == "all-web")
        // Container not named by the cluster policy: the Deployment policy applies.
        let sidecar = DecisionEngine.decide(ps, ContainerDescriptor(pod: pod, containerName: "sidecar"))
        #expect(sidecar.policy?.name == "web")
        #expect(sidecar.profileName == "varmor-shop-web")
        // Init containers are not protected unless named.
        #expect(
            DecisionEngine.decide(ps, ContainerDescriptor(pod: pod, containerName: "sidecar", isInitContainer: true))
                .policy == nil)
    }

    @Test func workloadOwnersDerivedFromPodNames() {
        let ps = policies(Self.deployAndCluster)
        let sts = ContainerDescriptor.Pod(
            namespace: "shop", name: "db-2",
            labels: ["controller-revision-hash": "db-7f", "statefulset.kubernetes.io/pod-name": "db-2"])
        #expect(DecisionEngine.decide(ps, ContainerDescriptor(pod: sts, containerName: "c")).policy?.name == "sts")
        let other = ContainerDescriptor.Pod(
            namespace: "other", name: "web-5d4f8b7c9-x2x7k", labels: ["pod-template-hash": "5d4f8b7c9"])
        #expect(DecisionEngine.decide(ps, ContainerDescriptor(pod: other, containerName: "c")).policy == nil)
    }

    @Test func unconfinedAnnotationRemovesAnEnforcer() {
        let ps = policies(Self.deployAndCluster)
        let pod = ContainerDescriptor.Pod(
            namespace: "shop", name: "p", labels: ["app": "web"],
            annotations: ["container.seccomp.security.beta.varmor.org/main": "unconfined"])
        let d = DecisionEngine.decide(ps, ContainerDescriptor(pod: pod, containerName: "main"))
        #expect(d.enforcers == [.appArmor])
    }

    @Test func standaloneTargetsMatchAnnotationsNotPods() {
        let ps = policies(Self.standalone)
        let hit = DecisionEngine.decide(
            ps, ContainerDescriptor(pod: nil, containerName: "x", annotations: ["bulwark.io/policy": "web"]))
        #expect(hit.profileName == "varmor-default-web")
        #expect(DecisionEngine.decide(ps, ContainerDescriptor(pod: nil, containerName: "x")).policy == nil)
        let pod = ContainerDescriptor.Pod(namespace: "default", labels: ["bulwark.io/policy": "web"])
        #expect(DecisionEngine.decide(ps, ContainerDescriptor(pod: pod, containerName: "x")).policy == nil)
    }

    /// The index answers exactly as the full engine (winner, profile, enforcers, shadowed) on
    /// random policy sets and pods: it may only skip policies that cannot match.
    @Test func policyIndexDecidesAsTheFullEngine() {
        var rng = SplitMix(seed: 7)
        let namespaces = ["a", "b", "c"]
        let labels = ["app": ["web", "db", "x"], "tier": ["front", "back"], "pod-template-hash": ["5d4f8b7c9"]]
        func pick<T>(_ xs: [T]) -> T { xs[Int(rng.next() % UInt64(xs.count))] }
        func selector() -> String {
            var pairs: [String] = []
            for (k, vs) in labels.sorted(by: { $0.key < $1.key }) where rng.next() % 3 == 0 {
                pairs.append("\(k): \(pick(vs))")
            }
            var out = "matchLabels: {\(pairs.joined(separator: ", "))}"
            if rng.next() % 3 == 0 {
                let op = pick(["In", "NotIn", "Exists", "DoesNotExist"])
                let values = op == "In" || op == "NotIn" ? ", values: [\(pick(["web", "db"]))]" : ""
                out += ", matchExpressions: [{key: \(pick(["app", "tier"])), operator: \(op)\(values)}]"
            }
            return "{\(out)}"
        }
        var failures = 0
        for round in 0..<60 {
            var docs: [String] = []
            for i in 0..<Int(1 + rng.next() % 25) {
                let cluster = rng.next() % 4 == 0
                let kind = pick(["Pod", "Deployment", "StatefulSet", "DaemonSet"])
                let how =
                    rng.next() % 2 == 0
                    ? "name: \(pick(["web", "db", "web-5d4f8b7c9-x", "db-0"]))" : "selector: \(selector())"
                let containers = rng.next() % 4 == 0 ? ", containers: [\(pick(["main", "side"]))]" : ""
                docs.append(
                    """
                    apiVersion: crd.varmor.org/v1beta1
                    kind: \(cluster ? "VarmorClusterPolicy" : "VarmorPolicy")
                    metadata: {name: p\(round)-\(i)\(cluster ? "" : ", namespace: \(pick(namespaces))")}
                    spec:
                      target: {kind: \(kind), \(how)\(containers)}
                      policy: {enforcer: \(pick(["BPF", "Seccomp", "AppArmorBPF"])), mode: AlwaysAllow}
                    """)
            }
            let ps = policies(docs.joined(separator: "\n---\n"))
            let index = PolicyIndex(ps)
            for _ in 0..<40 {
                var podLabels: [String: String] = [:]
                for (k, vs) in labels where rng.next() % 2 == 0 { podLabels[k] = pick(vs) }
                if rng.next() % 2 == 0 { podLabels["controller-revision-hash"] = "r1" }
                if rng.next() % 3 == 0 { podLabels["pod-template-generation"] = "1" }
                let pod = ContainerDescriptor.Pod(
                    namespace: pick(namespaces), name: pick(["web-5d4f8b7c9-x", "db-0", "web-x1", ""]),
                    labels: podLabels,
                    annotations: rng.next() % 5 == 0
                        ? ["container.bpf.security.beta.varmor.org/main": "unconfined"] : [:])
                let c = ContainerDescriptor(
                    pod: pod, containerName: pick(["main", "side"]), isInitContainer: rng.next() % 6 == 0)
                let full = DecisionEngine.decide(ps, c)
                let fast = index.decide(c)
                if full.policy != fast.policy || full.profileName != fast.profileName
                    || full.enforcers != fast.enforcers
                    || full.shadowed != fast.shadowed
                {
                    failures += 1
                    if failures < 4 {
                        Issue.record("index and engine differ for \(c): \(full.reasons) vs \(fast.reasons)")
                    }
                }
            }
        }
        #expect(failures == 0)
        // the index really narrows: 1,000 policies in one namespace, one candidate
        let many = (0..<1000).map {
            """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: p\($0), namespace: a}
            spec:
              target: {kind: Deployment, selector: {matchLabels: {app: app\($0)}}}
              policy: {enforcer: BPF, mode: AlwaysAllow}
            """
        }
        let big = PolicyIndex(policies(many.joined(separator: "\n---\n")))
        let pod = ContainerDescriptor.Pod(
            namespace: "a", name: "web-5d4f8b7c9-x", labels: ["app": "app999", "pod-template-hash": "5d4f8b7c9"])
        let c = ContainerDescriptor(pod: pod, containerName: "main")
        #expect(big.candidates(c).map(\.name) == ["p999"])
        #expect(big.decide(c).policy?.name == "p999")
    }

    // MARK: node config

    @Test func nodeConfigDefaultsAndOverrides() throws {
        #expect(try NodeConfig.parse("", file: "c.yaml") == NodeConfig())
        let c = try NodeConfig.parse(
            "nodeName: n1\npolicyDirectories: [/srv/p]\nruntime: crun\nenforcers: [BPF]\nfailurePolicy: Ignore\nauditEventMetadata: {clusterID: c1}\n",
            file: "c.yaml")
        #expect(c.nodeName == "n1")
        #expect(c.policyDirectories == ["/srv/p"])
        #expect(c.runtime == "crun")
        #expect(c.enforcers == [.bpf])
        #expect(c.failurePolicy == .ignore)
        #expect(c.auditEventMetadata == JSONObject([("clusterID", .string("c1"))]))
        // free-form, as vArmor's Helm value: nested values and typed scalars reach events as JSON
        let free = try NodeConfig.parse(
            "auditEventMetadata: {clusterID: 12, tags: [a, 'b'], owner: {team: sec, oncall: true}, note: \"007\"}\n",
            file: "c.yaml")
        #expect(
            JSONValue.object(free.auditEventMetadata).text
                == #"{"clusterID":12,"tags":["a","b"],"owner":{"team":"sec","oncall":true},"note":"007"}"#)
    }

    @Test func nodeConfigErrors() {
        func firstError(_ t: String) -> String? {
            do {
                _ = try NodeConfig.parse(t, file: "c.yaml")
                return nil
            } catch { return error.diagnostics.first.map { "\($0)".split(separator: "\n")[0].description } }
        }
        #expect(firstError("socketpath: /x") == "c.yaml:1:1: error: socketpath: unknown field")
        #expect(firstError("runtime: bin/runc") == "c.yaml:1:10: error: runtime: \"bin/runc\" is a relative path")
        #expect(
            firstError("failurePolicy: Maybe") == "c.yaml:1:16: error: failurePolicy: unknown failurePolicy \"Maybe\"")
        #expect(
            firstError("policyDirectories: [rel]")
                == "c.yaml:1:20: error: policyDirectories[0]: \"rel\" is not an absolute path")
    }
}

/// A small deterministic generator for randomized tests (SplitMix64).
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
