/// The fields of Kubernetes objects that Bulwark reads, as the API server writes them (JSON) and
/// as `kubectl get -o yaml` prints them. Everything else in an object is ignored, as vArmor's IP
/// watcher keeps slim copies (`internal/ipwatcher/transform.go`).
public enum KubeObjects {
    public struct Meta: Codable, Sendable, Equatable {
        public var name: String
        public var namespace: String?
        public var labels: [String: String]?
        public var resourceVersion: String?
        public var uid: String?

        public init(name: String, namespace: String? = nil, labels: [String: String]? = nil) {
            self.name = name
            self.namespace = namespace
            self.labels = labels
        }
    }

    /// `v1 Pod`: its IPs (`status.podIPs`, both families) and whether it shares the node's network.
    public struct Pod: Codable, Sendable, Equatable {
        public struct Spec: Codable, Sendable, Equatable {
            public var hostNetwork: Bool?
            public var nodeName: String?
        }
        public struct PodIP: Codable, Sendable, Equatable {
            public var ip: String
        }
        public struct Status: Codable, Sendable, Equatable {
            public var podIP: String?
            public var podIPs: [PodIP]?
        }
        public var metadata: Meta
        public var spec: Spec?
        public var status: Status?

        /// `status.podIPs`, or the older `status.podIP` alone.
        public var ips: [String] {
            if let list = status?.podIPs, !list.isEmpty { return list.map(\.ip) }
            return status?.podIP.map { [$0] } ?? []
        }

        public init(metadata: Meta, ips: [String], hostNetwork: Bool = false) {
            self.metadata = metadata
            self.spec = Spec(hostNetwork: hostNetwork, nodeName: nil)
            self.status = Status(podIP: ips.first, podIPs: ips.map(PodIP.init))
        }
    }

    /// `v1 Service`: its cluster IPs (`spec.clusterIPs`, both families; `None` for a headless one).
    public struct Service: Codable, Sendable, Equatable {
        public struct Spec: Codable, Sendable, Equatable {
            public var clusterIP: String?
            public var clusterIPs: [String]?
        }
        public var metadata: Meta
        public var spec: Spec?

        public var clusterIPs: [String] {
            if let list = spec?.clusterIPs, !list.isEmpty { return list }
            return spec?.clusterIP.map { [$0] } ?? []
        }

        public init(metadata: Meta, clusterIPs: [String]) {
            self.metadata = metadata
            self.spec = Spec(clusterIP: clusterIPs.first, clusterIPs: clusterIPs)
        }
    }

    /// `discovery.k8s.io/v1 EndpointSlice`: endpoint addresses and the ports they serve (the
    /// target ports); `kubernetes.io/service-name` names its Service.
    public struct EndpointSlice: Codable, Sendable, Equatable {
        public struct Endpoint: Codable, Sendable, Equatable {
            public var addresses: [String]
        }
        public struct Port: Codable, Sendable, Equatable {
            public var port: Int?
            public var `protocol`: String?
        }
        public var metadata: Meta
        public var addressType: String?
        public var endpoints: [Endpoint]?
        public var ports: [Port]?

        public static let serviceNameLabel = "kubernetes.io/service-name"
        public var serviceName: String? { metadata.labels?[Self.serviceNameLabel] }

        public init(metadata: Meta, addresses: [String], ports: [Int]) {
            self.metadata = metadata
            self.addressType = nil
            self.endpoints = [Endpoint(addresses: addresses)]
            self.ports = ports.map { Port(port: $0, protocol: "TCP") }
        }
    }
}
