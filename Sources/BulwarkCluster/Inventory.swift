import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import Foundation

/// The cluster's addresses as far as egress rules need them: Pods, Services and EndpointSlices,
/// indexed by namespace. A value: the agent builds a new one when an object changes and compiles
/// from a snapshot. Resolution follows vArmor's manager (`internal/profile/bpf/custom.go`,
/// `generateRawNetworkEgressRuleForServices`/`…ForPods`):
/// - a Service becomes every cluster IP (both families) for all ports, plus every address of the
///   EndpointSlices labelled `kubernetes.io/service-name: NAME` with the slice's ports (target
///   ports); a headless Service (`None`) has endpoint addresses only; endpoint conditions are not
///   read (an endpoint that is not ready yet is still denied);
/// - a service selector selects Services by label and, as in vArmor, EndpointSlices by the same
///   selector on the slices' own labels; no namespace = all namespaces;
/// - a pod selector becomes every `status.podIPs` address of the matching pods with the rule's
///   ports; host-network pods are included as vArmor includes them (their address is the node's:
///   a deny to such a pod denies the node's address on those ports — documented in policy.md).
public struct ClusterInventory: Sendable, Equatable {
    /// One watch's objects, by namespace and name.
    public struct Objects: Sendable, Equatable {
        public fileprivate(set) var pods: [String: [String: KubeObjects.Pod]] = [:]
        public fileprivate(set) var services: [String: [String: KubeObjects.Service]] = [:]
        public fileprivate(set) var slices: [String: [String: KubeObjects.EndpointSlice]] = [:]
        /// namespace → service name → the names of its EndpointSlices (`kubernetes.io/service-name`)
        fileprivate var slicesOf: [String: [String: Set<String>]] = [:]

        fileprivate mutating func removeSlice(_ ns: String, _ name: String) {
            guard let old = slices[ns]?[name] else { return }
            slices[ns]?[name] = nil
            if let svc = old.serviceName { slicesOf[ns]?[svc]?.remove(name) }
        }
        fileprivate mutating func add(_ e: KubeObjects.EndpointSlice) {
            let ns = e.metadata.namespace ?? "default"
            removeSlice(ns, e.metadata.name)
            slices[ns, default: [:]][e.metadata.name] = e
            if let svc = e.serviceName { slicesOf[ns, default: [:]][svc, default: []].insert(e.metadata.name) }
        }
        fileprivate var namespaces: Set<String> { Set(pods.keys).union(services.keys).union(slices.keys) }
    }

    /// Each watch's objects (an inventory file's or a one-shot list's: under the part of all
    /// objects of their resource). A watch's objects stay its own: an object leaving one watch's
    /// selector leaves that watch only.
    public private(set) var parts: [WatchScope.Part: Objects] = [:]
    /// What was listed completely (nil: everything, as from an inventory file). A reference outside
    /// it resolves to nil — not known, so the profile is refused — rather than to no address.
    public var coverage: Set<WatchScope.Part>?
    /// When each part, and each namespace in it, last changed (one counter for all: a value is
    /// never reused), so a profile's resolution is read again only when what it reads changed.
    private var clock = 0
    private var changedAt: [WatchScope.Part: (all: Int, namespaces: [String: Int])] = [:]

    public init() {}

    public static func == (a: ClusterInventory, b: ClusterInventory) -> Bool {
        a.parts == b.parts && a.coverage == b.coverage
    }

    public var counts: (pods: Int, services: Int, endpointSlices: Int) {
        var c = (pods: 0, services: 0, endpointSlices: 0)
        for o in parts.values {
            c.pods += o.pods.values.reduce(0) { $0 + $1.count }
            c.services += o.services.values.reduce(0) { $0 + $1.count }
            c.endpointSlices += o.slices.values.reduce(0) { $0 + $1.count }
        }
        return c
    }

    /// Every pod of every part, once (by namespace and name).
    public var allPods: [KubeObjects.Pod] {
        var seen: [String: KubeObjects.Pod] = [:]
        for o in parts.values {
            for (ns, table) in o.pods { for (name, p) in table { seen["\(ns)/\(name)"] = p } }
        }
        return seen.keys.sorted().map { seen[$0]! }
    }

