import BulwarkOCI
import BulwarkProfiles

/// Which address objects an agent watches: only what loaded policies reference, with the
/// namespaces and selectors they name sent to the API server, as a node agent that talks to the
/// API server itself must be frugal (no manager keeps a cluster-wide cache for it):
/// - `toServices` by name: that Service (`fieldSelector=metadata.name=N`) and its EndpointSlices
///   (`labelSelector=kubernetes.io/service-name=N`) in its namespace;
/// - `toServices` by selector: Services and EndpointSlices with that `labelSelector` (vArmor
///   matches a service selector against the slices' own labels too), in its namespace or all;
/// - `toPods`: Pods with that `labelSelector`, in its namespace or all;
/// - no reference: nothing is watched.
/// Each watch holds a connection to the API server (HTTP/1.1 has no multiplexing), so beyond
/// `maxParts` watches of one resource its selectors are dropped (a watch per namespace), and
/// beyond that again it is watched in all namespaces. The agent matches every object against the
/// policy's selector itself, so a wider watch only costs memory, never rules.
public struct WatchScope: Sendable, Hashable {
    /// One watch: a resource, in one namespace or (nil) in all, filtered by the API server.
    public struct Part: Sendable, Hashable, CustomStringConvertible {
        public var resource: KubeResource
        public var namespace: String?
        /// `labelSelector` (nil: every object)
        public var labels: String?
        /// `fieldSelector` (`metadata.name=N`: one object)
        public var fields: String?

        public init(_ resource: KubeResource, _ namespace: String?, labels: String? = nil, fields: String? = nil) {
            self.resource = resource
            self.namespace = namespace
            self.labels = labels
            self.fields = fields
        }

        /// The list path the watch reads.
        public var path: String { resource.path(namespace: namespace) }
        /// The selectors its list and watch requests carry.
        public var query: [(String, String)] {
            (labels.map { [("labelSelector", $0)] } ?? []) + (fields.map { [("fieldSelector", $0)] } ?? [])
        }

        /// The parts whose objects include all of this one's, narrowest first: itself, the same
        /// selectors in all namespaces, its whole namespace, everything.
        public var coverers: [Part] {
            var out = [self]
            func add(_ p: Part) { if !out.contains(p) { out.append(p) } }
            if namespace != nil { add(Part(resource, nil, labels: labels, fields: fields)) }
            add(Part(resource, namespace))
            add(Part(resource, nil))
            return out
        }

        public var description: String {
            let sel = [labels.map { "labels \($0)" }, fields.map { "fields \($0)" }].compactMap { $0 }
            return "\(resource.plural) in \(namespace ?? "all namespaces")"
                + (sel.isEmpty ? "" : " (" + sel.joined(separator: "; ") + ")")
        }
    }

    public private(set) var parts: Set<Part>

    /// Watches of one resource before its selectors are dropped, and again before it is watched
    /// in all namespaces.
    public static let maxParts = 16

    public init(_ parts: Set<Part> = []) {
        var out = Set<Part>()
        for r in Set(parts.map(\.resource)) {
            var mine = parts.filter { $0.resource == r }
            if mine.count > Self.maxParts { mine = Set(mine.map { Part(r, $0.namespace) }) }
            if mine.count > Self.maxParts { mine = [Part(r, nil)] }
            // a part that another one covers is redundant
            out.formUnion(mine.filter { p in !p.coverers.dropFirst().contains(where: mine.contains) })
        }
        self.parts = out
    }

    /// The parts one reference needs, as it asks for them.
    public static func parts(_ ref: BPFCompiler.ClusterReference) -> [Part] {
        switch ref {
        case .services(let ns, let name?, _):
            // a name without a namespace is looked up in `default`, as vArmor does; a name that
            // cannot be a Service's is not sent (nothing has it: the namespace is read)
            let ns = ns ?? "default"
            let exact = LabelSelector.isLabelValue(name) && !name.isEmpty
            return [
                Part(.services, ns, fields: exact ? "metadata.name=\(name)" : nil),
                Part(.endpointSlices, ns, labels: exact ? "kubernetes.io/service-name=\(name)" : nil),
            ]
        case .services(let ns, nil, let selector):
            let labels = selector?.apiQuery
            return [Part(.services, ns, labels: labels), Part(.endpointSlices, ns, labels: labels)]
        case .pods(let ns, let selector):
            return [Part(.pods, ns, labels: selector.apiQuery)]
        }
    }

    /// The watches the references need (`serviceEgressControl` and `podEgressControl` off: none
    /// for those; their references are reported unresolved by the compiler).
    public static func of(_ references: [BPFCompiler.ClusterReference], services: Bool, pods: Bool) -> WatchScope {
        var parts = Set<Part>()
        for ref in references {
            switch ref {
            case .services where services: parts.formUnion(Self.parts(ref))
            case .pods where pods: parts.formUnion(Self.parts(ref))
            default: break
            }
        }
        return WatchScope(parts)
    }

    /// The part of `parts` that holds every object `wanted` asks for, narrowest first (nil: none).
    public static func covering(_ wanted: Part, in parts: Set<Part>) -> Part? {
        wanted.coverers.first(where: parts.contains)
    }
}
