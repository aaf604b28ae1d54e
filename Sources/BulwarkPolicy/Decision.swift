import BulwarkOCI
import Foundation

/// What the node knows about a container when it decides which policy applies.
public struct ContainerDescriptor: Sendable, Equatable {
    /// A Kubernetes container (seen by the NRI plugin).
    public struct Pod: Sendable, Equatable {
        public var namespace: String
        public var name: String
        public var labels: [String: String]
        public var annotations: [String: String]
        public init(
            namespace: String, name: String = "", labels: [String: String] = [:], annotations: [String: String] = [:]
        ) {
            self.namespace = namespace
            self.name = name
            self.labels = labels
            self.annotations = annotations
        }
    }

    public var pod: Pod?
    public var containerName: String
    public var isInitContainer = false
    /// OCI annotations of a standalone container (podman `--annotation k=v`).
    public var annotations: [String: String] = [:]
    public var image = ""

    public init(
        pod: Pod?, containerName: String, isInitContainer: Bool = false, annotations: [String: String] = [:],
        image: String = ""
    ) {
        self.pod = pod
        self.containerName = containerName
        self.isInitContainer = isInitContainer
        self.annotations = annotations
        self.image = image
    }
}

/// The outcome of `decide`.
public struct Decision: Sendable, Equatable {
    public var policy: Policy?
    public var profileName: String?
    /// Enforcers the container gets (the policy's, minus per-container opt-outs).
    public var enforcers: EnforcerSet
    /// Why, line by line, for `bulwark policy explain` and logs.
    public var reasons: [String]
    /// Policies that also matched but lost on precedence.
    public var shadowed: [Policy]

    public static func none(_ reasons: [String]) -> Decision {
        Decision(policy: nil, profileName: nil, enforcers: [], reasons: reasons, shadowed: [])
    }
}

/// The one decision engine used by the NRI plugin, the runtime wrapper and the CLI.
///
/// Precedence (deterministic; vArmor picks the first match in Go map order): cluster policies
/// before namespaced policies (as vArmor's webhook), then by policy namespace and name in
/// byte order. The first matching policy wins; the others are reported as shadowed.
public enum DecisionEngine {
    public static func ordered(_ policies: [Policy]) -> [Policy] {
        policies.sorted { a, b in
            if a.kind != b.kind { return a.kind == .varmorClusterPolicy }
            if (a.namespace ?? "") != (b.namespace ?? "") { return (a.namespace ?? "") < (b.namespace ?? "") }
            return a.name < b.name
        }
    }

    public static func decide(
        _ policies: [Policy], _ container: ContainerDescriptor, clusterNamespace: String = "varmor",
        alreadyOrdered: Bool = false
    )
        -> Decision
    {
        var reasons: [String] = []
        var winner: Policy?
        var shadowed: [Policy] = []
        for p in alreadyOrdered ? policies : ordered(policies) {
            let (ok, why) = matches(p, container)
            if ok {
                if winner == nil {
                    winner = p
                    reasons.append("\(p.kind.rawValue) \(p.displayName) matches: \(why)")
                } else {
                    shadowed.append(p)
                    reasons.append("\(p.kind.rawValue) \(p.displayName) also matches but has lower precedence")
                }
            } else {
                reasons.append("\(p.kind.rawValue) \(p.displayName) does not match: \(why)")
            }
        }
        guard let policy = winner else {
            return .none(reasons + ["no policy applies: the container runs without a Bulwark profile"])
        }
        let profile = ProfileNaming.profileName(for: policy, clusterNamespace: clusterNamespace)
        var enforcers = policy.spec.policy.enforcers.subtracting(.networkProxy)
        // vArmor's per-container opt-out annotations.
        if let pod = container.pod {
            for (bit, word) in [(EnforcerSet.appArmor, "apparmor"), (.bpf, "bpf"), (.seccomp, "seccomp")] {
                let key = "container.\(word).security.beta.varmor.org/\(container.containerName)"
                if pod.annotations[key] == "unconfined" && enforcers.contains(bit) {
                    enforcers.remove(bit)
                    reasons.append("annotation \(key)=unconfined removes \(bit)")
                }
            }
        }
        return Decision(
            policy: policy, profileName: profile, enforcers: enforcers, reasons: reasons, shadowed: shadowed)
    }

    /// Whether `policy` targets `container`, and why (not).
    public static func matches(_ policy: Policy, _ c: ContainerDescriptor) -> (Bool, String) {
        let t = policy.spec.target
        if t.kind == .container {
            guard c.pod == nil else { return (false, "target kind Container selects standalone containers only") }
            if let name = t.name, name != c.containerName {
                return (false, "container name \"\(c.containerName)\" is not \"\(name)\"")
            }
            if let s = t.selector, !s.matches(c.annotations) {
                return (false, "selector does not match the OCI annotations")
            }
            return (true, "standalone container selected by " + (t.selector != nil ? "annotations" : "name"))
        }
        guard let pod = c.pod else { return (false, "target kind \(t.kind.rawValue) selects Kubernetes pods only") }
        if policy.kind == .varmorPolicy, policy.namespace != pod.namespace {
            return (false, "policy namespace \(policy.namespace ?? "") is not the pod's namespace \(pod.namespace)")
        }
        if !t.containers.isEmpty {
            if !t.containers.contains(c.containerName) {
                return (false, "container \"\(c.containerName)\" is not in target.containers")
            }
        } else if c.isInitContainer {
            return (false, "init containers are protected only when named in target.containers")
        }
        if let name = t.name {
            guard let owner = ownerName(kind: t.kind, pod: pod) else {
                return (false, "pod \"\(pod.name)\" does not look like a \(t.kind.rawValue)'s pod")
            }
            if owner != name { return (false, "\(t.kind.rawValue) \"\(owner)\" is not \"\(name)\"") }
            return (true, "\(t.kind.rawValue) \(name) (derived from the pod name)")
        }
        if let s = t.selector {
            if t.kind != .pod && ownerName(kind: t.kind, pod: pod) == nil {
                return (false, "pod \"\(pod.name)\" does not look like a \(t.kind.rawValue)'s pod")
            }
            if !s.matches(pod.labels) { return (false, "selector does not match the pod labels") }
            return (true, "selector matches the pod labels")
        }
        return (false, "target has neither name nor selector")
    }

    /// The owning workload's name derived from the pod name and its controller labels, as far
    /// as the node can see it (no API server). Unknown pod names (no `--pod`) give nil unless
    /// the kind is Pod.
    public static func ownerName(kind: Target.Kind, pod: ContainerDescriptor.Pod) -> String? {
        let l = pod.labels
        switch kind {
        case .pod: return pod.name
        case .deployment:
            guard let hash = l["pod-template-hash"], !pod.name.isEmpty else { return nil }
            let marker = "-\(hash)-"
            guard let r = pod.name.range(of: marker, options: .backwards) else { return nil }
            return String(pod.name[..<r.lowerBound])
        case .statefulSet:
            guard l["controller-revision-hash"] != nil,
                let podName = l["statefulset.kubernetes.io/pod-name"] ?? nilIfEmpty(pod.name),
                let dash = podName.lastIndex(of: "-"), podName[podName.index(after: dash)...].allSatisfy(\.isNumber)
            else { return nil }
            return String(podName[..<dash])
        case .daemonSet:
            guard l["pod-template-generation"] != nil, l["controller-revision-hash"] != nil,
                let dash = pod.name.lastIndex(of: "-")
            else { return nil }
            return String(pod.name[..<dash])
        case .container: return nil
        }
    }

    private static func nilIfEmpty(_ s: String) -> String? { s.isEmpty ? nil : s }
}
