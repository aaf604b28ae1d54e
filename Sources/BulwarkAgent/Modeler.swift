import BulwarkBPF
import BulwarkBPFMaps
import BulwarkDelivery
import BulwarkEvents
import BulwarkModel
import BulwarkOCI
import BulwarkSystem
import Foundation
import Logging
import Synchronization

/// Behaviour modeling on this node (`mode: BehaviorModeling`): while a profile's recording window
/// is open (`PolicyStore.recordingWindows`), every container bound to it has its syscalls recorded
/// in the kernel (`ProcessTracker`: sys_enter into a per-namespace bitmap — nothing is lost to the
/// kernel log's rate limit), and the seccomp audit records of its recording profile go into the
/// model instead of the violation log. What was recorded is merged into the profile's model file
/// every `harvestInterval`, when a container goes and when the window closes; then the store
/// reloads, which completes the model and switches the profile to AlwaysAllow.
public final class Modeler: Sendable {
    let store: PolicyStore
    let registry: ContainerRegistry
    let models: ModelStore
    let logger: Logger
    let syscalls = SyscallNames()
    static let harvestInterval = 2.0

    struct State {
        var tracker: ProcessTracker?
        /// namespace → the profile it is recorded for
        var recorded: [UInt32: String] = [:]
        /// the bitmap overflow count last seen per namespace
        var beyond: [UInt32: UInt64] = [:]
        /// what recorded events showed, per profile, not yet in the model file
        var pending: [String: BehaviorModel] = [:]
        /// records an event source lost while profiles were recorded, per profile, not yet in the model
        var pendingLost: [String: UInt64] = [:]
        /// generalises recorded paths (this node's overlay directories, refreshed every harvest)
        var generaliser = PathGeneraliser()
        var lastHarvest = 0.0
    }
    private let state = Mutex(State())
    /// One harvest at a time (the loop's and a reload's): each loads, merges and saves model files
    private let harvesting = NSLock()

    init(store: PolicyStore, registry: ContainerRegistry, models: ModelStore, logger: Logger) {
        self.store = store
        self.registry = registry
        self.models = models
        self.logger = logger
    }

    func use(tracker: ProcessTracker?) { state.withLock { $0.tracker = tracker } }

    /// An event of a profile being recorded joins its model (true: consumed, not a violation):
    /// the recording profile's seccomp records (their syscall), AppArmor complain-mode records and
    /// BPF audit records (files, executions, capabilities, network, ptrace, mounts — §7.3).
    func observe(_ event: ViolationEvent) -> Bool {
        let profile = event.container.profileName
        guard !profile.isEmpty, store.isRecording(profile), let body = event.event.object else {
            return false
        }
        state.withLock { s in
            var m = s.pending[profile] ?? BehaviorModel(name: profile)
            switch event.enforcer {
            case .seccomp: if let call = body["syscall"]?.string { m.addSyscall(call) }
            case .appArmor: m.addAppArmor(body, generaliser: s.generaliser)
            case .bpf: m.addBPF(body, generaliser: s.generaliser)
            }
            s.pending[profile] = m
        }
        return true
    }

    /// An event source lost `n` records (ring buffer or audit queue full, kernel log overwritten):
    /// which profile they belonged to is unknown, so every model being recorded says it may miss them.
    func sourceLost(_ source: String, _ n: UInt64) {
        let recording = store.recordingWindows.keys
        guard !recording.isEmpty else { return }
        state.withLock { s in for p in recording { s.pendingLost[p, default: 0] += n } }
        logger.warning(
            "event records lost while recording behaviour models",
            metadata: ["source": "\(source)", "records": "\(n)", "profiles": "\(recording.sorted())"])
    }

