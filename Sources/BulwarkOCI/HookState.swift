/// The container state an OCI runtime writes to a hook's stdin. runc and crun differ (status
/// words, `pid` omitted or 0 at poststop, crun's extra `root`), so parsing is lenient: only `id`
/// and `bundle` are required; unknown fields are ignored.
public struct OCIState: Sendable, Equatable {
    public var ociVersion: String?
    public var id: String
    public var status: String?
    /// Host pid of the container's init; nil when absent or 0 (poststop).
    public var pid: Int32?
    public var bundle: String
    public var annotations: [String: String]

    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public static let maxBytes = 1 << 20

    public static func parse<C: Collection>(_ data: C) throws(ParseError) -> OCIState where C.Element == UInt8 {
        guard data.count <= maxBytes else { throw ParseError(message: "state is larger than 1 MiB") }
        let object: JSONValue
        do {
            object = try JSONValue.parse(data)
        } catch {
            throw ParseError(message: "state on stdin is not JSON (\(data.count) bytes: \(error))")
        }
        guard let o = object.object else { throw ParseError(message: "state is not a JSON object") }
        guard let id = o["id"]?.string, !id.isEmpty else { throw ParseError(message: "state has no `id`") }
        guard let bundle = o["bundle"]?.string, bundle.hasPrefix("/") else {
            throw ParseError(message: "state has no absolute `bundle`")
        }
        var pid: Int32?
        if let n = o["pid"]?.integer, n > 0, let p = Int32(exactly: n) { pid = p }
        var annotations: [String: String] = [:]
        for m in o["annotations"]?.object?.members ?? [] { if let s = m.value.string { annotations[m.key] = s } }
        return OCIState(
            ociVersion: o["ociVersion"]?.string, id: id, status: o["status"]?.string, pid: pid, bundle: bundle,
            annotations: annotations)
    }
}

/// Annotations that carry Bulwark's decision for a container (written by the NRI plugin or the
/// runtime wrapper, read by the OCI hook).
public enum DecisionAnnotations {
    /// vArmor-style profile name of the policy that targets the container (every enforcer); the
    /// hook records the container under it so the agent can attribute its events.
    public static let profile = "bulwark.io/profile"
    /// vArmor-style name of the BPF profile the container is bound to.
    public static let bpfProfile = "bulwark.io/bpf-profile"
    /// `namespace/name` (or `name` for cluster policies) of the policy that decided.
    public static let policy = "bulwark.io/applied-policy"
    /// `Fail` (default): a container that cannot be confined is refused. `Ignore`: it runs
    /// unconfined with a warning.
    public static let failurePolicy = "bulwark.io/failure-policy"
    /// `unavailable` when the policy asks for AppArmor and the kernel cannot apply it.
    public static let appArmor = "bulwark.io/apparmor"
    /// The AppArmor profile the runtime wrapper should set (`process.apparmorProfile`): the NRI
    /// plugin decides it, NRI cannot set it.
    public static let appArmorProfile = "bulwark.io/apparmor-profile"
    /// `syscalls`: the profile is being modeled (BehaviorModeling); the hook adds the container's
    /// namespace to the syscall recorder before its first instruction.
    public static let record = "bulwark.io/record"
    /// The pod's addresses, comma-separated (the first IPv4 and the first IPv6 count): set by the
    /// NRI plugin from `PodSandbox.ips` (empty when the pod has none, so a value written by anyone
    /// else never stands); the hook binds with them, and `pod-self` egress rules match them.
    public static let podIPs = "bulwark.io/pod-ips"
}

/// Who a container is, from the annotations its runtime writes into the OCI spec (containerd's
/// CRI plugin and CRI-O use different keys). Empty where the runtime says nothing (podman).
public struct PodAnnotations: Sendable, Equatable {
    public var podName = ""
    public var podNamespace = ""
    public var podUID = ""
    public var containerName = ""
    public var image = ""

    public init(_ annotations: [String: String]) {
        func first(_ keys: String...) -> String { keys.lazy.compactMap { annotations[$0] }.first ?? "" }
        podName = first("io.kubernetes.cri.sandbox-name", "io.kubernetes.pod.name")
        podNamespace = first("io.kubernetes.cri.sandbox-namespace", "io.kubernetes.pod.namespace")
        podUID = first("io.kubernetes.cri.sandbox-uid", "io.kubernetes.pod.uid")
        containerName = first("io.kubernetes.cri.container-name", "io.kubernetes.container.name")
        image = first("io.kubernetes.cri.image-name", "io.kubernetes.cri-o.ImageName")
    }
}
