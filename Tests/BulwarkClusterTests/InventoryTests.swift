import BulwarkCluster
import BulwarkDelivery
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import Logging
import Testing

/// Objects as `kubectl get pods,services,endpointslices -A -o yaml` prints them (trimmed of the
/// fields Bulwark does not read only where noted; unknown fields stay to show they are ignored).
let kubectlDump = """
    apiVersion: v1
    kind: List
    items:
    - apiVersion: v1
      kind: Pod
      metadata:
        name: demo-3-7c9f
        namespace: demo
        labels: {app: demo-3, pod-template-hash: 7c9f}
        resourceVersion: "4711"
        uid: 0b1e3c7e-8d36-4f0e-9a53-5d9f4c0e7a11
      spec:
        containers: [{name: c, image: nginx}]
        nodeName: node-1
      status:
        phase: Running
        podIP: 10.244.1.7
        podIPs: [{ip: 10.244.1.7}, {ip: "fd00:10:244:1::7"}]
    - apiVersion: v1
      kind: Pod
      metadata: {name: other, namespace: demo, labels: {app: other}}
      status: {podIP: 10.244.1.8, podIPs: [{ip: 10.244.1.8}]}
    - apiVersion: v1
      kind: Pod
      metadata: {name: pending, namespace: demo, labels: {app: demo-3}}
      status: {phase: Pending}
    - apiVersion: v1
      kind: Service
      metadata: {name: nginx, namespace: nginx, labels: {app: nginx}}
      spec:
        clusterIP: 10.96.12.34
        clusterIPs: [10.96.12.34, "fd00:10:96::1234"]
        ipFamilies: [IPv4, IPv6]
        ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]
    - apiVersion: v1
      kind: Service
      metadata: {name: headless, namespace: nginx, labels: {app: nginx}}
      spec: {clusterIP: None, clusterIPs: [None]}
    - apiVersion: v1
      kind: Service
      metadata: {name: kubernetes, namespace: default, labels: {component: apiserver}}
      spec: {clusterIP: 10.96.0.1, clusterIPs: [10.96.0.1]}
    - apiVersion: discovery.k8s.io/v1
      kind: EndpointSlice
      metadata:
        name: nginx-abcde
        namespace: nginx
        labels: {app: nginx, kubernetes.io/service-name: nginx, endpointslice.kubernetes.io/managed-by: endpointslice-controller.k8s.io}
      addressType: IPv4
      endpoints:
      - addresses: [10.244.2.5]
        conditions: {ready: true}
      - addresses: [10.244.2.6]
        conditions: {ready: false}
      ports: [{name: http, port: 8080, protocol: TCP}]
    - apiVersion: discovery.k8s.io/v1
      kind: EndpointSlice
      metadata:
        name: kubernetes
        namespace: default
        labels: {kubernetes.io/service-name: kubernetes}
      addressType: IPv4
      endpoints: [{addresses: [192.168.49.2]}]
      ports: [{name: https, port: 8443, protocol: TCP}]
    - apiVersion: v1
      kind: ConfigMap
      metadata: {name: ignored, namespace: demo}
    metadata: {resourceVersion: ""}
    """

