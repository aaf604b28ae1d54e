import BulwarkClient
import BulwarkCluster
import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkTestSupport
import Foundation
import KubeTestServer
import Testing

/// bulwarkd with the Kubernetes API as a policy source, against `KubeTestServer` (a stand-in that
/// behaves as the real API server on the wire; no real one can run on these machines).
@Suite("Policies from the Kubernetes API (stand-in API server)", .serialized)
struct ClusterTests {
    static let policies = "/apis/crd.varmor.org/v1beta1/varmorclusterpolicies"

    static func policy(_ rules: String, uid: String = "uid-nomkdir") -> JSONValue {
        try! JSONValue.parse(
            """
            {"apiVersion":"crd.varmor.org/v1beta1","kind":"VarmorClusterPolicy",
             "metadata":{"name":"nomkdir","uid":"\(uid)","generation":1,"creationTimestamp":"2026-12-03T07:00:00Z",
                         "managedFields":[{"manager":"kubectl"}]},
             "spec":{"target":{"kind":"Container","selector":{"matchLabels":{"bulwark.io/policy":"nomkdir"}}},
                     "policy":{"enforcer":"Seccomp","mode":"EnhanceProtect","enhanceProtect":{\(rules)}}},
             "status":{"phase":"Protecting"}}
            """)
    }
    static let denyMkdir = #""syscallRawRules":[{"names":["mkdir","mkdirat"],"action":"SCMP_ACT_ERRNO"}]"#

    static func kubeconfig(_ s: KubeTestServer, in dir: String) throws -> String {
        try s.writeKubeconfig(to: dir + "/kubeconfig")
    }

