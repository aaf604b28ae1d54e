import BulwarkBPF
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import Foundation

/// `bulwark-runtime`: on `create`/`run`, decides the container's policy and rewrites
/// `<bundle>/config.json` (seccomp merged into the spec's, AppArmor when the kernel has it, the
/// OCI hook and decision annotations for BPF); every other subcommand passes through. The caller
/// then `execve`s the real runtime with the original argv and environment.
public struct Wrapper {
    public var config: NodeConfig
    /// Directory of the Bulwark executables (`bulwark-hook` lives beside `bulwark-runtime`).
    public var executableDirectory: String

    public init(config: NodeConfig, executableDirectory: String) {
        self.config = config
        self.executableDirectory = executableDirectory
    }

    public enum Outcome: Equatable, Sendable {
        case passThrough
        case untargeted
        case rewritten(policy: String, profile: String, notes: [String])
    }

    /// Phase timings on stderr when BULWARK_TRACE_TIMING=1 (start-latency diagnosis).
    static let tracing = ProcessInfo.processInfo.environment["BULWARK_TRACE_TIMING"] == "1"
    public static func trace(_ phase: String, since start: inout UInt64) {
        guard tracing else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        FileHandle.standardError.write(Data("bulwark-runtime: \(phase) \((now - start) / 1000) µs\n".utf8))
        start = now
    }

    public func prepare(_ cmd: RuntimeCommandLine, cwd: String) throws(RuntimeFailure) -> Outcome {
        guard cmd.createsContainer else { return .passThrough }
        if let refusal = cmd.refusal {
            throw RuntimeFailure(
                message: "refused \(cmd.subcommand ?? ""): \(refusal); Bulwark must read the same bundle the runtime "
                    + "reads (write options as --name value before the container id)")
        }
        var t = DispatchTime.now().uptimeNanoseconds
        defer { Self.trace("done", since: &t) }
        let specPath = cmd.specPath(cwd: cwd)
        var spec = try Self.readSpec(specPath)
        var annotations: [String: String] = [:]
        for m in spec["annotations"]?.object?.members ?? [] { if let v = m.value.string { annotations[m.key] = v } }
        Self.trace("read spec", since: &t)
        let policies = loadPolicies()
        Self.trace("load policies", since: &t)
        let container = ContainerDescriptor(pod: nil, containerName: cmd.id ?? "", annotations: annotations)
        let decision = DecisionEngine.decide(policies, container, clusterNamespace: config.clusterProfileNamespace)
        Self.trace("decide", since: &t)
        if cmd.subcommand == "restore"
            && (decision.policy != nil || annotations[DecisionAnnotations.appArmorProfile] != nil)
        {
            // a restored process keeps the checkpoint's seccomp and AppArmor state and never execs,
            // so its BPF binding could not be armed: confinement cannot be promised
            throw RuntimeFailure(
                message: "refused restore of a container Bulwark confines (\(decision.policy?.displayName ?? "NRI")): "
                    + "checkpoint/restore cannot carry its confinement; start it anew")
        }
        guard let policy = decision.policy, let profile = decision.profileName else {
            // Kubernetes: the NRI plugin decided and asks for the AppArmor profile NRI cannot set
            if let wanted = annotations[DecisionAnnotations.appArmorProfile], !wanted.isEmpty {
                return try applyAppArmorOnly(wanted, spec: spec, specPath: specPath)
            }
            return .untargeted
        }
        let enforcers = decision.enforcers.intersection(config.enforcers)
        var notes: [String] = []
        // the caller's annotations in their order, Bulwark's after them
        var newAnnotations = spec["annotations"]?.object ?? JSONObject()
        newAnnotations[DecisionAnnotations.policy] = .string(policy.displayName)
        newAnnotations[DecisionAnnotations.profile] = .string(profile)

        if enforcers.contains(.seccomp) {
            let compiled = SeccompCompiler().compile(policy)
            var linux = spec["linux"]?.object ?? JSONObject()
            let existing: LinuxSeccomp?
            do {
                existing = try linux["seccomp"].flatMap { $0 == .null ? nil : try LinuxSeccomp(json: $0) }
            } catch {
                throw RuntimeFailure(message: "\(specPath): \(error)")
            }
            let merged = SeccompMerge.merge(existing: existing, compiled: compiled)
            notes += merged.notes
            linux["seccomp"] = merged.profile.json
            spec["linux"] = .object(linux)
        }
        if enforcers.contains(.appArmor) {
            if Self.appArmorProfileLoaded(profile) {
                var process = spec["process"]?.object ?? JSONObject()
                process["apparmorProfile"] = .string(profile)
                spec["process"] = .object(process)
            } else {
                notes.append("AppArmor unavailable: \(profile) not enforced by AppArmor")
                newAnnotations[DecisionAnnotations.appArmor] = .string("unavailable")
            }
        }
        if enforcers.contains(.bpf) {
            newAnnotations[DecisionAnnotations.bpfProfile] = .string(profile)
            newAnnotations[DecisionAnnotations.failurePolicy] = .string(config.failurePolicy(for: policy).rawValue)
            loadBPFProfileIfMissing(policy, profile: profile, notes: &notes)
        }
        // The hook binds BPF profiles; for every targeted container it also records who the
        // container is, so the agent can name its events.
        var hooks = spec["hooks"]?.object ?? JSONObject()
        let ours = Self.resolved(executableDirectory + "/bulwark-hook")
        for stage in ["createRuntime", "poststop"] {
            var list = hooks[stage]?.array ?? []
            // hooks.d (podman --hooks-dir) may already have added ours: one binding, not two. Only
            // this very executable for this stage counts (any path merely named bulwark-hook could
            // be /bin/true in disguise, and the container would never be bound).
            if list.contains(where: { hook in
                guard let path = hook.object?["path"]?.string, Self.resolved(path) == ours else { return false }
                return hook.object?["args"]?.array?.dropFirst().first?.string == stage
            }) {
                continue
            }
            let args = [
                "bulwark-hook", stage, "--pin-path", config.bpfPinPath, "--state-dir", config.containerStateDirectory,
            ]
            list.append(
                .object(
                    JSONObject([
                        ("path", .string(executableDirectory + "/bulwark-hook")),
                        ("args", .array(args.map(JSONValue.string))),
                        ("timeout", .number(10)),
                    ])))
            hooks[stage] = .array(list)
        }
        spec["hooks"] = .object(hooks)
        spec["annotations"] = .object(newAnnotations)
        Self.trace("compile and merge", since: &t)
        try writeSpec(spec, to: specPath)
        return .rewritten(policy: policy.displayName, profile: profile, notes: notes)
    }

