import BulwarkBPF
import BulwarkBPFMaps
import BulwarkDelivery
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
        /// syscall names from audit records, per profile, not yet in the model file
        var pending: [String: Set<String>] = [:]
        var lastHarvest = 0.0
    }
    private let state = Mutex(State())

    init(store: PolicyStore, registry: ContainerRegistry, models: ModelStore, logger: Logger) {
        self.store = store
        self.registry = registry
        self.models = models
        self.logger = logger
    }

    func use(tracker: ProcessTracker?) { state.withLock { $0.tracker = tracker } }

    /// A seccomp audit record of `profile`: while it is being recorded the syscall joins its model
    /// (true: consumed, not a violation event).
    func observe(profile: String, syscall: String) -> Bool {
        guard store.recordingWindows[profile] != nil else { return false }
        state.withLock { _ = $0.pending[profile, default: []].insert(syscall) }
        return true
    }

    /// One round: the recorder attached while any profile is modeled, every container of a
    /// modeled profile recorded (the hook adds it before its first instruction where the recording
    /// map is pinned; here the rest), and a harvest when due.
    func tick(now: Double = Date().timeIntervalSince1970) {
        let windows = store.recordingWindows
        guard let tracker = state.withLock({ $0.tracker }) else { return }
        do { try tracker.setRecorder(!windows.isEmpty) } catch {
            logger.error("cannot attach the syscall recorder", metadata: ["error": "\(error.message)"])
        }
        let records = registry.records
        for r in records where windows[r.profile] != nil {
            let known = state.withLock { $0.recorded[r.namespace] != nil }
            if known { continue }
            do {
                try tracker.record(namespace: r.namespace)  // kept as it is when the hook added it
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
            for ns in tracker.recordedNamespaces {
                let profile = state.withLock { $0.recorded[ns] } ?? registry.record(namespace: ns)?.profile
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
        var (additions, lost) = state.withLock { s -> ([String: Set<String>], [String: UInt64]) in
            defer {
                s.pending = [:]
                s.lastHarvest = now
            }
            return (s.pending, [:])
        }
        let tracker = state.withLock { $0.tracker }
        for ns in tracker?.recordedNamespaces ?? [] {
            // the hook may have added it before this agent saw the container's record
            guard let profile = state.withLock({ $0.recorded[ns] }) ?? registry.record(namespace: ns)?.profile,
                let (numbers, beyond) = tracker?.syscalls(namespace: ns)
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
        for profile in Set(additions.keys).union(lost.keys) {
            do {
                guard var model = try models.load(profile) else { continue }  // the window opened it
                let before = model
                let names = additions[profile] ?? []
                if !names.isEmpty || model.seccomp != nil {
                    model.seccomp = SeccompBehavior(syscalls: (model.seccomp?.syscalls ?? []).union(names))
                }
                if let l = lost[profile], l > 0 {
                    let had = model.annotations[BehaviorModel.lostRecordsAnnotation].flatMap(UInt64.init) ?? 0
                    model.annotations[BehaviorModel.lostRecordsAnnotation] = String(had + l)
                }
                if model != before { try models.save(model) }
            } catch {
                logger.error(
                    "cannot update the behaviour model", metadata: ["profile": "\(profile)", "error": "\(error)"])
            }
        }
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