    /// Waits without holding a thread of the cooperative pool (other suites' clients run on it).
    func until(_ seconds: Double = 15, _ condition: () -> Bool) async -> Bool {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if condition() { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return condition()  // a late look: the waiting task may itself have been held up
    }

    static func events(_ s: KubeTestServer, reason: String) -> [JSONObject] {
        s.events.compactMap(\.object).filter { $0["reason"] == .string(reason) }
    }

    /// An object created in the API server is delivered as a policy file would be, and confines
    /// the next container (runc through the runtime wrapper); an invalid edit keeps the last good
    /// version; a node's policy file with the same identity wins; each outcome is an Event on the
    /// object naming the node; deleting the object withdraws the profile.
    static let executor = DedicatedExecutor("cluster-tests")

    /// Off the cooperative pool: other suites' synchronous tests may hold its threads for minutes.
    @Test func aPolicyObjectConfinesTheNextContainer() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await policyObjectLoop() }
    }

    func policyObjectLoop() async throws {
        let dir = NSTemporaryDirectory() + "bw-kube-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let s = try KubeTestServer(tls: KubeTestServer.makeTLS(in: dir))
        defer { s.stop() }
        var node = try Node("kube")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        let runtime = runcPath.map { "runtime: \($0)\n" } ?? ""
        let config = try node.writeConfig(extra: "kubeconfig: \(try Self.kubeconfig(s, in: dir))\n" + runtime)
        // the object exists before the agent starts: it is in force before the agent answers (the
        // NRI plugin and the start index never decide a container without the API's policies)
        s.apply(Self.policies, Self.policy(Self.denyMkdir))
        let daemon = try Daemon(config: config, socket: node.config.socketPath)
        #expect(daemon.ready(), "\(daemon.output)")
        let socket = node.config.socketPath
        func profile() -> JSONObject? {
            let list = (try? NodeClient.call(socketPath: socket, request("profiles")))?["profiles"]?.array ?? []
            return list.compactMap(\.object).first { $0["name"] == .string("varmor-cluster-varmor-nomkdir") }
        }
        #expect(profile()?["seccomp"]?.string?.hasPrefix("stored") == true, "\(daemon.output)")
        #expect(await until { s.watchers >= 2 }, "the agent lists, then watches the policy resources")
        #expect(await until { !Self.events(s, reason: "Loaded").isEmpty }, "\(s.events)")
        let loaded = try #require(Self.events(s, reason: "Loaded").first)
        #expect(loaded["type"] == .string("Normal"))
        #expect(loaded["message"]?.string?.hasPrefix("node node-a: profile varmor-cluster-varmor-nomkdir") == true)
        #expect(loaded["involvedObject"]?.object?["uid"] == .string("uid-nomkdir"))
        #expect(loaded["involvedObject"]?.object?["kind"] == .string("VarmorClusterPolicy"))
        #expect(loaded["metadata"]?.object?["namespace"] == .string("default"))
        #expect(s.requests.contains { $0.hasPrefix("POST /api/v1/namespaces/default/events") })

        // the next container started through the wrapper is confined by the object's profile
        if runcAndBusybox.check() {
            var b = BusyboxBundle(args: ["mkdir", "/tmp/escape"])
            b.applets = ["mkdir"]
            b.annotations = ["bulwark.io/policy": "nomkdir"]
            let bundle = try b.write(below: node.dir)
            let env = ["BULWARK_CONFIG": config, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
            let (code, out) = try captureDetached(
                bulwarkDirectory() + "/bulwark-runtime", ["run", "--bundle", bundle, "bw-kube-\(getpid())"],
                environment: env)
            #expect(code != 0 && out.contains("Operation not permitted"), "\(code): \(out)")
        }

        // an invalid edit: rejected, the last good version stays, an Event says why
        s.apply(Self.policies, Self.policy(#""hardeningRules":["disallow-create-userns"]"#))
        #expect(await until { !Self.events(s, reason: "Rejected").isEmpty }, "\(daemon.output)")
        let rejected = try #require(Self.events(s, reason: "Rejected").first)
        #expect(rejected["type"] == .string("Warning"))
        #expect(
            rejected["message"]?.string?.contains("unknown built-in rule \"disallow-create-userns\"") == true,
            "\(rejected)")
        #expect(rejected["message"]?.string?.contains("the last good version stays in force") == true)
        #expect(profile()?["seccomp"]?.string?.hasPrefix("stored") == true)

        // a node's file with the same identity wins over the object
        try node.write(
            policy: "nomkdir.yaml",
            """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorClusterPolicy
            metadata: {name: nomkdir}
            spec:
              target: {kind: Container, selector: {matchLabels: {bulwark.io/policy: nomkdir}}}
              policy: {enforcer: Seccomp, mode: RuntimeDefault}
            """)
        s.apply(Self.policies, Self.policy(Self.denyMkdir))
        #expect(await until { profile()?["mode"] == .string("RuntimeDefault") }, "\(String(describing: profile()))")
        #expect(await until { !Self.events(s, reason: "Overridden").isEmpty }, "\(s.events)")
        #expect(
            Self.events(s, reason: "Overridden").first?["message"]?.string?.contains(
                "not in force: the policy file \(node.dir)/policies/nomkdir.yaml on this node") == true)

        // without the file the object is in force again; deleting the object withdraws it
        try FileManager.default.removeItem(atPath: node.dir + "/policies/nomkdir.yaml")
        #expect(await until { profile()?["mode"] == .string("EnhanceProtect") })
        s.delete(Self.policies, Self.policy(Self.denyMkdir))
        #expect(await until { profile() == nil }, "\(daemon.output)")
        #expect(daemon.stop() == 0, "\(daemon.output)")
    }

    static let models = "/apis/crd.varmor.org/v1beta1/armorprofilemodels"

    /// An ArmorProfileModel object as another node's agent would have written it.
    static func modelObject(_ name: String, _ syscalls: Set<String>) -> JSONValue {
        var m = BehaviorModel(name: name, namespace: "varmor")
        m.seccomp = SeccompBehavior(syscalls: syscalls)
        return ModelSharing.object(m, namespace: "varmor", resourceVersion: nil)
    }

    /// Behaviour models live in the cluster as ArmorProfileModel objects: a model another node
    /// recorded reaches this node and confines its containers (DefenseInDepth from the model); what
    /// this node records is merged into the object by set union, and an update that finds the object
    /// changed by another node (409 Conflict) reads it again and keeps both nodes' records.
    @Test func behaviourModelsAreSharedThroughTheAPIServer() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await modelSharing() }
    }

    func modelSharing() async throws {
        let dir = NSTemporaryDirectory() + "bw-kube-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let s = try KubeTestServer(tls: KubeTestServer.makeTLS(in: dir))
        defer { s.stop() }
        var node = try Node("kube-models")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        let runtime = runcPath.map { "runtime: \($0)\n" } ?? ""
        let config = try node.writeConfig(extra: "kubeconfig: \(try Self.kubeconfig(s, in: dir))\n" + runtime)
        // recorded on another node: everything but unshare
        let allowList = "varmor-cluster-varmor-allowlist"
        s.apply(Self.models, Self.modelObject(allowList, SyscallNames.known.subtracting(["unshare"])))
        s.apply(
            Self.policies,
            try JSONValue.parse(
                """
                {"apiVersion":"crd.varmor.org/v1beta1","kind":"VarmorClusterPolicy",
                 "metadata":{"name":"allowlist","uid":"uid-allowlist"},
                 "spec":{"target":{"kind":"Container","selector":{"matchLabels":{"bulwark.io/policy":"allowlist"}}},
                         "policy":{"enforcer":"Seccomp","mode":"DefenseInDepth",
                                   "defenseInDepth":{"seccomp":{"profileType":"BehaviorModel"}}}}}
                """))
        let daemon = try Daemon(config: config, socket: node.config.socketPath)
        defer { _ = daemon.stop() }
        #expect(daemon.ready(), "\(daemon.output)")
        let store = ModelStore(directory: node.config.modelDirectory)
        let socket = node.config.socketPath
        func profile(_ name: String) -> JSONObject? {
            let list = (try? NodeClient.call(socketPath: socket, request("profiles")))?["profiles"]?.array ?? []
            return list.compactMap(\.object).first { $0["name"] == .string(name) }
        }
        #expect(
            await until { profile(allowList)?["seccomp"]?.string?.hasPrefix("stored") == true },
            "the cluster's model did not reach this node: \(String(describing: profile(allowList)))\n\(daemon.output)")
        #expect((try store.load(allowList))?.seccomp?.syscalls.contains("unshare") == false)
        if runcAndBusybox.check() {
            func run(_ args: [String], _ tag: String) throws -> (Int32, String) {
                var b = BusyboxBundle(args: args)
                b.applets = ["cat", "unshare", "true"]
                b.files = ["etc/motd": "motd\n"]
                b.annotations = ["bulwark.io/policy": "allowlist"]
                let bundle = try b.write(below: node.dir)
                return try captureDetached(
                    bulwarkDirectory() + "/bulwark-runtime",
                    ["run", "--bundle", bundle, "bw-model-\(tag)-\(getpid())"],
                    environment: ["BULWARK_CONFIG": config, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"])
            }
            let (code, out) = try run(["cat", "/etc/motd"], "in")
            #expect(code == 0 && out.contains("motd"), "\(code): \(out)")
            let (refused, why) = try run(["unshare", "-U", "true"], "out")
            #expect(refused != 0, "unshare ran under the cluster's model: \(why)")
        }

        // recorded here: the object is created, without this node's recording window
        let learned = "varmor-cluster-varmor-learned"
        var mine = BehaviorModel(name: learned, namespace: "varmor")
        mine.seccomp = SeccompBehavior(syscalls: ["read", "write"])
        RecordingWindow(started: 1_700_000_000).store(in: &mine)
        try store.save(mine)
        func object() -> BehaviorModel? {
            s.object(Self.models, "varmor/\(learned)").flatMap { try? ModelSharing.read($0).model }
        }
        #expect(await until { object()?.seccomp?.syscalls == ["read", "write"] }, "\(daemon.output)")
        #expect(object()?.annotations[RecordingWindow.startedAnnotation] == nil)
        #expect(
            s.requests.contains {
                $0.hasPrefix("POST /apis/crd.varmor.org/v1beta1/namespaces/varmor/armorprofilemodels")
            })

        // another node writes between this node's read and its update: 409, read again, union
        var other = try #require(object())
        other.seccomp?.syscalls.insert("unlink")
        s.raceNextUpdate(with: ModelSharing.object(other, namespace: "varmor", resourceVersion: nil))
        try store.update(learned) { stored in
            var m = stored
            m?.seccomp?.syscalls.insert("mkdir")
            return m
        }
        #expect(
            await until { object()?.seccomp?.syscalls == ["read", "write", "unlink", "mkdir"] },
            "\(String(describing: object()))\n\(daemon.output)")
        #expect(s.conflicts >= 1, "the update did not meet the other node's write")
        // and this node has the other node's records, and still its own window
        #expect(await until { (try? store.load(learned))??.seccomp?.syscalls.contains("unlink") == true })
        #expect((try store.load(learned))?.annotations[RecordingWindow.startedAnnotation] == "1700000000")

        // a change to the object from elsewhere reaches the node's file
        other.seccomp?.syscalls.formUnion(["mkdir", "rename"])
        s.apply(Self.models, ModelSharing.object(other, namespace: "varmor", resourceVersion: nil))
        #expect(await until { (try? store.load(learned))??.seccomp?.syscalls.contains("rename") == true })
        #expect(daemon.stop() == 0, "\(daemon.output)")
    }

    /// The agent watches only the addresses loaded policies name: nothing without a reference, one
    /// namespace's Services and EndpointSlices for `toServices` by name, and it stops when the policy
    /// goes.
    @Test func onlyTheAddressesPoliciesNameAreWatched() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await scopedWatches() }
    }

    func scopedWatches() async throws {
        let dir = NSTemporaryDirectory() + "bw-kube-\(UUID().uuidString.prefix(6))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let s = try KubeTestServer(tls: KubeTestServer.makeTLS(in: dir))
        defer { s.stop() }
        var node = try Node("kube-scope")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        let config = try node.writeConfig(
            extra: "kubeconfig: \(try Self.kubeconfig(s, in: dir))\npodEgressControl: true\n")
        let daemon = try Daemon(config: config, socket: node.config.socketPath)
        defer { _ = daemon.stop() }
        #expect(daemon.ready(), "\(daemon.output)")
        #expect(await until { s.watchers >= 3 }, "policies and models are watched")
        try await Task.sleep(for: .milliseconds(500))
        func addressRequests() -> [String] {
            s.requests.filter { $0.contains("/services") || $0.contains("/endpointslices") || $0.contains("/pods") }
        }
        #expect(addressRequests().isEmpty, "no policy names an address: \(addressRequests())")

        let policy = try JSONValue.parse(
            """
            {"apiVersion":"crd.varmor.org/v1beta1","kind":"VarmorClusterPolicy","metadata":{"name":"egress","uid":"u-e"},
             "spec":{"target":{"kind":"Container","selector":{"matchLabels":{"app":"x"}}},
                     "policy":{"enforcer":"BPF","mode":"EnhanceProtect","enhanceProtect":{"bpfRawRules":{"network":{"egress":
                       {"toServices":[{"qualifiers":["deny"],"namespace":"nginx","name":"nginx"}],
                        "toPods":[{"qualifiers":["deny"],"namespace":"db","podSelector":{"matchLabels":{"app":"pg"},
                          "matchExpressions":[{"key":"tier","operator":"NotIn","values":["test","dev"]}]}}]}}}}}}}
            """)
        s.apply(Self.policies, policy)
        #expect(
            await until {
                addressRequests().contains { $0.hasPrefix("GET /api/v1/namespaces/nginx/services?") }
                    && addressRequests().contains {
                        $0.hasPrefix("GET /apis/discovery.k8s.io/v1/namespaces/nginx/endpointslices?")
                    }
            }, "\(addressRequests())\n\(daemon.output)")
        #expect(
            !addressRequests().contains { $0.hasPrefix("GET /api/v1/services") || $0.contains("/namespaces/default/") },
            "\(addressRequests())")
        #expect(daemon.output.contains("services in nginx"), "\(daemon.output)")
        // the namespaces and selectors go to the API server: it sends the named Service, that
        // Service's slices and the pods the selector matches, nothing else
        for sent in [
            "GET /api/v1/namespaces/nginx/services?fieldSelector=metadata.name%3Dnginx&",
            "GET /apis/discovery.k8s.io/v1/namespaces/nginx/endpointslices?labelSelector=kubernetes.io%2Fservice-name%3Dnginx&",
            "GET /api/v1/namespaces/db/pods?labelSelector=app%3Dpg%2Ctier%20notin%20%28dev%2Ctest%29&",
        ] {
            #expect(
                await until { addressRequests().contains { $0.hasPrefix(sent) && $0.contains("watch=1") } },
                "\(sent) in \(addressRequests())")
        }
        // policies (2) and models (1), then the Service, its slices and the pods once listed
        #expect(await until { s.watchers == 6 }, "\(s.watchers) watches")
        s.delete(Self.policies, policy)
        #expect(await until { s.watchers == 3 }, "the address watches are stopped: \(s.watchers)")
    }
}