@Suite("Cluster inventory")
struct InventoryTests {
    @Test func aKubectlDumpReadsAsTheInventory() throws {
        let inv = try InventoryFile.parse(kubectlDump, file: "inv.yaml")
        #expect(inv.counts.pods == 3 && inv.counts.services == 3 && inv.counts.endpointSlices == 2)
        // a pod selector: both families, the pod without an address adds nothing
        let pods = try #require(
            inv.resolvePods(namespace: "demo", selector: LabelSelector(matchLabels: ["app": "demo-3"])))
        #expect(pods.map(\.ip) == ["10.244.1.7", "fd00:10:244:1::7"])
        #expect(pods.allSatisfy { $0.ports.isEmpty })
        #expect(inv.resolvePods(namespace: "other-ns", selector: LabelSelector(matchLabels: ["app": "demo-3"])) == [])
        #expect(inv.resolvePods(namespace: nil, selector: LabelSelector())?.count == 3)
    }

    /// vArmor: cluster IPs for all ports, endpoint addresses with the slice's (target) ports,
    /// endpoints that are not ready included, `None` skipped.
    @Test func aServiceResolvesAsVArmorResolvesIt() throws {
        let inv = try InventoryFile.parse(kubectlDump, file: "inv.yaml")
        let byName = try #require(inv.resolveServices(namespace: "nginx", name: "nginx", selector: nil))
        #expect(
            byName.map { "\($0.ip) \($0.ports.map { "\($0.first)-\($0.last)" })" } == [
                "10.244.2.5 [\"8080-8080\"]", "10.244.2.6 [\"8080-8080\"]", "10.96.12.34 []", "fd00:10:96::1234 []",
            ])
        // by selector: every service with the label (the headless one adds no cluster IP) and the
        // slices with the same label
        let bySelector = inv.resolveServices(
            namespace: nil, name: nil, selector: LabelSelector(matchLabels: ["app": "nginx"]))
        #expect(bySelector == byName)
        #expect(inv.resolveServices(namespace: "nginx", name: "missing", selector: nil) == [])
        let api = inv.resolveServices(namespace: "default", name: "kubernetes", selector: nil)
        #expect(api?.map(\.ip) == ["10.96.0.1", "192.168.49.2"])
    }

    /// The addresses watched from the API are those loaded policies reference, with their
    /// namespaces and selectors sent to the API server.
    @Test func watchesCarryThePoliciesNamespacesAndSelectors() {
        let db = LabelSelector(
            matchLabels: ["tier": "db"],
            matchExpressions: [
                .init(key: "env", op: .notIn, values: ["prod", "dev"]),
                .init(key: "canary", op: .doesNotExist, values: []),
                .init(key: "example.com/zone", op: .in, values: ["b", "a"]),
            ])
        let scope = WatchScope.of(
            [
                .services(namespace: "nginx", name: "nginx", selector: nil),
                .services(namespace: nil, name: nil, selector: db),
                .pods(namespace: "demo", selector: LabelSelector(matchLabels: ["app": "demo-3"])),
            ], services: true, pods: true)
        #expect(
            Set(scope.parts.map(\.description)) == [
                "services in nginx (fields metadata.name=nginx)",
                "endpointslices in nginx (labels kubernetes.io/service-name=nginx)",
                "services in all namespaces (labels !canary,env notin (dev,prod),example.com/zone in (a,b),tier=db)",
                "endpointslices in all namespaces (labels !canary,env notin (dev,prod),example.com/zone in (a,b),tier=db)",
                "pods in demo (labels app=demo-3)",
            ])
        #expect(
            scope.parts.first { $0.resource == .pods }?.query.map { "\($0.0)=\($0.1)" } == ["labelSelector=app=demo-3"])
        // podEgressControl off: no pod watch
        #expect(
            WatchScope.of([.pods(namespace: "demo", selector: .init())], services: true, pods: false).parts.isEmpty)
        // what the API server's syntax cannot say exactly is not sent: the namespace is read whole
        // and matched here (never fewer objects than the selector matches)
        for odd in [
            LabelSelector(matchLabels: ["bad key": "x"]), LabelSelector(matchLabels: ["app": "a,b"]),
            LabelSelector(matchLabels: ["app": ""]),
            LabelSelector(matchExpressions: [.init(key: "a", op: .in, values: [])]),
            LabelSelector(),
        ] {
            #expect(
                WatchScope.of([.pods(namespace: "demo", selector: odd)], services: true, pods: true).parts == [
                    .init(.pods, "demo")
                ])
        }
        // a whole namespace makes its selective watches redundant; a watch of all namespaces, every one
        let wide = WatchScope.of(
            [
                .pods(namespace: "demo", selector: LabelSelector(matchLabels: ["app": "x"])),
                .pods(namespace: "demo", selector: .init()),
                .services(namespace: "a", name: "s", selector: nil),
                .services(namespace: nil, name: nil, selector: nil),
            ], services: true, pods: true)
        #expect(wide.parts == [.init(.pods, "demo"), .init(.services, nil), .init(.endpointSlices, nil)])
        // beyond 16 watches of a resource its selectors are dropped; beyond 16 namespaces, all
        let selectors = WatchScope.of(
            (0..<17).map { .pods(namespace: "demo", selector: LabelSelector(matchLabels: ["app": "a\($0)"])) }
                + [.pods(namespace: "web", selector: LabelSelector(matchLabels: ["app": "w"]))],
            services: true, pods: true)
        #expect(selectors.parts == [.init(.pods, "demo"), .init(.pods, "web")])
        let many = WatchScope.of(
            (0..<17).map { .services(namespace: "ns-\($0)", name: "s", selector: nil) }, services: true, pods: true)
        #expect(many.parts == [.init(.services, nil), .init(.endpointSlices, nil)])
        // a name without a namespace is in `default`
        #expect(
            WatchScope.of([.services(namespace: nil, name: "kubernetes", selector: nil)], services: true, pods: true)
                .parts.allSatisfy { $0.namespace == "default" })
    }

    /// Each watch keeps its own objects: what is not listed (yet) resolves to nil — not known, the
    /// profile is refused — not to "no address"; an object that leaves one watch's selector stays
    /// in another's; a stamp moves only when what a reference reads changed.
    @Test func eachWatchKeepsItsObjects() throws {
        let file = try InventoryFile.parse(kubectlDump, file: "inv.yaml")
        let demo3 = LabelSelector(matchLabels: ["app": "demo-3"])
        let hash = LabelSelector(matchLabels: ["pod-template-hash": "7c9f"])
        let byApp = WatchScope.Part(.pods, "demo", labels: "app=demo-3")
        let byHash = WatchScope.Part(.pods, "demo", labels: "pod-template-hash=7c9f")
        #expect(WatchScope.parts(.pods(namespace: "demo", selector: demo3)) == [byApp])
        var inv = ClusterInventory()
        inv.coverage = [byApp]
        let pod = try #require(file.allPods.first { $0.metadata.name == "demo-3-7c9f" })
        inv.upsert(pod, into: byApp)
        inv.upsert(pod, into: byHash)
        #expect(inv.resolvePods(namespace: "demo", selector: demo3)?.map(\.ip) == ["10.244.1.7", "fd00:10:244:1::7"])
        #expect(inv.resolvePods(namespace: "demo", selector: hash) == nil, "its watch has not listed")
        #expect(inv.resolveServices(namespace: "nginx", name: "nginx", selector: nil) == nil)
        inv.coverage = [byApp, byHash]
        let appStamp = inv.stamp(WatchScope.parts(.pods(namespace: "demo", selector: demo3)))
        let hashStamp = inv.stamp(WatchScope.parts(.pods(namespace: "demo", selector: hash)))
        #expect(appStamp.map(\.part) == [byApp] && hashStamp.map(\.part) == [byHash])
        // its app label changed: it leaves that watch (DELETED), not the other
        inv.apply(.deleted("demo/demo-3-7c9f"), to: byApp)
        #expect(inv.resolvePods(namespace: "demo", selector: demo3) == [])
        #expect(inv.resolvePods(namespace: "demo", selector: hash)?.count == 2)
        #expect(inv.stamp(WatchScope.parts(.pods(namespace: "demo", selector: demo3))) != appStamp)
        #expect(inv.stamp(WatchScope.parts(.pods(namespace: "demo", selector: hash))) == hashStamp)
        // a watch of all namespaces: a change in another namespace leaves a namespaced reference's
        // stamp as it was
        let all = WatchScope.Part(.pods, nil)
        inv.coverage = [all]
        inv.apply(.replaced([:]), to: all)
        for p in file.allPods { inv.upsert(p, into: all) }
        let demoStamp = inv.stamp(WatchScope.parts(.pods(namespace: "demo", selector: demo3)))
        #expect(demoStamp.map(\.part) == [all])
        var other = pod
        other.metadata.namespace = "elsewhere"
        inv.upsert(other, into: all)
        #expect(inv.stamp(WatchScope.parts(.pods(namespace: "demo", selector: demo3))) == demoStamp)
        #expect(inv.stamp(WatchScope.parts(.pods(namespace: nil, selector: demo3))) != demoStamp)
        #expect(inv.resolvePods(namespace: "demo", selector: hash)?.count == 2)
        // a stopped watch's objects go
        inv.remove(all)
        #expect(inv.counts.pods == 1, "only the selective watch's copy is left")
        #expect(inv.resolvePods(namespace: "demo", selector: demo3) == [], "covered, listed, empty")
        inv.coverage = []
        #expect(inv.resolvePods(namespace: "demo", selector: demo3) == nil)
    }

    /// A Service by name reads its own watch (the name as a field selector) and its slices' (the
    /// service-name label).
    @Test func aServiceByNameReadsItsOwnWatches() throws {
        let file = try InventoryFile.parse(kubectlDump, file: "inv.yaml")
        let parts = WatchScope.parts(.services(namespace: "nginx", name: "nginx", selector: nil))
        var inv = ClusterInventory()
        inv.coverage = Set(parts)
        #expect(inv.resolveServices(namespace: "nginx", name: "nginx", selector: nil) == [])
        let all = try #require(file.resolveServices(namespace: "nginx", name: "nginx", selector: nil))
        #expect(all.count == 4)
        // the API server sends this watch the named Service and that one's slices only
        for svc in file.parts.values.flatMap({ $0.services.values.flatMap(\.values) })
        where svc.metadata.name == "nginx" {
            inv.upsert(svc, into: parts[0])
        }
        for e in file.parts.values.flatMap({ $0.slices.values.flatMap(\.values) }) where e.serviceName == "nginx" {
            inv.upsert(e, into: parts[1])
        }
        #expect(inv.resolveServices(namespace: "nginx", name: "nginx", selector: nil) == all)
        #expect(inv.resolveServices(namespace: "default", name: "kubernetes", selector: nil) == nil)
        inv.apply(.deleted("nginx/nginx-abcde"), to: parts[1])
        #expect(
            inv.resolveServices(namespace: "nginx", name: "nginx", selector: nil)?.map(\.ip) == [
                "10.96.12.34", "fd00:10:96::1234",
            ])
    }

    @Test func badInventoriesAreRefusedWithThePlace() {
        func error(_ text: String) -> String {
            do {
                _ = try InventoryFile.parse(text, file: "inv.yaml")
                return ""
            } catch { return error.description }
        }
        #expect(
            error("kind: Pod\nmetadata: {namespace: x}\n").contains(
                "inv.yaml:1:1: error: Pod is not readable: `metadata.name` is missing"))
        #expect(error("kind: List\nitems: 3\n").contains("`items` of a List is not a list"))
        #expect(error("- a\n- b\n").contains("not a Kubernetes object"))
        #expect(error("kind: Service\nmetadata: {name: s}\nspec: {clusterIPs: 3}\n").contains("clusterIPs"))
        #expect(error("kind: [\n").contains("invalid YAML"))
        // typed lists (`PodList`) leave `kind` out of their items
        #expect(error("kind: PodList\nitems: [{metadata: {name: p, namespace: n}, status: {podIP: 10.0.0.1}}]\n") == "")
    }

    /// The compiler's view: rules from the inventory; a reference to nothing is reported; without
    /// an inventory an explicit rule refuses the profile while a built-in only reports.
    @Test func unresolvedReferencesAreReportedAndRefuseWhereARuleWouldBeMissing() throws {
        let text = """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: egress, namespace: demo}
            spec:
              target: {kind: Deployment, selector: {matchLabels: {app: demo}}}
              policy:
                enforcer: BPF
                mode: EnhanceProtect
                enhanceProtect:
                  attackProtectionRules: [{rules: [block-access-to-kube-apiserver]}]
                  bpfRawRules:
                    network:
                      egress:
                        toServices:
                        - {qualifiers: [deny], namespace: nginx, name: nginx}
                        - {qualifiers: [deny], namespace: nginx, name: not-there}
                        toPods:
                        - {qualifiers: [deny], namespace: demo, podSelector: {matchLabels: {app: demo-3}}, ports: [{port: 80}]}

            """
        let policy = try #require(PolicyParser.parse(text, file: "p.yaml").policies.first)
        let inv = try InventoryFile.parse(kubectlDump, file: "inv.yaml")
        let p = try BPFCompiler(inventory: inv.egress).compile(policy, profileName: "x")
        let nets = Set((p.egress4 + p.egress6).map(\.network))
        for ip in ["10.96.12.34/32", "10.244.2.5/32", "10.96.0.1/32", "192.168.49.2/32", "10.244.1.7/32"] {
            #expect(nets.contains(ip), "\(ip) in \(nets.sorted())")
        }
        #expect(p.egress4.first { $0.network == "10.244.1.7/32" }?.ranges.map { "\($0.first)-\($0.last)" } == ["80-80"])
        #expect(p.unresolved.map(\.description) == ["toServices nginx/not-there: matches no address yet"])
        #expect(!p.unresolved[0].refusesProfile)

        let none = try BPFCompiler().compile(policy, profileName: "x")
        #expect(none.unresolved.filter(\.refusesProfile).count == 3)
        #expect(
            none.unresolved.contains { $0.builtin && !$0.refusesProfile && $0.reference.contains("kube-apiserver") })
        let off = try BPFCompiler(inventory: inv.egress, podEgressControl: false).compile(policy, profileName: "x")
        #expect(off.unresolved.map(\.reason).contains(.podEgressControlOff))
        #expect(!off.egress4.contains { $0.network == "10.244.1.7/32" })

        // delivery refuses the profile rather than load it without the rules
        var config = NodeConfig()
        config.podEgressControl = true
        let delivery = ProfileDelivery(
            config: config, facts: NodeFacts(diskDevices: []), inventory: EgressInventory.none,
            logger: Logger(label: "t"))
        #expect(throws: ProfileUnavailable.self) { try delivery.compileBPF(policy, profile: "x", model: nil) }
        let withInventory = ProfileDelivery(
            config: config, facts: NodeFacts(diskDevices: []), inventory: inv.egress, logger: Logger(label: "t"))
        #expect(try withInventory.compileBPF(policy, profile: "x", model: nil).unresolved.count == 1)
    }
}
