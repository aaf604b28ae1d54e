import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles

public typealias NRIPod = Nri_Pkg_Api_V1alpha1_PodSandbox
public typealias NRIContainer = Nri_Pkg_Api_V1alpha1_Container
public typealias NRIAdjustment = Nri_Pkg_Api_V1alpha1_ContainerAdjustment

/// The NRI plugin's decisions, pure: which events to subscribe to, and what a new container's
/// adjustment is (hooks, decision annotations, seccomp) — from the shared decision engine.
public struct PluginCore: Sendable {
    public var config: NodeConfig
    public var policies: PolicyIndex
    /// Directory of `bulwark-hook`.
    public var executableDirectory: String
    /// The node records modeled containers' syscalls in the kernel (`SeccompCompiler`).
    public var kernelRecordsSyscalls = false

    public init(config: NodeConfig, policies: PolicyIndex, executableDirectory: String) {
        self.config = config
        self.policies = policies
        self.executableDirectory = executableDirectory
    }

    // MARK: Runtime versions

    /// What the runtime can take, from `ConfigureRequest` (NRI_version since v0.12; else inferred
    /// from the runtime's name and version, reference/nri-oci.md §4.1).
    public struct RuntimeCapabilities: Sendable, Equatable {
        public var nriVersion: (major: Int, minor: Int)
        /// `linux.seccomp_policy` adjustments (NRI ≥ v0.10: containerd ≥ 2.2, CRI-O ≥ 1.34).
        public var seccompAdjustment: Bool { nriVersion.major > 0 || nriVersion.minor >= 10 }
        /// Dedicated per-event RPCs (NRI ≥ v0.12); older runtimes use StateChange.
        public var perEventCalls: Bool { nriVersion.major > 0 || nriVersion.minor >= 12 }

        public static func == (a: Self, b: Self) -> Bool { a.nriVersion == b.nriVersion }

        public init(nriVersion: String, runtimeName: String, runtimeVersion: String) {
            if let v = Self.parse(nriVersion) {
                self.nriVersion = v
            } else {
                self.nriVersion = Self.infer(runtimeName: runtimeName, runtimeVersion: runtimeVersion)
            }
        }

        /// `v0.12.1` → (0, 12); nil for "", "unknown" or a devel string.
        static func parse(_ s: String) -> (Int, Int)? {
            let t = s.hasPrefix("v") ? s.dropFirst() : Substring(s)
            let parts = t.split(separator: ".")
            guard parts.count >= 2, let major = Int(parts[0]), let minor = Int(parts[1]) else { return nil }
            return (major, minor)
        }

        static func infer(runtimeName: String, runtimeVersion: String) -> (Int, Int) {
            guard let (major, minor) = parse(runtimeVersion) else { return (0, 3) }
            switch runtimeName.lowercased() {
            case "containerd":
                if major >= 2 && minor >= 3 || major > 2 { return (0, 12) }
                if major == 2 && minor == 2 { return (0, 10) }
                return (0, 8)
            case "cri-o", "crio":
                if major == 1 && minor >= 37 || major > 1 { return (0, 12) }
                if major == 1 && minor >= 35 { return (0, 11) }
                if major == 1 && minor == 34 { return (0, 10) }
                return (0, 6)
            default:
                return (0, 3)
            }
        }
    }

    /// The events Bulwark needs: CreateContainer (decide, adjust), StartContainer (pid: check the
    /// binding), StopContainer and RemoveContainer (unbind). All below 0x800, valid for every
    /// runtime; never 0 (which would mean "everything").
    public static let eventMask: Int32 = 1 << 3 | 1 << 5 | 1 << 9 | 1 << 10

    // MARK: Decisions

    /// The decision engine's view of an NRI container.
    public static func descriptor(pod: NRIPod, container: NRIContainer) -> ContainerDescriptor {
        ContainerDescriptor(
            pod: .init(namespace: pod.namespace, name: pod.name, labels: pod.labels, annotations: pod.annotations),
            containerName: container.name, annotations: container.annotations,
            image: container.hasImage ? container.image.name : "")
    }

    /// The decision on the policies that can select this container (`PolicyIndex`), so a node
    /// with many policies does not sort and try all of them on every call.
    public func decide(pod: NRIPod, container: NRIContainer) -> Decision {
        policies.decide(
            Self.descriptor(pod: pod, container: container), clusterNamespace: config.clusterProfileNamespace)
    }

