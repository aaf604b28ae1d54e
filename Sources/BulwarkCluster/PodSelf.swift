import BulwarkOCI
import BulwarkPolicy

/// `pod-self` for containers the OCI hook bound without their pod's addresses (a node without NRI:
/// the hook sees no `PodSandbox`): the agent watches this node's pods and gives each such binding
/// the addresses in its pod's status.
public enum PodSelf {
    /// The addresses of this node's pods (`namespace/name` → addresses, and the pod's uid). A
    /// host-network pod has none of its own (its status lists the node's), and a pod whose status
    /// has no address yet — or none that reads as one — is left out: an address not known is not
    /// "no address", and must not erase one the binding has.
    public static func addresses(of pods: [String: JSONValue]) -> [String: (uid: String?, ips: [String])] {
        var inventory = ClusterInventory()
        for object in pods.values { inventory.upsert(object, into: ClusterInventory.everything(.pods)) }
        var out: [String: (uid: String?, ips: [String])] = [:]
        for pod in inventory.allPods where pod.spec?.hostNetwork != true {
            let ips = pod.ips.filter { IPNetwork.host($0) != nil }
            let ns = pod.metadata.namespace ?? "default"
            if !ips.isEmpty { out["\(ns)/\(pod.metadata.name)"] = (pod.metadata.uid, ips) }
        }
        return out
    }

    /// Each BPF-bound container of a known pod: its mount namespace and its pod's addresses. A
    /// record naming a pod uid must match the pod's (a pod deleted and created again under the same
    /// name is another pod).
    public static func wanted(
        records: [ContainerRecord], addresses: [String: (uid: String?, ips: [String])]
    ) -> [(namespace: UInt32, ips: [String])] {
        records.compactMap { r in
            guard r.bpf != false, let ns = r.podNamespace, let name = r.podName, !ns.isEmpty, !name.isEmpty,
                let pod = addresses["\(ns)/\(name)"]
            else { return nil }
            if let uid = r.podUID, !uid.isEmpty, let podUID = pod.uid, uid != podUID { return nil }
            return (r.namespace, pod.ips)
        }
    }
}
