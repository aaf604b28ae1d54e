import BulwarkProfiles

/// Which address objects an agent watches: only what loaded policies reference, as the issue of a
/// node agent talking to the API server itself asks (no manager keeps a cluster-wide cache for it).
/// `toServices` by name or in a namespace watches that namespace's Services and EndpointSlices;
/// a selector without a namespace (or a cluster-wide built-in's) watches all namespaces; `toPods`
/// the same for Pods. No reference: nothing is watched.
public struct WatchScope: Sendable, Hashable {
    /// One watch: a resource, in one namespace or (nil) in all.
    public struct Part: Sendable, Hashable, CustomStringConvertible {
        public var resource: KubeResource
        public var namespace: String?

        public init(_ resource: KubeResource, _ namespace: String?) {
            self.resource = resource
            self.namespace = namespace
        }

        /// The list path the watch reads.
        public var path: String { resource.path(namespace: namespace) }
        public var description: String { "\(resource.plural) in \(namespace ?? "all namespaces")" }
    }

    public private(set) var parts: Set<Part>

    /// Namespaces of one resource watched one by one; beyond this the resource is watched in all
    /// namespaces (each watch holds a connection to the API server: HTTP/1.1 has no multiplexing).
    public static let maxNamespaces = 16

    public init(_ parts: Set<Part> = []) {
        var all = Set(parts.filter { $0.namespace == nil }.map(\.resource))
        for r in Set(parts.map(\.resource)) where parts.count(where: { $0.resource == r }) > Self.maxNamespaces {
            all.insert(r)
        }
        // a watch of all namespaces makes the same resource's namespaced ones redundant
        self.parts = parts.filter { $0.namespace == nil || !all.contains($0.resource) }.union(
            all.map { Part($0, nil) })
    }

    /// The watches the references need (`serviceEgressControl` and `podEgressControl` off: none
    /// for those; their references are reported unresolved by the compiler).
    public static func of(_ references: [BPFCompiler.ClusterReference], services: Bool, pods: Bool) -> WatchScope {
        var parts = Set<Part>()
        for ref in references {
            switch ref {
            case .services(let ns, let name, _) where services:
                // a name without a namespace is looked up in `default` (ClusterInventory)
                let namespace = name != nil ? (ns ?? "default") : ns
                parts.insert(Part(.services, namespace))
                parts.insert(Part(.endpointSlices, namespace))
            case .pods(let ns, _) where pods:
                parts.insert(Part(.pods, ns))
            default: break
            }
        }
        return WatchScope(parts)
    }

    /// Whether the objects of `resource` in `namespace` (nil: all namespaces) are watched.
    public func covers(_ resource: KubeResource, _ namespace: String?) -> Bool {
        parts.contains(Part(resource, nil)) || (namespace.map { parts.contains(Part(resource, $0)) } ?? false)
    }
}
