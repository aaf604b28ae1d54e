import BulwarkOCI

/// The policies of a node indexed by what selects a container, built once per policy set so a
/// decision on the start path looks only at the policies that can match: for a pod, the cluster
/// policies and its own namespace's, and of those only the ones whose target name is one of the
/// pod's possible owners, whose selector's first `matchLabels` pair is one of the pod's labels, or
/// that cannot be indexed (selectors with only `matchExpressions`, empty selectors). The winner is
/// the one `DecisionEngine.decide` picks from the full list (same order, same `matches`);
/// `DecisionEngine.decide` stays the explaining path (a reason for every policy).
public struct PolicyIndex: Sendable {
    /// Every policy, in decision order.
    public let ordered: [Policy]

    /// Positions into `ordered`, by what can select a container.
    private struct Bucket: Sendable {
        var byOwner: [String: [Int]] = [:]
        var byLabel: [String: [Int]] = [:]
        var unindexed: [Int] = []
    }

    /// Pod policies: the cluster ones, and the namespaced ones by namespace.
    private let cluster: Bucket
    private let namespaced: [String: Bucket]
    /// `target.kind: Container` policies (standalone containers), any policy kind.
    private let standalone: [Int]

    public init(_ policies: [Policy]) {
        ordered = DecisionEngine.ordered(policies)
        var cluster = Bucket()
        var namespaced: [String: Bucket] = [:]
        var standalone: [Int] = []
        for (i, p) in ordered.enumerated() {
            let t = p.spec.target
            if t.kind == .container {
                standalone.append(i)
                continue
            }
            if p.kind == .varmorClusterPolicy {
                Self.add(i, t, to: &cluster)
            } else if let ns = p.namespace {
                Self.add(i, t, to: &namespaced[ns, default: Bucket()])
            }  // a namespaced policy without a namespace selects no pod
        }
        self.cluster = cluster
        self.namespaced = namespaced
        self.standalone = standalone
    }

    public var isEmpty: Bool { ordered.isEmpty }
    public var count: Int { ordered.count }

    /// The policies that can match `container`, in decision order (a superset of the matching ones).
    public func candidates(_ container: ContainerDescriptor) -> [Policy] {
        guard let pod = container.pod else { return standalone.map { ordered[$0] } }
        var positions: [Int] = []
        for b in [cluster, namespaced[pod.namespace]] {
            guard let b else { continue }
            positions += b.unindexed
            if !b.byOwner.isEmpty {
                for kind in Target.Kind.allCases where kind != .container {
                    if let owner = DecisionEngine.ownerName(kind: kind, pod: pod),
                        let hit = b.byOwner[Self.ownerKey(kind, owner)]
                    {
                        positions += hit
                    }
                }
            }
            if !b.byLabel.isEmpty {
                for (k, v) in pod.labels { if let hit = b.byLabel[Self.labelKey(k, v)] { positions += hit } }
            }
        }
        positions.sort()
        var out: [Policy] = []
        out.reserveCapacity(positions.count)
        var last = -1
        for i in positions where i != last {
            out.append(ordered[i])
            last = i
        }
        return out
    }

    /// The decision for `container`: the same policy, profile, enforcers and shadowed policies as
    /// `DecisionEngine.decide(ordered, container)`; reasons only for the candidates.
    public func decide(_ container: ContainerDescriptor, clusterNamespace: String = "varmor") -> Decision {
        let candidates = candidates(container)
        var d = DecisionEngine.decide(candidates, container, clusterNamespace: clusterNamespace, alreadyOrdered: true)
        let skipped = ordered.count - candidates.count
        if skipped > 0 {
            d.reasons.insert(
                "\(skipped) other policies cannot select this container (namespace, owner or labels)", at: 0)
        }
        return d
    }

    private static func add(_ i: Int, _ t: Target, to b: inout Bucket) {
        if let name = t.name {
            b.byOwner[ownerKey(t.kind, name), default: []].append(i)
        } else if let s = t.selector, let first = s.matchLabels.min(by: { $0.key < $1.key }) {
            // every matchLabels pair must hold, so the first one is a necessary condition
            b.byLabel[labelKey(first.key, first.value), default: []].append(i)
        } else {
            b.unindexed.append(i)
        }
    }

    private static func ownerKey(_ kind: Target.Kind, _ name: String) -> String { kind.rawValue + "/" + name }
    private static func labelKey(_ k: String, _ v: String) -> String { k + "=" + v }
}
