import BulwarkOCI

/// The runtime wrapper's edit of a container's `config.json`, pure: spec + decision + node facts →
/// new spec + notes. Seccomp is merged into the spec's own filter, AppArmor is set only where the
/// kernel has the profile loaded, the OCI hook is added (once) for every targeted container and the
/// decision annotations after the caller's. Golden tests per runtime (runc, crun, podman,
/// containerd specs) pin the output.
public struct SpecPatcher: Sendable {
    /// What the patcher needs to know about the node (answered by the caller's I/O).
    public struct Facts: Sendable {
        /// `bulwark-hook` as the spec should name it, and the options it needs.
        public var hookPath: String
        public var bpfPinPath: String
        public var containerStateDirectory: String
        /// True when the kernel enforces this AppArmor profile now.
        public var appArmorLoaded: @Sendable (String) -> Bool
        /// True when a hook path in the spec is this very `bulwark-hook` (resolved by the caller).
        public var isOurHook: @Sendable (String) -> Bool

        public init(
            hookPath: String, bpfPinPath: String, containerStateDirectory: String,
            appArmorLoaded: @escaping @Sendable (String) -> Bool, isOurHook: @escaping @Sendable (String) -> Bool
        ) {
            self.hookPath = hookPath
            self.bpfPinPath = bpfPinPath
            self.containerStateDirectory = containerStateDirectory
            self.appArmorLoaded = appArmorLoaded
            self.isOurHook = isOurHook
        }
    }

    public enum Outcome: Equatable, Sendable {
        case untargeted
        case patched(spec: JSONObject, policy: String, profile: String, notes: [String])
    }

    public struct Refusal: Error, Sendable, Equatable, CustomStringConvertible {
        public var description: String
    }

    public var facts: Facts

    public init(facts: Facts) { self.facts = facts }

    /// The spec's annotations as strings (the decision's input).
    public static func annotations(of spec: JSONObject) -> [String: String] {
        var out: [String: String] = [:]
        for m in spec["annotations"]?.object?.members ?? [] { if let v = m.value.string { out[m.key] = v } }
        return out
    }