    public struct Outcome: Sendable {
        public var response: Nri_Pkg_Api_V1alpha1_CreateContainerResponse
        public var decision: Decision
        /// vArmor's explicit `container.<enforcer>.security.beta.varmor.org/<c>: localhost/<p>`.
        public var explicitProfile: String?
        public var notes: [String]
        /// Why the policy's profile cannot be compiled on this node now (a DefenseInDepth policy
        /// without its behaviour model): the caller refuses the container or, with failure policy
        /// Ignore, lets it run and reports it.
        public var unavailable: String? = nil
    }

    /// The adjustment for a new container: nothing unless a policy (or an explicit vArmor
    /// annotation) targets it.
    public func createContainer(
        pod: NRIPod, container: NRIContainer, capabilities: RuntimeCapabilities,
        storedSeccomp: (String) -> LinuxSeccomp? = { _ in nil },
        model: (String) -> BehaviorModel? = { _ in nil }
    ) -> Outcome {
        let decision = decide(pod: pod, container: container)
        var response = Nri_Pkg_Api_V1alpha1_CreateContainerResponse()
        var notes: [String] = []
        let explicit =
            Self.explicitProfile(pod: pod, container: container.name)
            ?? Self.explicitAppArmorProfile(pod: pod, container: container.name)
            ?? Self.explicitSeccompProfile(pod: pod, container: container.name)
        guard let profile = decision.profileName ?? explicit else {
            return Outcome(response: response, decision: decision, explicitProfile: nil, notes: [])
        }
        let enforcers: EnforcerSet =
            decision.policy != nil
            ? decision.enforcers.intersection(config.enforcers)
            : (Self.explicitProfile(pod: pod, container: container.name) != nil
                ? config.enforcers.intersection([.bpf]) : [])
        var adjust = NRIAdjustment()
        if let policy = decision.policy {
            adjust.annotations[DecisionAnnotations.policy] = policy.displayName
        }
        adjust.annotations[DecisionAnnotations.profile] = profile
        if decision.policy?.spec.policy.mode == .behaviorModeling {
            adjust.annotations[DecisionAnnotations.record] = "syscalls"
        }
        if enforcers.contains(.bpf) {
            adjust.annotations[DecisionAnnotations.bpfProfile] = profile
            adjust.annotations[DecisionAnnotations.failurePolicy] = config.failurePolicy(for: decision.policy).rawValue
            // the hook binds with them (pod-self); always written, so no other value stands
            adjust.annotations[DecisionAnnotations.podIPs] = pod.ips.joined(separator: ",")
        }
        if let explicitAppArmor = Self.explicitAppArmorProfile(pod: pod, container: container.name) {
            adjust.annotations[DecisionAnnotations.appArmorProfile] = explicitAppArmor
        } else if enforcers.contains(.appArmor) {
            // NRI cannot set process.apparmorProfile: the runtime wrapper does, from this annotation
            adjust.annotations[DecisionAnnotations.appArmorProfile] = profile
        }
        var hooks = Nri_Pkg_Api_V1alpha1_Hooks()
        let already = container.hooks.createRuntime.contains { $0.path.hasSuffix("/bulwark-hook") }
        if !already {
            hooks.createRuntime = [hook("createRuntime")]
            hooks.poststop = [hook("poststop")]
            adjust.hooks = hooks
        }
        let behaviour = decision.policy?.spec.policy.defenseInDepth?.needsModel == true ? model(profile) : nil
        let unavailable = decision.policy.flatMap {
            ModelProfiles.unavailable($0, profileName: profile, enforcers: enforcers, model: behaviour)
        }
        if enforcers.contains(.seccomp), let policy = decision.policy,
            let compiled = try? SeccompCompiler(model: behaviour, kernelRecordsSyscalls: kernelRecordsSyscalls).compile(
                policy)
        {
            if capabilities.seccompAdjustment {
                let existing =
                    container.linux.hasSeccompPolicy ? Self.oci(container.linux.seccompPolicy) : nil
                let merged = SeccompMerge.merge(existing: existing, compiled: compiled)
                notes += merged.notes
                adjust.linux.seccompPolicy = Self.nri(merged.profile)
            } else {
                notes.append(
                    "seccomp not applied by NRI: the runtime's NRI is older than v0.10 (the runtime wrapper can)")
            }
        }
        if decision.policy == nil, let name = Self.explicitSeccompProfile(pod: pod, container: container.name) {
            if !capabilities.seccompAdjustment {
                notes.append("seccomp profile \(name) not applied: the runtime's NRI is older than v0.10")
            } else if let stored = storedSeccomp(name) {
                adjust.linux.seccompPolicy = Self.nri(stored)
            } else {
                notes.append("seccomp profile \(name) is not stored on this node")
            }
        }
        response.adjust = adjust
        return Outcome(
            response: response, decision: decision, explicitProfile: explicit, notes: notes, unavailable: unavailable)
    }

