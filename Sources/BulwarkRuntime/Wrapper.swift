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

    public struct Failure: Error, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    public enum Outcome: Equatable, Sendable {
        case passThrough
        case untargeted
        case rewritten(policy: String, profile: String, notes: [String])
    }

    /// Phase timings on stderr when BULWARK_TRACE_TIMING=1 (start-latency diagnosis).
    static let tracing = ProcessInfo.processInfo.environment["BULWARK_TRACE_TIMING"] == "1"
    static func trace(_ phase: String, since start: inout UInt64) {
        guard tracing else { return }
        let now = DispatchTime.now().uptimeNanoseconds
        FileHandle.standardError.write(Data("bulwark-runtime: \(phase) \((now - start) / 1000) µs\n".utf8))
        start = now
    }

    public func prepare(_ cmd: RuntimeCommandLine, cwd: String) throws(Failure) -> Outcome {
        guard cmd.subcommand == "create" || cmd.subcommand == "run" else { return .passThrough }
        var t = DispatchTime.now().uptimeNanoseconds
        defer { Self.trace("done", since: &t) }
        let bundle = absolute(cmd.bundle ?? ".", relativeTo: cwd)
        let specPath = absolute(cmd.config ?? "config.json", relativeTo: bundle)
        guard let data = FileManager.default.contents(atPath: specPath) else {
            throw Failure(message: "cannot read \(specPath)")
        }
        guard var spec = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw Failure(message: "\(specPath) is not a JSON object")
        }
        let annotations = (spec["annotations"] as? [String: String]) ?? [:]
        Self.trace("read spec", since: &t)
        let policies = loadPolicies()
        Self.trace("load policies", since: &t)
        let container = ContainerDescriptor(pod: nil, containerName: cmd.id ?? "", annotations: annotations)
        let decision = DecisionEngine.decide(policies, container, clusterNamespace: config.clusterProfileNamespace)
        Self.trace("decide", since: &t)
        guard let policy = decision.policy, let profile = decision.profileName else { return .untargeted }
        let enforcers = decision.enforcers.intersection(config.enforcers)
        var notes: [String] = []
        var newAnnotations = annotations
        newAnnotations[DecisionAnnotations.policy] = policy.displayName

        if enforcers.contains(.seccomp) {
            let compiled = SeccompCompiler().compile(policy)
            var linux = (spec["linux"] as? [String: Any]) ?? [:]
            let existing = try decodeSeccomp(linux["seccomp"])
            let merged = SeccompMerge.merge(existing: existing, compiled: compiled)
            notes += merged.notes
            linux["seccomp"] = try encodeJSON(merged.profile)
            spec["linux"] = linux
        }
        if enforcers.contains(.appArmor) {
            if Self.appArmorProfileLoaded(profile) {
                var process = (spec["process"] as? [String: Any]) ?? [:]
                process["apparmorProfile"] = profile
                spec["process"] = process
            } else {
                notes.append("AppArmor unavailable: \(profile) not enforced by AppArmor")
                newAnnotations[DecisionAnnotations.appArmor] = "unavailable"
            }
        }
        if enforcers.contains(.bpf) {
            newAnnotations[DecisionAnnotations.bpfProfile] = profile
            newAnnotations[DecisionAnnotations.failurePolicy] = config.failurePolicy.rawValue
            loadBPFProfileIfMissing(policy, profile: profile, notes: &notes)
            var hooks = (spec["hooks"] as? [String: Any]) ?? [:]
            for stage in ["createRuntime", "poststop"] {
                var list = (hooks[stage] as? [Any]) ?? []
                // hooks.d (podman --hooks-dir) may already have added ours: one binding, not two.
                let present = list.contains {
                    (($0 as? [String: Any])?["path"] as? String)?.hasSuffix("/bulwark-hook") == true
                }
                if present { continue }
                list.append([
                    "path": executableDirectory + "/bulwark-hook",
                    "args": ["bulwark-hook", stage, "--pin-path", config.bpfPinPath],
                    "timeout": 10,
                ])
                hooks[stage] = list
            }
            spec["hooks"] = hooks
        }
        spec["annotations"] = newAnnotations
        Self.trace("compile and merge", since: &t)
        let out: Data
        do {
            out = try JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys, .withoutEscapingSlashes])
        } catch {
            throw Failure(message: "cannot encode the rewritten spec: \(error)")
        }
        var st = stat()
        let mode = stat(specPath, &st) == 0 ? st.st_mode & 0o777 : 0o644
        do {
            try AtomicFile.write(out, to: specPath, permissions: mode, durable: false)
        } catch {
            throw Failure(message: "cannot write \(specPath): \(error)")
        }
        return .rewritten(policy: policy.displayName, profile: profile, notes: notes)
    }

    func loadPolicies() -> [Policy] {
        let files = PolicyFiles.directoryContents(config.policyDirectories)
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        // An invalid file contributes nothing; the agent/CLI report it (a wrapper has no audience).
        return PolicyFiles.load(files, options: options).filter(\.isValid).flatMap(\.policies)
    }

    func decodeSeccomp(_ value: Any?) throws(Failure) -> LinuxSeccomp? {
        guard let value else { return nil }
        do {
            let data = try JSONSerialization.data(withJSONObject: value)
            return try JSONDecoder().decode(LinuxSeccomp.self, from: data)
        } catch {
            throw Failure(message: "the spec's linux.seccomp does not parse: \(error)")
        }
    }

    func encodeJSON<T: Encodable>(_ v: T) throws(Failure) -> Any {
        do {
            return try JSONSerialization.jsonObject(with: JSONEncoder().encode(v))
        } catch {
            throw Failure(message: "cannot encode \(T.self): \(error)")
        }
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

    func absolute(_ path: String, relativeTo base: String) -> String {
        path.hasPrefix("/") ? path : (base as NSString).appendingPathComponent(path)
    }
}
