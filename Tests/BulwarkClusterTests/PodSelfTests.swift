import BulwarkCluster
import BulwarkOCI
import Testing

/// pod-self from the API's pod status for hook-bound containers: which binding gets which addresses.
@Suite struct PodSelfTests {
    static func pod(_ name: String, uid: String, ips: [String], hostNetwork: Bool = false) -> JSONValue {
        let list = ips.map { #"{"ip":"\#($0)"}"# }.joined(separator: ",")
        return try! JSONValue.parse(
            #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"shop","uid":"\#(uid)"},"spec":{"nodeName":"node-a","hostNetwork":\#(hostNetwork)},"status":{"podIPs":[\#(list)]}}"#
        )
    }

    static func record(_ pod: String, uid: String?, mntns: UInt32, bpf: Bool = true) -> ContainerRecord {
        var annotations = ["io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": pod]
        if let uid { annotations["io.kubernetes.pod.uid"] = uid }
        return ContainerRecord(
            id: "c-\(mntns)", pid: 1, namespace: mntns, profile: "p", policy: nil, bundle: "/b", boundAt: 0, bpf: bpf,
            pod: PodAnnotations(annotations))
    }

    @Test func aBoundContainerGetsItsPodsAddresses() {
        let addresses = PodSelf.addresses(of: [
            "shop/web": Self.pod("web", uid: "u1", ips: ["10.0.0.5", "fd00::5"]),
            "shop/host": Self.pod("host", uid: "u2", ips: ["192.168.1.10"], hostNetwork: true),
            "shop/pending": Self.pod("pending", uid: "u3", ips: []),
            "shop/garbled": Self.pod("garbled", uid: "u4", ips: ["not-an-address"]),
        ])
        #expect(addresses.keys.sorted() == ["shop/web"], "host-network and address-less pods have none")
        let wanted = PodSelf.wanted(
            records: [
                Self.record("web", uid: "u1", mntns: 1), Self.record("web", uid: nil, mntns: 2),
                Self.record("web", uid: "u-old", mntns: 3), Self.record("host", uid: "u2", mntns: 4),
                Self.record("web", uid: "u1", mntns: 5, bpf: false), Self.record("other", uid: "u9", mntns: 6),
            ], addresses: addresses)
        #expect(wanted.map(\.namespace) == [1, 2], "same uid or none; not another pod of the same name")
        #expect(wanted.first?.ips == ["10.0.0.5", "fd00::5"])
    }

    /// This node's pods only: the selector is on every list and watch request.
    @Test func selectorsAreOnEveryRequest() {
        var lw = ListWatch(resource: .pods, selectors: [("fieldSelector", "spec.nodeName=node-a")])
        guard case .list(let q) = lw.start() else {
            Issue.record("no list")
            return
        }
        #expect(q.contains { $0 == ("fieldSelector", "spec.nodeName=node-a") })
        let next = lw.listed(Array(#"{"kind":"PodList","metadata":{"resourceVersion":"5"},"items":[]}"#.utf8)).next
        guard case .watch(let w)? = next else {
            Issue.record("no watch: \(String(describing: next))")
            return
        }
        #expect(w.contains { $0 == ("fieldSelector", "spec.nodeName=node-a") })
        #expect(w.contains { $0 == ("resourceVersion", "5") })
    }
}
