import BulwarkBPF
import BulwarkOCI
import BulwarkSystem
import Foundation

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

    /// The record kept per container (JSON in `stateDirectory/<id>.json`).
    public struct Record: Codable, Sendable, Equatable {
        public var id: String
        public var pid: Int32
        public var namespace: UInt32
        public var profile: String
        public var policy: String?
        public var bundle: String
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
    }

    public func run(stage: Stage, state: OCIState) throws(RuntimeFailure) -> Outcome {
        switch stage {
        case .createRuntime, .prestart: return try create(state)
        case .poststop: return poststop(state)
        }
    }

    func create(_ state: OCIState) throws(RuntimeFailure) -> Outcome {
        guard let profile = state.annotations[DecisionAnnotations.bpfProfile], !profile.isEmpty else {
            return record(state)
        }
        let failClosed = state.annotations[DecisionAnnotations.failurePolicy] != "Ignore"
        func refuse(_ why: String) throws(RuntimeFailure) -> Outcome {
            let message = "container \(state.id): cannot confine with BPF profile \(profile): \(why)"
            if failClosed { throw RuntimeFailure(message: message) }
            return .ignoredFailure(message)
        }
        guard let pid = state.pid else { return try refuse("the runtime gave no pid") }
        let binding: Enforcer.Binding
        do {
            binding = try enforcer.bind(pid: pid, profile: profile, arming: .exec)
        } catch {
            return try refuse(error.message + (error.hint.map { " (\($0))" } ?? ""))
        }
        let record = Record(
            id: state.id, pid: pid, namespace: binding.namespace, profile: profile,
            policy: state.annotations[DecisionAnnotations.policy], bundle: state.bundle,
            boundAt: Date().timeIntervalSince1970, bpf: true, pod: PodAnnotations(state.annotations))
        do {
            try saveRecord(record)
        } catch {
            _ = try? enforcer.unbind(namespace: binding.namespace)  // nothing half-done
            return try refuse("cannot record the container: \(error)")
        }
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
        let record = Record(
            id: state.id, pid: pid, namespace: UInt32(inode), profile: profile,
            policy: state.annotations[DecisionAnnotations.policy], bundle: state.bundle,
            boundAt: Date().timeIntervalSince1970, bpf: false, pod: PodAnnotations(state.annotations))
        do {
            try saveRecord(record)
        } catch {
            return .recordFailed("container \(state.id): cannot record: \(error)")
        }
        return .recorded(namespace: record.namespace, profile: profile)
    }

    func poststop(_ state: OCIState) -> Outcome {
        let path = recordPath(state.id)
        defer { unlink(path) }
        guard let data = FileManager.default.contents(atPath: path),
            let record = try? JSONDecoder().decode(Record.self, from: data), record.bpf != false
        else { return .nothingToUnbind }
        // Only our binding: the inode may already belong to a newer container's binding.
        guard let current = enforcer.binding(namespace: record.namespace), current.pid == UInt32(record.pid)
        else { return .nothingToUnbind }
        _ = try? enforcer.unbind(namespace: record.namespace)
        return .unbound(namespace: record.namespace)
    }

    /// Container ids come from the runtime; anything but a plain name is hashed into one.
    func recordPath(_ id: String) -> String {
        let safe =
            id.utf8.count <= 128 && id.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) }
            && !id.hasPrefix(".")
        let name = safe ? id : String(format: "%016llx", FNV1a.hash(id.utf8))
        return stateDirectory + "/" + name + ".json"
    }

    func saveRecord(_ record: Record) throws {
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
        try AtomicFile.write(JSONEncoder().encode(r), to: recordPath(r.id), permissions: 0o600, durable: false)
    }
}