    private mutating func touch(_ part: WatchScope.Part, _ namespaces: some Sequence<String>) {
        clock += 1
        var c = changedAt[part] ?? (0, [:])
        c.all = clock
        for ns in namespaces { c.namespaces[ns] = clock }
        changedAt[part] = c
    }

    public static func everything(_ r: KubeResource) -> WatchScope.Part { WatchScope.Part(r, nil) }

    public mutating func upsert(_ p: KubeObjects.Pod, into part: WatchScope.Part = Self.everything(.pods)) {
        let ns = p.metadata.namespace ?? "default"
        parts[part, default: Objects()].pods[ns, default: [:]][p.metadata.name] = p
        touch(part, [ns])
    }
    public mutating func upsert(_ s: KubeObjects.Service, into part: WatchScope.Part = Self.everything(.services)) {
        let ns = s.metadata.namespace ?? "default"
        parts[part, default: Objects()].services[ns, default: [:]][s.metadata.name] = s
        touch(part, [ns])
    }
    public mutating func upsert(
        _ e: KubeObjects.EndpointSlice, into part: WatchScope.Part = Self.everything(.endpointSlices)
    ) {
        parts[part, default: Objects()].add(e)
        touch(part, [e.metadata.namespace ?? "default"])
    }

    /// Removes one object of the part's resource.
    public mutating func remove(namespace ns: String, name: String, from part: WatchScope.Part) {
        guard parts[part] != nil else { return }
        switch part.resource {
        case .pods: parts[part]!.pods[ns]?[name] = nil
        case .services: parts[part]!.services[ns]?[name] = nil
        default: parts[part]!.removeSlice(ns, name)
        }
        touch(part, [ns])
    }

    /// Forgets a part's objects: its watch stopped, or its list replaces them.
    public mutating func remove(_ part: WatchScope.Part) {
        guard let old = parts.removeValue(forKey: part) else { return }
        touch(part, old.namespaces)
    }

    /// The objects that hold every one `wanted` asks for, if listed (`coverage`).
    func objects(_ wanted: WatchScope.Part) -> Objects? {
        guard let coverage else { return parts[Self.everything(wanted.resource)] ?? Objects() }
        return WatchScope.covering(wanted, in: coverage).map { parts[$0] ?? Objects() }
    }

    /// What a profile's resolution depends on, given the parts its references read
    /// (`WatchScope.parts`): for each, the part that covers it and when that part (in the
    /// reference's namespace, if it names one) last changed. Equal stamps, equal resolutions: a
    /// change elsewhere in the cluster reads nothing again.
    public func stamp(_ reads: [WatchScope.Part]) -> [Stamp] {
        reads.map { wanted in
            let part = coverage.map { WatchScope.covering(wanted, in: $0) } ?? Self.everything(wanted.resource)
            guard let part else { return Stamp(part: nil, at: 0) }
            let c = changedAt[part]
            return Stamp(part: part, at: wanted.namespace.map { c?.namespaces[$0] ?? 0 } ?? c?.all ?? 0)
        }
    }

    public struct Stamp: Sendable, Hashable {
        public var part: WatchScope.Part?
        public var at: Int
    }

    /// `toServices` (and the service built-ins): by name (with its namespace) or by selector; nil
    /// when those objects are not listed (`coverage`).
    public func resolveServices(namespace: String?, name: String?, selector: LabelSelector?)
        -> [EgressInventory.Endpoint]?
    {
        let wanted = WatchScope.parts(.services(namespace: namespace, name: name, selector: selector))
        guard let svcs = objects(wanted[0]), let eps = objects(wanted[1]) else { return nil }
        var out: [EgressInventory.Endpoint] = []
        var chosen: [KubeObjects.Service] = []
        var chosenSlices: [KubeObjects.EndpointSlice] = []
        if let name {
            let ns = namespace ?? "default"
            if let s = svcs.services[ns]?[name] { chosen.append(s) }
            chosenSlices = (eps.slicesOf[ns]?[name] ?? []).sorted().compactMap { eps.slices[ns]?[$0] }
        } else {
            let sel = selector ?? LabelSelector()
            for table in Self.tables(svcs.services, namespace) {
                chosen += table.values.filter { sel.matches($0.metadata.labels ?? [:]) }
            }
            for table in Self.tables(eps.slices, namespace) {
                chosenSlices += table.values.filter {
                    $0.serviceName != nil && sel.matches($0.metadata.labels ?? [:])
                }
            }
        }
        for s in chosen {
            for ip in s.clusterIPs where IPNetwork.host(ip) != nil { out.append(.init(ip: ip)) }
        }
        for e in chosenSlices {
            let ports = (e.ports ?? []).compactMap(\.port).filter { (0...65535).contains($0) }.map {
                PortRange(UInt16($0), UInt16($0))
            }
            for ep in e.endpoints ?? [] {
                for ip in ep.addresses where IPNetwork.host(ip) != nil {
                    out.append(.init(ip: ip, ports: ports.sorted()))
                }
            }
        }
        return Self.canonical(out)
    }