    /// Sets `process.apparmorProfile` to a profile the NRI plugin chose, when the kernel has it
    /// loaded; otherwise marks the spec `bulwark.io/apparmor: unavailable` (the other enforcers
    /// were applied through NRI).
    func applyAppArmorOnly(_ profile: String, spec: JSONObject, specPath: String) throws(RuntimeFailure) -> Outcome {
        var spec = spec
        var notes: [String] = []
        if Self.appArmorProfileLoaded(profile) {
            var process = spec["process"]?.object ?? JSONObject()
            process["apparmorProfile"] = .string(profile)
            spec["process"] = .object(process)
        } else {
            var annotations = spec["annotations"]?.object ?? JSONObject()
            annotations[DecisionAnnotations.appArmor] = .string("unavailable")
            spec["annotations"] = .object(annotations)
            notes.append("AppArmor unavailable: \(profile) not enforced by AppArmor")
        }
        try writeSpec(spec, to: specPath)
        return .rewritten(policy: "(NRI)", profile: profile, notes: notes)
    }

    /// The spec as every runtime will read it, or a refusal: a spec that runc (Go, case-insensitive,
    /// merging duplicates) and an exact reader would read differently is never decided on.
    static func readSpec(_ specPath: String) throws(RuntimeFailure) -> JSONObject {
        let data: [UInt8]
        do {
            data = try RegularFile.read(specPath, maxBytes: 16 << 20)
        } catch {
            throw RuntimeFailure(message: "cannot read \(specPath): \(error)")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(data)
        } catch {
            throw RuntimeFailure(message: "\(specPath) is not valid JSON: \(error)")
        }
        guard case .object(let spec) = value else {
            throw RuntimeFailure(message: "\(specPath) is not a JSON object")
        }
        if let problem = SpecShape.ambiguity(in: spec) {
            throw RuntimeFailure(
                message: "\(specPath) refused: \(problem); write each field once, spelled as in the OCI runtime spec")
        }
        return spec
    }

    /// Replaces config.json atomically, keeping its mode (no fsync on the container start path).
    func writeSpec(_ spec: JSONObject, to specPath: String) throws(RuntimeFailure) {
        var st = stat()
        let mode = stat(specPath, &st) == 0 ? st.st_mode & 0o777 : 0o644
        do {
            try AtomicFile.write(
                Data(JSONValue.object(spec).serialized()), to: specPath, permissions: mode, durable: false)
        } catch {
            throw RuntimeFailure(message: "cannot write \(specPath): \(error)")
        }
    }

    static func resolved(_ path: String) -> String {
        guard let p = realpath(path, nil) else { return path }
        defer { free(p) }
        return String(cString: p)
    }

    func loadPolicies() -> [Policy] {
        let files = PolicyFiles.directoryContents(config.policyDirectories)
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        // An invalid file contributes nothing; the agent/CLI report it (a wrapper has no audience).
        return PolicyFiles.load(files, options: options).filter(\.isValid).flatMap(\.policies)
    }

    /// Standalone hosts have no agent yet: load the BPF profile when the enforcer is pinned and the
    /// profile is not. Without an enforcer the hook decides (fail-closed by default).
    func loadBPFProfileIfMissing(_ policy: Policy, profile: String, notes: inout [String]) {
        let e = Enforcer(pinPath: config.bpfPinPath)
        guard e.isLoaded, (try? e.profileID(named: profile)) ?? nil == nil else { return }
        let compiled = BPFCompiler().compile(policy, profileName: profile)
        do { try e.apply(compiled) } catch { notes.append("BPF profile \(profile) not loaded: \(error.message)") }
    }

    static func appArmorProfileLoaded(_ name: String) -> Bool {
        guard let enabled = try? String(contentsOfFile: "/sys/module/apparmor/parameters/enabled", encoding: .utf8),
            enabled.hasPrefix("Y"),
            let profiles = try? String(contentsOfFile: "/sys/kernel/security/apparmor/profiles", encoding: .utf8)
        else { return false }
        return profiles.split(separator: "\n").contains { $0.hasPrefix(name + " (") }
    }
}