    /// One round: the recorder attached while any profile is modeled, every container of a
    /// modeled profile recorded (the hook adds it before its first instruction where the recording
    /// map is pinned; here the rest), and a harvest when due.
    func tick(now: Double = Date().timeIntervalSince1970) {
        let windows = store.recordingWindows
        let records = registry.records
        // without the tracker (a kernel without BTF tracepoints) no syscalls are recorded, but the
        // AppArmor and BPF records still reach the model
        let tracker = state.withLock({ $0.tracker })
        if let tracker {
            do { try tracker.setRecorder(!windows.isEmpty) } catch {
                logger.error("cannot attach the syscall recorder", metadata: ["error": "\(error.message)"])
            }
        }
        for r in records where windows[r.profile] != nil {
            guard let tracker else { break }
            let known = state.withLock { $0.recorded[r.namespace] != nil }
            if known { continue }
            do {
                try tracker.record(namespace: r.namespace, profile: r.profile)  // kept when the hook added it
                state.withLock { $0.recorded[r.namespace] = r.profile }
                logger.info(
                    "recording a container's behaviour",
                    metadata: ["profile": "\(r.profile)", "container": "\(r.id)", "mntns": "\(r.namespace)"])
            } catch {
                logger.error(
                    "cannot record a container's syscalls", metadata: ["profile": "\(r.profile)", "error": "\(error)"])
            }
        }
        let live = Set(records.map(\.namespace))
        let (due, ended) = state.withLock { s -> (Bool, Bool) in
            let ended = windows.values.contains { now >= $0 }
            return (now - s.lastHarvest >= Self.harvestInterval || ended, ended)
        }
        if due {
            harvest(now: now)
            // namespaces whose container is gone, or whose profile's window closed: recorded for good
            let byHash = Self.byHash(windows.keys)
            for ns in tracker?.recordedNamespaces ?? [] {
                guard let tracker else { break }
                let profile =
                    state.withLock { $0.recorded[ns] } ?? tracker.syscalls(namespace: ns).flatMap { byHash[$0.profile] }
                if live.contains(ns), let profile, let end = windows[profile], now < end { continue }
                tracker.forget(namespace: ns)
                state.withLock {
                    $0.recorded[ns] = nil
                    $0.beyond[ns] = nil
                }
            }
        }
        // a window has closed: the reload marks the model complete and switches the profile
        if ended { store.reload() }
    }

    /// Merges what was recorded into each profile's model file (only when something is new).
    func harvest(now: Double) {
        harvesting.lock()
        defer { harvesting.unlock() }
        let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
        var lost: [String: UInt64] = [:]
        var additions: [String: Set<String>] = [:]
        let (pending, sourceLost) = state.withLock { s -> ([String: BehaviorModel], [String: UInt64]) in
            defer {
                s.pending = [:]
                s.pendingLost = [:]
                s.lastHarvest = now
                s.generaliser = PathGeneraliser(overlayPrefixes: PathGeneraliser.overlayPrefixes(mounts: mounts))
            }
            return (s.pending, s.pendingLost)
        }
        lost.merge(sourceLost, uniquingKeysWith: +)
        let tracker = state.withLock { $0.tracker }
        // the hook adds a container with its profile's hash, before this agent may have seen it
        let byHash = Self.byHash(store.recordingWindows.keys)
        for ns in tracker?.recordedNamespaces ?? [] {
            guard let (numbers, beyond, hash) = tracker?.syscalls(namespace: ns),
                let profile = state.withLock({ $0.recorded[ns] }) ?? byHash[hash]
            else { continue }
            for n in numbers {
                let name = syscalls.name(n)
                if name.first?.isNumber == true {
                    lost[profile, default: 0] += 1  // a number libseccomp cannot name
                } else {
                    additions[profile, default: []].insert(name)
                }
            }
            let seen = state.withLock { s -> UInt64 in
                defer { s.beyond[ns] = beyond }
                return s.beyond[ns] ?? 0
            }
            if beyond > seen { lost[profile, default: 0] += beyond - seen }
        }
        for profile in Set(additions.keys).union(lost.keys).union(pending.keys) {
            do {
                try models.update(profile) { stored in
                    guard var model = stored else { return nil }  // the window opened it
                    if let seen = pending[profile] { model.merge(seen) }
                    let names = additions[profile] ?? []
                    if !names.isEmpty || model.seccomp != nil {
                        model.seccomp = SeccompBehavior(syscalls: (model.seccomp?.syscalls ?? []).union(names))
                    }
                    if let l = lost[profile], l > 0 {
                        let had = model.annotations[BehaviorModel.lostRecordsAnnotation].flatMap(UInt64.init) ?? 0
                        model.annotations[BehaviorModel.lostRecordsAnnotation] = String(had + l)
                    }
                    return model
                }
            } catch {
                logger.error(
                    "cannot update the behaviour model", metadata: ["profile": "\(profile)", "error": "\(error)"])
            }
        }
    }

    /// Profiles by the FNV-1a 64 of their name, as the hook tags a recorded namespace.
    static func byHash(_ profiles: some Sequence<String>) -> [UInt64: String] {
        Dictionary(profiles.map { (FNV1a.hash($0.utf8), $0) }, uniquingKeysWith: { a, _ in a })
    }

    /// The modeler's loop (a quarter second per round: a container's namespace is recorded within
    /// that of its record appearing).
    func worker() -> Worker {
        Worker(name: "bulwark-modeler") { [self] stopped in
            while !stopped() {
                tick()
                Thread.sleep(forTimeInterval: 0.25)
            }
            harvest(now: Date().timeIntervalSince1970)
        }
    }
}
