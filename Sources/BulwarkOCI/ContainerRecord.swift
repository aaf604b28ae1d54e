/// What the OCI hook records per targeted container (`<state dir>/<id>.json`), read by the agent
/// to name the container's events and by poststop to unbind it. JSON without Foundation: the hook
/// runs on every container start. The field names are those earlier hooks wrote (Codable), so
/// records from before an upgrade still read.
public struct ContainerRecord: Sendable, Equatable {
    public static let maxBytes = 1 << 20

    public var id: String
    public var pid: Int32
    public var namespace: UInt32
    public var profile: String
    public var policy: String?
    public var bundle: String
    /// Unix time (seconds, fractional) when the hook recorded it.
    public var boundAt: Double
    /// False when the container is only recorded (no BPF binding); nil in records of older hooks.
    public var bpf: Bool?
    public var podName: String?
    public var podNamespace: String?
    public var podUID: String?
    public var containerName: String?
    public var image: String?
    /// The hook's own time from process start to this record (the agent's hook-latency metric).
    public var hookMicroseconds: Int?

    public init(
        id: String, pid: Int32, namespace: UInt32, profile: String, policy: String?, bundle: String,
        boundAt: Double, bpf: Bool, pod: PodAnnotations
    ) {
        self.id = id
        self.pid = pid
        self.namespace = namespace
        self.profile = profile
        self.policy = policy
        self.bundle = bundle
        self.boundAt = boundAt
        self.bpf = bpf
        podName = pod.podName
        podNamespace = pod.podNamespace
        podUID = pod.podUID
        containerName = pod.containerName
        image = pod.image
    }

    public var json: JSONValue {
        var o = JSONObject([
            ("id", .string(id)), ("pid", .number(pid)), ("namespace", .number(namespace)),
            ("profile", .string(profile)), ("bundle", .string(bundle)), ("boundAt", .number("\(boundAt)")),
        ])
        for (key, value) in [
            ("policy", policy), ("podName", podName), ("podNamespace", podNamespace), ("podUID", podUID),
            ("containerName", containerName), ("image", image),
        ] {
            if let value { o[key] = .string(value) }
        }
        if let bpf { o["bpf"] = .bool(bpf) }
        if let hookMicroseconds { o["hookMicroseconds"] = .number(hookMicroseconds) }
        return .object(o)
    }

    /// Nil for anything that is not a record (a reader skips it).
    public init?(json bytes: [UInt8]) {
        guard bytes.count <= Self.maxBytes, let o = try? JSONValue.parse(bytes).object,
            let id = o["id"]?.string, let pid = o["pid"]?.integer.flatMap({ Int32(exactly: $0) }),
            let namespace = o["namespace"]?.unsigned.flatMap({ UInt32(exactly: $0) }),
            let profile = o["profile"]?.string, let bundle = o["bundle"]?.string,
            case .number(let boundText) = o["boundAt"], let boundAt = Double(boundText)
        else { return nil }
        self.id = id
        self.pid = pid
        self.namespace = namespace
        self.profile = profile
        self.bundle = bundle
        self.boundAt = boundAt
        policy = o["policy"]?.string
        bpf = o["bpf"]?.bool
        podName = o["podName"]?.string
        podNamespace = o["podNamespace"]?.string
        podUID = o["podUID"]?.string
        containerName = o["containerName"]?.string
        image = o["image"]?.string
        hookMicroseconds = o["hookMicroseconds"]?.integer.flatMap { Int(exactly: $0) }
    }
}