    /// `toPods`: the addresses of the pods the selector matches (the rule carries the ports); nil
    /// when those pods are not listed (`coverage`).
    public func resolvePods(namespace: String?, selector: LabelSelector) -> [EgressInventory.Endpoint]? {
        guard let objects = objects(WatchScope.parts(.pods(namespace: namespace, selector: selector))[0]) else {
            return nil
        }
        var out: [EgressInventory.Endpoint] = []
        for table in Self.tables(objects.pods, namespace) {
            for p in table.values where selector.matches(p.metadata.labels ?? [:]) {
                for ip in p.ips where IPNetwork.host(ip) != nil { out.append(.init(ip: ip)) }
            }
        }
        return Self.canonical(out)
    }

    private static func tables<T>(_ table: [String: [String: T]], _ ns: String?) -> [[String: T]] {
        guard let ns else { return table.keys.sorted().compactMap { table[$0] } }
        return table[ns].map { [$0] } ?? []
    }

    /// Sorted and without duplicates: the same cluster state always compiles to the same rows.
    static func canonical(_ list: [EgressInventory.Endpoint]) -> [EgressInventory.Endpoint] {
        var seen = Set<EgressInventory.Endpoint>()
        return list.filter { seen.insert($0).inserted }.sorted { a, b in
            a.ip != b.ip ? a.ip < b.ip : a.ports.lexicographicallyPrecedes(b.ports)
        }
    }

    /// The compiler's view of this snapshot.
    public var egress: EgressInventory {
        let snapshot = self
        return EgressInventory(
            services: { ns, name, sel in snapshot.resolveServices(namespace: ns, name: name, selector: sel) },
            pods: { ns, sel in snapshot.resolvePods(namespace: ns, selector: sel) })
    }
}

extension ClusterInventory {
    /// A change of one watch's objects as `ListWatch` reports it (JSON objects from the API).
    public mutating func apply(_ change: ListWatch.Change, to part: WatchScope.Part) {
        switch change {
        case .replaced(let all):
            // the watch's objects are all new
            remove(part)
            parts[part] = Objects()
            touch(part, [])
            for (_, o) in all { upsert(o, into: part) }
        case .upserted(_, let o):
            upsert(o, into: part)
        case .deleted(let key):
            let p = key.split(separator: "/", maxSplits: 1).map(String.init)
            let (ns, name) = p.count == 2 ? (p[0], p[1]) : ("", key)
            remove(namespace: ns, name: name, from: part)
        }
    }

    /// An object of the part's resource as the API server wrote it; one that does not decode is
    /// ignored (the API server validated it; a field Bulwark reads with another type is not there).
    public mutating func upsert(_ o: JSONValue, into part: WatchScope.Part) {
        func decode<T: Decodable>(_ type: T.Type) -> T? { try? JSONDecoder().decode(type, from: Data(o.serialized())) }
        switch part.resource {
        case .pods: if let p = decode(KubeObjects.Pod.self) { upsert(p, into: part) }
        case .services: if let s = decode(KubeObjects.Service.self) { upsert(s, into: part) }
        default: if let e = decode(KubeObjects.EndpointSlice.self) { upsert(e, into: part) }
        }
    }

    /// All objects of `r` (an inventory file's, a one-shot list's).
    public mutating func apply(_ change: ListWatch.Change, of r: KubeResource) {
        apply(change, to: Self.everything(r))
    }
}