    /// `entry`: the standalone policy that targets the container (nil: none). `restore`: the
    /// command restores a checkpoint.
    public func patch(_ spec: JSONObject, entry: StartIndex.Entry?, restore: Bool) throws(Refusal) -> Outcome {
        let annotations = Self.annotations(of: spec)
        let nriAppArmor = annotations[DecisionAnnotations.appArmorProfile].flatMap { $0.isEmpty ? nil : $0 }
        if restore && (entry != nil || nriAppArmor != nil) {
            // a restored process keeps the checkpoint's seccomp and AppArmor state and never execs,
            // so its BPF binding could not be armed: confinement cannot be promised
            throw Refusal(
                description: "refused restore of a container Bulwark confines (\(entry?.policy ?? "NRI")): "
                    + "checkpoint/restore cannot carry its confinement; start it anew")
        }
        guard let entry else {
            // Kubernetes: the NRI plugin decided and asks for the AppArmor profile NRI cannot set
            guard let profile = nriAppArmor else { return .untargeted }
            var spec = spec
            var notes: [String] = []
            setAppArmor(profile, in: &spec, notes: &notes)
            return .patched(spec: spec, policy: "(NRI)", profile: profile, notes: notes)
        }
        var spec = spec
        var notes: [String] = []
        if let problem = entry.unavailable {
            // fail closed unless the policy (or the node) says Ignore: then what can be applied is,
            // and the rest is reported
            guard entry.failurePolicy == "Ignore" else {
                throw Refusal(description: "\(entry.policy) cannot confine this container: \(problem)")
            }
            notes.append("not confined as \(entry.policy) asks: \(problem) (failure policy Ignore)")
        }
        // (an unavailable profile with failure policy Ignore has no filter: nothing to merge)
        if entry.seccomp && (entry.seccompProfile != nil || entry.unavailable == nil) {
            // an entry that asks for seccomp without a filter is not half-applied
            guard let filter = entry.seccompProfile else {
                throw Refusal(description: "the start index has no seccomp profile for \(entry.policy)")
            }
            var linux = spec["linux"]?.object ?? JSONObject()
            let existing: LinuxSeccomp?
            let compiled: LinuxSeccomp
            do {
                existing = try linux["seccomp"].flatMap { $0 == .null ? nil : try LinuxSeccomp(json: $0) }
            } catch {
                throw Refusal(description: "linux.seccomp: \(error)")
            }
            do { compiled = try LinuxSeccomp(json: filter) } catch {
                throw Refusal(description: "the start index's seccomp profile of \(entry.policy): \(error)")
            }
            let merged = SeccompMerge.merge(existing: existing, compiled: compiled)
            notes += merged.notes
            linux["seccomp"] = merged.profile.json
            spec["linux"] = .object(linux)
        }
        if entry.appArmor { setAppArmor(entry.profile, in: &spec, notes: &notes) }
        // the caller's annotations in their order (with AppArmor's verdict), Bulwark's after them
        var newAnnotations = spec["annotations"]?.object ?? JSONObject()
        newAnnotations[DecisionAnnotations.policy] = .string(entry.policy)
        newAnnotations[DecisionAnnotations.profile] = .string(entry.profile)
        if entry.recording { newAnnotations[DecisionAnnotations.record] = .string("syscalls") }
        if entry.bpf {
            newAnnotations[DecisionAnnotations.bpfProfile] = .string(entry.profile)
            newAnnotations[DecisionAnnotations.failurePolicy] = .string(entry.failurePolicy)
            // standalone containers have no pod addresses: one the caller wrote does not reach the
            // hook's binding (only the NRI plugin writes it, from the runtime's PodSandbox)
            if newAnnotations[DecisionAnnotations.podIPs] != nil {
                newAnnotations[DecisionAnnotations.podIPs] = .string("")
            }
        }
        spec["hooks"] = .object(addingHook(to: spec["hooks"]?.object ?? JSONObject()))
        spec["annotations"] = .object(newAnnotations)
        return .patched(spec: spec, policy: entry.policy, profile: entry.profile, notes: notes)
    }

    /// `process.apparmorProfile` when the kernel has the profile; else the spec says it is unavailable.
    func setAppArmor(_ profile: String, in spec: inout JSONObject, notes: inout [String]) {
        if facts.appArmorLoaded(profile) {
            var process = spec["process"]?.object ?? JSONObject()
            process["apparmorProfile"] = .string(profile)
            spec["process"] = .object(process)
        } else {
            var annotations = spec["annotations"]?.object ?? JSONObject()
            annotations[DecisionAnnotations.appArmor] = .string("unavailable")
            spec["annotations"] = .object(annotations)
            notes.append("AppArmor unavailable: \(profile) not enforced by AppArmor")
        }
    }

    /// The hook binds BPF profiles; for every targeted container it also records who the container
    /// is, so the agent can name its events. hooks.d (podman --hooks-dir) may already have added
    /// ours: one binding, not two. Only this very executable for this stage counts (any path merely
    /// named bulwark-hook could be /bin/true in disguise, and the container would never be bound).
    func addingHook(to hooks: JSONObject) -> JSONObject {
        var hooks = hooks
        for stage in ["createRuntime", "poststop"] {
            var list = hooks[stage]?.array ?? []
            if list.contains(where: { hook in
                guard let path = hook.object?["path"]?.string, facts.isOurHook(path) else { return false }
                return hook.object?["args"]?.array?.dropFirst().first?.string == stage
            }) {
                continue
            }
            let args = [
                "bulwark-hook", stage, "--pin-path", facts.bpfPinPath, "--state-dir", facts.containerStateDirectory,
            ]
            list.append(
                .object(
                    JSONObject([
                        ("path", .string(facts.hookPath)), ("args", .array(args.map(JSONValue.string))),
                        ("timeout", .number(10)),
                    ])))
            hooks[stage] = .array(list)
        }
        return hooks
    }
}
