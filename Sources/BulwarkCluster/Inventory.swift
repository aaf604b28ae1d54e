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
    public private(set) var pods: [String: [String: KubeObjects.Pod]] = [:]
    public private(set) var services: [String: [String: KubeObjects.Service]] = [:]
    public private(set) var slices: [String: [String: KubeObjects.EndpointSlice]] = [:]
    /// What was listed completely (nil: everything, as from an inventory file). A reference outside
    /// it resolves to nil — not known, so the profile is refused — rather than to no address.
    public var coverage: WatchScope?

    public init() {}

    public var counts: (pods: Int, services: Int, endpointSlices: Int) {
        (
            pods.values.reduce(0) { $0 + $1.count }, services.values.reduce(0) { $0 + $1.count },
            slices.values.reduce(0) { $0 + $1.count }
        )
    }

    public mutating func upsert(_ p: KubeObjects.Pod) {
        pods[p.metadata.namespace ?? "default", default: [:]][p.metadata.name] = p
    }
    public mutating func upsert(_ s: KubeObjects.Service) {
        services[s.metadata.namespace ?? "default", default: [:]][s.metadata.name] = s
    }
    public mutating func upsert(_ e: KubeObjects.EndpointSlice) {
        slices[e.metadata.namespace ?? "default", default: [:]][e.metadata.name] = e
    }
    public mutating func removePod(namespace: String, name: String) { pods[namespace]?[name] = nil }
    public mutating func removeService(namespace: String, name: String) { services[namespace]?[name] = nil }
    public mutating func removeEndpointSlice(namespace: String, name: String) { slices[namespace]?[name] = nil }

    private func namespaces<T>(_ table: [String: [String: T]], _ ns: String?) -> [[String: T]] {
        guard let ns else { return table.keys.sorted().compactMap { table[$0] } }
        return table[ns].map { [$0] } ?? []
    }

    /// `toServices` (and the service built-ins): by name (with its namespace) or by selector; nil
    /// when those objects are not listed (`coverage`).
    public func resolveServices(namespace: String?, name: String?, selector: LabelSelector?)
        -> [EgressInventory.Endpoint]?
    {
        let ns = name != nil ? (namespace ?? "default") : namespace
        if let coverage, !coverage.covers(.services, ns) || !coverage.covers(.endpointSlices, ns) { return nil }
        var out: [EgressInventory.Endpoint] = []
        var chosen: [KubeObjects.Service] = []
        var chosenSlices: [KubeObjects.EndpointSlice] = []
        if let name {
            let ns = namespace ?? "default"
            if let s = services[ns]?[name] { chosen.append(s) }
            chosenSlices = (slices[ns] ?? [:]).values.filter { $0.serviceName == name }
        } else {
            let sel = selector ?? LabelSelector()
            for table in namespaces(services, namespace) {
                chosen += table.values.filter { sel.matches($0.metadata.labels ?? [:]) }
            }
            for table in namespaces(slices, namespace) {
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
        if let coverage, !coverage.covers(.pods, namespace) { return nil }
        var out: [EgressInventory.Endpoint] = []
        for table in namespaces(pods, namespace) {
            for p in table.values where selector.matches(p.metadata.labels ?? [:]) {
                for ip in p.ips where IPNetwork.host(ip) != nil { out.append(.init(ip: ip)) }
            }
        }
        return Self.canonical(out)
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
    /// A change of one resource's objects as `ListWatch` reports it (JSON objects from the API), in
    /// one namespace or (nil) all.
    public mutating func apply(_ change: ListWatch.Change, of r: KubeResource, namespace: String? = nil) {
        switch change {
        case .replaced(let all):
            // this resource's objects (in that namespace) are all new: the others stay
            removeAll(of: r, namespace: namespace)
            for (_, o) in all { upsert(o, of: r) }
        case .upserted(_, let o):
            upsert(o, of: r)
        case .deleted(let key):
            let p = key.split(separator: "/", maxSplits: 1).map(String.init)
            let (ns, name) = p.count == 2 ? (p[0], p[1]) : ("", key)
            switch r {
            case .pods: removePod(namespace: ns, name: name)
            case .services: removeService(namespace: ns, name: name)
            default: removeEndpointSlice(namespace: ns, name: name)
            }
        }
    }

    /// Forgets the objects of `r` in `namespace` (nil: all): their watch stopped.
    public mutating func removeAll(of r: KubeResource, namespace: String?) {
        switch (r, namespace) {
        case (.pods, nil): pods = [:]
        case (.pods, let ns?): pods[ns] = nil
        case (.services, nil): services = [:]
        case (.services, let ns?): services[ns] = nil
        case (_, nil): slices = [:]
        case (_, let ns?): slices[ns] = nil
        }
    }

    /// An object of `r` as the API server wrote it; one that does not decode is ignored (the
    /// API server validated it; a field Bulwark reads with another type is not there).
    public mutating func upsert(_ o: JSONValue, of r: KubeResource) {
        func decode<T: Decodable>(_ type: T.Type) -> T? { try? JSONDecoder().decode(type, from: Data(o.serialized())) }
        switch r {
        case .pods: if let p = decode(KubeObjects.Pod.self) { upsert(p) }
        case .services: if let s = decode(KubeObjects.Service.self) { upsert(s) }
        default: if let e = decode(KubeObjects.EndpointSlice.self) { upsert(e) }
        }
    }
}
