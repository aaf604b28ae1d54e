import BulwarkOCI
import Foundation

/// `pod-self` for containers the OCI hook bound without their pod's addresses (a node without NRI:
/// the hook sees no `PodSandbox`): the agent watches this node's pods and gives each such binding
/// the addresses in its pod's status.
public enum PodSelf {
    /// The addresses of this node's pods (`namespace/name` → addresses, and the pod's uid). A
    /// host-network pod has none of its own (its status lists the node's), and a pod whose status
    /// has no address yet is left out: an address not known yet is not "no address".
    public static func addresses(of pods: [String: JSONValue]) -> [String: (uid: String?, ips: [String])] {
        var out: [String: (uid: String?, ips: [String])] = [:]
        for object in pods.values {
            guard let pod = try? JSONDecoder().decode(KubeObjects.Pod.self, from: Data(object.serialized())),
                pod.spec?.hostNetwork != true, !pod.ips.isEmpty, let ns = pod.metadata.namespace
            else { continue }
            out["\(ns)/\(pod.metadata.name)"] = (pod.metadata.uid, pod.ips)
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