    func hook(_ stage: String) -> Nri_Pkg_Api_V1alpha1_Hook {
        var h = Nri_Pkg_Api_V1alpha1_Hook()
        h.path = executableDirectory + "/bulwark-hook"
        h.args = [
            "bulwark-hook", stage, "--pin-path", config.bpfPinPath, "--state-dir", config.containerStateDirectory,
        ]
        var t = Nri_Pkg_Api_V1alpha1_OptionalInt()
        t.value = 10
        h.timeout = t
        return h
    }

    /// vArmor's explicit BPF binding annotation on the pod, for this container.
    public static func explicitProfile(pod: NRIPod, container: String) -> String? {
        localhost(pod.annotations["container.bpf.security.beta.varmor.org/\(container)"])
    }

    /// An explicit AppArmor profile: vArmor's annotation, or Kubernetes' own (pre-1.30) one.
    public static func explicitAppArmorProfile(pod: NRIPod, container: String) -> String? {
        localhost(pod.annotations["container.apparmor.security.beta.varmor.org/\(container)"])
            ?? localhost(pod.annotations["container.apparmor.security.beta.kubernetes.io/\(container)"])
    }

    /// An explicit seccomp profile (vArmor's annotation): the name of a stored profile.
    public static func explicitSeccompProfile(pod: NRIPod, container: String) -> String? {
        localhost(pod.annotations["container.seccomp.security.beta.varmor.org/\(container)"])
    }

    static func localhost(_ v: String?) -> String? {
        guard let v, v.hasPrefix("localhost/") else { return nil }
        let name = String(v.dropFirst("localhost/".count))
        // a profile name, never a path
        return name.isEmpty || name.contains("/") || name.hasPrefix(".") ? nil : name
    }

    // MARK: Seccomp between NRI and OCI

    static func oci(_ s: Nri_Pkg_Api_V1alpha1_LinuxSeccomp) -> LinuxSeccomp {
        var o = LinuxSeccomp(
            defaultAction: s.defaultAction,
            syscalls: s.syscalls.map { c in
                LinuxSyscall(
                    names: c.names, action: c.action, errnoRet: c.hasErrnoRet ? c.errnoRet.value : nil,
                    args: c.args.isEmpty
                        ? nil
                        : c.args.map {
                            LinuxSeccompArg(
                                index: $0.index, value: $0.value, valueTwo: $0.valueTwo == 0 ? nil : $0.valueTwo,
                                op: $0.op)
                        })
            })
        o.defaultErrnoRet = s.hasDefaultErrno ? s.defaultErrno.value : nil
        o.architectures = s.architectures.isEmpty ? nil : s.architectures
        o.flags = s.flags.isEmpty ? nil : s.flags
        o.listenerPath = s.listenerPath.isEmpty ? nil : s.listenerPath
        o.listenerMetadata = s.listenerMetadata.isEmpty ? nil : s.listenerMetadata
        return o
    }

    static func nri(_ o: LinuxSeccomp) -> Nri_Pkg_Api_V1alpha1_LinuxSeccomp {
        var s = Nri_Pkg_Api_V1alpha1_LinuxSeccomp()
        s.defaultAction = o.defaultAction
        if let e = o.defaultErrnoRet {
            var v = Nri_Pkg_Api_V1alpha1_OptionalUInt32()
            v.value = e
            s.defaultErrno = v
        }
        s.architectures = o.architectures ?? []
        s.flags = o.flags ?? []
        s.listenerPath = o.listenerPath ?? ""
        s.listenerMetadata = o.listenerMetadata ?? ""
        s.syscalls = (o.syscalls ?? []).map { c in
            var n = Nri_Pkg_Api_V1alpha1_LinuxSyscall()
            n.names = c.names
            n.action = c.action
            if let e = c.errnoRet {
                var v = Nri_Pkg_Api_V1alpha1_OptionalUInt32()
                v.value = e
                n.errnoRet = v
            }
            n.args = (c.args ?? []).map { a in
                var x = Nri_Pkg_Api_V1alpha1_LinuxSeccompArg()
                x.index = a.index
                x.value = a.value
                x.valueTwo = a.valueTwo ?? 0
                x.op = a.op
                return x
            }
            return n
        }
        return s
    }
}
