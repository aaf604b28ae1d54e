import BulwarkBPFMaps
import BulwarkOCI
import BulwarkSystem

#if canImport(Glibc)
    import Glibc
#endif

/// The OCI hook (`bulwark-hook`): binds a container's mount namespace to its BPF profile at
/// createRuntime (armed at the entrypoint's execve) and unbinds it at poststop. It needs only the
/// pinned enforcer state, not the agent.
public struct Hook {
    public enum Stage: String, Sendable {
        case createRuntime, prestart, poststop
    }

    public var enforcer: Enforcer
    /// Where container records live (identity for event attribution, and what poststop unbinds).
    public var stateDirectory: String
    /// When the hook process started (CLOCK_MONOTONIC ns), for its latency in the record.
    public var startedAt: UInt64?

    public init(enforcer: Enforcer, stateDirectory: String = "/run/bulwark/containers") {
        self.enforcer = enforcer
        self.stateDirectory = stateDirectory
    }

    /// What the hook did, for the log line.
    public enum Outcome: Equatable, Sendable {
        case untargeted
        case bound(namespace: UInt32, profile: String)
        /// Targeted by a policy without BPF: recorded for event attribution only.
        case recorded(namespace: UInt32, profile: String)
        /// Recording a non-BPF container failed: confinement is unaffected (seccomp/AppArmor are in
        /// the spec), only its events lose their names.
        case recordFailed(String)
        case unbound(namespace: UInt32)
        case nothingToUnbind
        case ignoredFailure(String)
    }

    public func run(stage: Stage, state: OCIState) throws(HookFailure) -> Outcome {
        switch stage {
        case .createRuntime, .prestart: return try create(state)
        case .poststop: return poststop(state)
        }
    }

    func create(_ state: OCIState) throws(HookFailure) -> Outcome {
        guard let profile = state.annotations[DecisionAnnotations.bpfProfile], !profile.isEmpty else {
            return record(state)
        }
        let failClosed = state.annotations[DecisionAnnotations.failurePolicy] != "Ignore"
        func refuse(_ why: String) throws(HookFailure) -> Outcome {
            let message = "container \(state.id): cannot confine with BPF profile \(profile): \(why)"
            if failClosed { throw HookFailure(message: message) }
            return .ignoredFailure(message)
        }
        guard let pid = state.pid else { return try refuse("the runtime gave no pid") }
        let binding: Enforcer.Binding
        do {
            let podIPs = (state.annotations[DecisionAnnotations.podIPs] ?? "").split(separator: ",").map(String.init)
            binding = try enforcer.bind(pid: pid, profile: profile, arming: .exec, podIPs: podIPs)
        } catch {
            return try refuse(error.message + (error.hint.map { " (\($0))" } ?? ""))
        }
        let record = ContainerRecord(
            id: state.id, pid: pid, namespace: binding.namespace, profile: profile,
            policy: state.annotations[DecisionAnnotations.policy], bundle: state.bundle,
            boundAt: Self.now(), bpf: true, pod: PodAnnotations(state.annotations))
        do {
            try saveRecord(record)
        } catch {
            _ = try? enforcer.unbind(namespace: binding.namespace)  // nothing half-done
            return try refuse("cannot record the container: \(error)")
        }
        startRecording(state, namespace: binding.namespace, profile: profile)
        return .bound(namespace: binding.namespace, profile: profile)
    }

    /// A container targeted without BPF: only its identity is recorded (never fatal).
    func record(_ state: OCIState) -> Outcome {
        guard let profile = state.annotations[DecisionAnnotations.profile], !profile.isEmpty else {
            return .untargeted
        }
        guard let pid = state.pid, let inode = Enforcer.namespaceInode(pid: pid), inode <= UInt64(UInt32.max) else {
            return .recordFailed("container \(state.id): no process or mount namespace to record")
        }
        let record = ContainerRecord(
            id: state.id, pid: pid, namespace: UInt32(inode), profile: profile,
            policy: state.annotations[DecisionAnnotations.policy], bundle: state.bundle,
            boundAt: Self.now(), bpf: false, pod: PodAnnotations(state.annotations))
        do {
            try saveRecord(record)
        } catch {
            return .recordFailed("container \(state.id): cannot record: \(error)")
        }
        startRecording(state, namespace: record.namespace, profile: profile)
        return .recorded(namespace: record.namespace, profile: profile)
    }

    /// Behaviour modeling: the namespace joins the syscall recorder before the container's first
    /// instruction. Best effort — without the pinned map (no agent yet, no bpffs) the agent adds it
    /// when it sees the record, and the recording profile's audit records cover the start.
    func startRecording(_ state: OCIState, namespace: UInt32, profile: String) {
        guard state.annotations[DecisionAnnotations.record] == "syscalls" else { return }
        try? enforcer.startRecording(namespace: namespace, profile: profile)
    }

    func poststop(_ state: OCIState) -> Outcome {
        let path = recordPath(state.id)
        defer { unlink(path) }
        guard let data = try? RegularFile.read(path, maxBytes: ContainerRecord.maxBytes, followSymlinks: false),
            let record = ContainerRecord(json: data), record.bpf != false
        else { return .nothingToUnbind }
        // Only our binding: the inode may already belong to a newer container's binding.
        guard let current = enforcer.binding(namespace: record.namespace), current.pid == UInt32(record.pid)
        else { return .nothingToUnbind }
        _ = try? enforcer.unbind(namespace: record.namespace)
        return .unbound(namespace: record.namespace)
    }

    static func now() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_REALTIME, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// Container ids come from the runtime; anything but a plain name is hashed into one.
    func recordPath(_ id: String) -> String {
        let safe =
            id.utf8.count <= 128 && id.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) }
            && !id.hasPrefix(".")
        let name = safe ? id : FNV1a.hex(id.utf8)
        return stateDirectory + "/" + name + ".json"
    }

    func saveRecord(_ record: ContainerRecord) throws {
        var r = record
        if let startedAt {
            var now = timespec()
            clock_gettime(CLOCK_MONOTONIC, &now)
            let ns = UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
            r.hookMicroseconds = Int((ns &- startedAt) / 1000)
        }
        // records name containers to the agent: never in a directory someone else controls
        try TrustedDirectory.ensure(stateDirectory, mode: 0o700)
        // /run is tmpfs: no fsync on the container start path
        try AtomicFile.write(r.json.serialized(), to: recordPath(r.id), permissions: 0o600, durable: false)
    }
}
