import BulwarkBPF
import BulwarkBPFMaps
import BulwarkCluster
import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import Foundation
import Logging
import Synchronization

/// The agent's active policies: the last good version of every file in the policy directories,
/// compiled and delivered to the kernel. An invalid file never replaces a good one; a removed file
/// unloads its profiles (a BPF profile stays while containers are still bound to it).
public final class PolicyStore: Sendable {
    /// The policy that owns a profile, as events name it.
    public struct Owner: Sendable, Equatable {
        public var kind: String
        public var name: String
        public var namespace: String
    }

    public struct FileStatus: Sendable, Equatable {
        public var path: String
        public var valid: Bool
        /// Display names of the policies active from this file.
        public var policies: [String]
        /// `file:line: field: message (hint)` lines of the last rejected version.
        public var errors: [String]
        /// The file is invalid now but an earlier valid version stays active.
        public var keptLastGood: Bool
    }

    public typealias ProfileStatus = ProfileDelivery.Status

    struct State {
        var good: [String: [Policy]] = [:]
        var files: [String: FileStatus] = [:]
        /// profile name → the policy last delivered under it
        var applied: [String: Policy] = [:]
        /// What the applied policies name of the cluster's addresses (built with the index)
        var references: [BPFCompiler.ClusterReference] = []
        /// `applied` indexed for decisions, rebuilt when it changes
        var index = PolicyIndex([])
        var profiles: [String: ProfileStatus] = [:]
        /// profile name → its behaviour model file's identity when delivered (DefenseInDepth from a
        /// model): a model imported or re-recorded is delivered again though the policy is the same
        var models: [String: [Int64]] = [:]
        /// profiles whose behaviour-modeling window is open → when it closes (wall clock)
        var recording: [String: Double] = [:]
        /// The inventory file's last good contents (`inventoryFile`), its identity when read, and a
        /// generation that moves when its contents change
        var inventory: ClusterInventory?
        var inventoryIdentity: [Int64]?
        var inventoryRead = false
        var inventoryGeneration = 0
        var inventoryError: String?
        /// profile name → what of the inventory it was compiled with (profiles whose BPF rules
        /// name cluster addresses: the file's generation, and when each part the profile reads
        /// last changed): compiled again, and swapped live, when those addresses change — a change
        /// in a namespace or watch the profile does not read costs it nothing
        var compiledWith: [String: InventoryStamp] = [:]
        /// profile name → the watches its cluster references read (`WatchScope.parts`)
        var reads: [String: [WatchScope.Part]] = [:]
        /// The inventory comes from the API server (`inventoryFile` is then not read)
        var inventoryFromAPI = false
        /// Policies from the API server: `api:KIND/NAMESPACE/NAME` → its last good policies, and
        /// the resourceVersion last parsed
        var apiGood: [String: [Policy]] = [:]
        var apiVersions: [String: String] = [:]
        /// `api:…` id → the object's uid (for Events about it)
        var apiUIDs: [String: String] = [:]
        var reloads = 0
        var lastReload = 0.0
    }

    struct InventoryStamp: Equatable {
        var generation: Int
        var parts: [ClusterInventory.Stamp]
    }

    let config: NodeConfig
    /// The node config file the agent runs with: its start index is published after every reload
    /// (nil: none is published, as in tests that run several agents).
    let configPath: String?
    let startIndexDirectory: String
    let logger: Logger
    let notice: @Sendable (JSONValue) -> Void
    private let state = Mutex(State())
    private let serial = NSLock()
    private let beforeReload = Mutex<(@Sendable () -> Void)?>(nil)

    /// Runs `work` at the start of every reload, before a policy is read: the modeler harvests what
    /// is recorded, so a profile switched from BehaviorModeling to a model compiles with every
    /// record taken until then (not the last harvest's, up to two seconds old).
    public func runBeforeReload(_ work: @escaping @Sendable () -> Void) {
        beforeReload.withLock { $0 = work }
    }

    public init(
        config: NodeConfig, configPath: String? = nil, startIndexDirectory: String = "/run/bulwark/start",
        logger: Logger, notice: @escaping @Sendable (JSONValue) -> Void = { _ in }
    ) {
        self.config = config
        self.configPath = configPath
        self.startIndexDirectory = startIndexDirectory
        self.logger = logger
        self.notice = notice
    }

    public func owner(ofProfile name: String) -> Owner? {
        state.withLock { s in
            s.applied[name].map {
                Owner(kind: $0.kind.rawValue, name: $0.name, namespace: $0.namespace ?? "")
            }
        }
    }

    public var files: [FileStatus] { state.withLock { $0.files.values.sorted { $0.path < $1.path } } }
    public var profiles: [ProfileStatus] { state.withLock { $0.profiles.values.sorted { $0.name < $1.name } } }
    /// The active policies indexed for decisions (built once per reload, not per container).
    public var activeIndex: PolicyIndex { state.withLock { $0.index } }
    public var reloads: Int { state.withLock { $0.reloads } }

    /// Re-reads every policy file and delivers what changed. Serialized: the inotify watcher and
    /// SIGHUP may ask at the same time.
    @discardableResult
    public func reload() -> (applied: Int, removed: Int, rejected: Int) {
        serial.lock()
        defer { serial.unlock() }
        if !state.withLock({ $0.recording.isEmpty }), let work = beforeReload.withLock({ $0 }) { work() }
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        // stamped before anything is read: a file that changes meanwhile makes the index stale
        let stamps = configPath.map {
            StartIndexPublisher.stamps(
                configPath: $0, policyDirectories: config.policyDirectories, modelDirectory: config.modelDirectory)
        }
        let paths = PolicyFiles.directoryContents(config.policyDirectories)
        var s = state.withLock { $0 }
        var rejected = 0
        for file in PolicyFiles.load(paths, options: options) {
            if file.isValid {
                s.good[file.file] = file.policies
                s.files[file.file] = FileStatus(
                    path: file.file, valid: true, policies: file.policies.map(\.displayName), errors: [],
                    keptLastGood: false)
            } else {
                rejected += 1
                let errors = file.errors.map(\.description)
                let kept = s.good[file.file] != nil
                s.files[file.file] = FileStatus(
                    path: file.file, valid: false, policies: (s.good[file.file] ?? []).map(\.displayName),
                    errors: errors, keptLastGood: kept)
                logger.error(
                    "policy file rejected",
                    metadata: [
                        "file": "\(file.file)", "errors": "\(errors.joined(separator: "; "))",
                        "kept": "\(kept ? "the last good version stays active" : "nothing from it is active")",
                    ])
                notice(
                    .object(
                        JSONObject([
                            ("level", .string("error")), ("message", .string("policy file rejected")),
                            ("file", .string(file.file)), ("errors", .array(errors.map(JSONValue.string))),
                            ("keptLastGood", .bool(kept)),
                        ])))
            }
        }
        let present = Set(paths)
        for gone in s.good.keys where !present.contains(gone) {
            s.good[gone] = nil
            s.files[gone] = nil
            logger.info("policy file removed", metadata: ["file": "\(gone)"])
        }
        // profile name → policy; the first file (sorted path order) wins a duplicate name
        var wanted: [String: Policy] = [:]
        // files before API objects ("/…" sorts before "api:…"): a node's policy file wins over an
        // object that defines the same profile (docs/kubernetes.md)
        for path in (Array(s.good.keys) + Array(s.apiGood.keys)).sorted() {
            for p in s.good[path] ?? s.apiGood[path] ?? [] {
                let name = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
                if let other = wanted[name], other != p {
                    logger.warning(
                        "two policies define the same profile; the first is active",
                        metadata: ["profile": "\(name)", "file": "\(path)"])
                    continue
                }
                wanted[name] = p
            }
        }
        var applied = 0
        var removed = 0
        readInventory(&s)
        // node facts once a reload; the inventory's last good version
        let delivery = ProfileDelivery(
            config: config, inventory: s.inventory?.egress ?? EgressInventory.none, logger: logger)
        s.recording = [:]
        for (name, policy) in wanted where policy.spec.policy.mode == .behaviorModeling {
            switch recordingWindow(name, policy, models: delivery.modelStore) {
            case .open(let end): s.recording[name] = end
            case .complete:
                // as vArmor: once the model is complete the profile allows everything
                wanted[name] = policy.afterModeling
            case .unavailable: break  // the recording profile stays; nothing is recorded
            }
        }
        for (name, policy) in wanted.sorted(by: { $0.key < $1.key }) {
            let model =
                policy.spec.policy.defenseInDepth?.needsModel == true
                ? Paths.identity(delivery.modelStore.path(name)) ?? [] : nil
            // the watches its references read: kept with the policy (this runs for every profile
            // on every address change)
            if s.applied[name] != policy {
                s.reads[name] = BPFCompiler.clusterReferences(policy).flatMap(WatchScope.parts)
            }
            let reads = s.reads[name] ?? []
            let inventory =
                reads.isEmpty
                ? nil : InventoryStamp(generation: s.inventoryGeneration, parts: s.inventory?.stamp(reads) ?? [])
            guard s.applied[name] != policy || s.models[name] != model || s.compiledWith[name] != inventory else {
                continue
            }
            if s.applied[name] == policy && s.models[name] == model, let previous = s.profiles[name] {
                // only cluster addresses moved: the BPF tables, live, if their rows changed
                s.profiles[name] = delivery.refreshBPF(policy, profile: name, previous: previous)
                s.compiledWith[name] = inventory
                continue
            }
            s.profiles[name] = delivery.deliver(policy, profile: name)
            s.applied[name] = policy
            s.models[name] = model
            s.compiledWith[name] = inventory
            applied += 1
        }
        for name in s.applied.keys.sorted() where wanted[name] == nil {
            if let kept = delivery.withdraw(name) {
                s.profiles[name]?.bpf = kept
                continue
            }
            s.applied[name] = nil
            s.reads[name] = nil
            s.profiles[name] = nil
            s.models[name] = nil
            s.compiledWith[name] = nil
            removed += 1
        }
        if applied > 0 || removed > 0 {
            s.index = PolicyIndex(Array(s.applied.values))
            s.references = s.applied.values.flatMap(BPFCompiler.clusterReferences)
        }
        s.reloads += 1
        s.lastReload = Date().timeIntervalSince1970
        let final = s
        state.withLock { $0 = final }
        recordingAny.store(!final.recording.isEmpty, ordering: .relaxed)
        if let configPath, let stamps {
            let rejectedFiles = s.files.values.filter { !$0.valid }.map(\.path).sorted()
            let index = StartIndexPublisher.build(
                config: config, configPath: configPath, stamps: stamps, policies: Array(s.applied.values),
                rejected: rejectedFiles)
            do { try StartIndexPublisher.publish(index, directory: startIndexDirectory) } catch {
                logger.error("cannot publish the start index", metadata: ["error": "\(error)"])
            }
        }
        logger.info(
            "policies reloaded",
            metadata: [
                "profiles": "\(wanted.count)", "changed": "\(applied)", "removed": "\(removed)",
                "rejectedFiles": "\(rejected)",
            ])
        return (applied, removed, rejected)
    }

    /// Reads `inventoryFile` when it changed; a file that does not read keeps the last good
    /// inventory (as a rejected policy file keeps its last good version).
    private func readInventory(_ s: inout State) {
        guard !config.inventoryFile.isEmpty, !s.inventoryFromAPI else { return }
        let identity = Paths.identity(config.inventoryFile)
        guard !s.inventoryRead || identity != s.inventoryIdentity else { return }
        s.inventoryRead = true
        s.inventoryIdentity = identity
        switch InventorySource.read(config.inventoryFile) {
        case .success(let inventory):
            s.inventoryError = nil
            if inventory != s.inventory {
                s.inventory = inventory
                s.inventoryGeneration += 1
                let c = inventory?.counts
                logger.info(
                    "inventory read",
                    metadata: [
                        "file": "\(config.inventoryFile)", "pods": "\(c?.pods ?? 0)", "services": "\(c?.services ?? 0)",
                        "endpointSlices": "\(c?.endpointSlices ?? 0)",
                    ])
            }
        case .failure(let error):
            s.inventoryError = error.description
            let kept = s.inventory != nil
            logger.error(
                "inventory file rejected",
                metadata: [
                    "file": "\(config.inventoryFile)", "error": "\(error)",
                    "kept":
                        "\(kept ? "the last good version stays in use" : "no inventory: toServices/toPods policies are refused")",
                ])
            notice(
                .object(
                    JSONObject([
                        ("level", .string("error")), ("message", .string("inventory file rejected")),
                        ("file", .string(config.inventoryFile)), ("errors", .array([.string(error.description)])),
                        ("keptLastGood", .bool(kept)),
                    ])))
        }
    }

    /// What the active policies' BPF profiles name of the cluster's addresses (the API watches
    /// just that: `WatchScope`).
    public var clusterReferences: [BPFCompiler.ClusterReference] { state.withLock { $0.references } }

    /// The cluster's addresses from the API server (replaces `inventoryFile`); the profiles that
    /// name cluster addresses are refreshed at the next `reload()`.
    public func setClusterInventory(_ inventory: ClusterInventory) {
        state.withLock { s in
            // from here on a profile is compiled again when a part it reads changed (its stamp)
            if !s.inventoryFromAPI { s.inventoryGeneration += 1 }
            s.inventoryFromAPI = true
            s.inventory = inventory
        }
    }

    /// The VarmorPolicy or VarmorClusterPolicy objects the API server has now (`namespace/name` →
    /// object): each is read as a policy file is (same validation; a rejected version keeps the
    /// last good one). Call `reload()` to deliver.
    public func setAPIObjects(_ kind: PolicyKind, _ objects: [String: JSONValue]) {
        let prefix = "api:\(kind.rawValue)/"
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        state.withLock { s in
            var seen = Set<String>()
            for (key, object) in objects {
                let id = prefix + key
                seen.insert(id)
                let meta = object.object?["metadata"]?.object
                let version = meta?["resourceVersion"]?.string ?? ""
                if s.apiVersions[id] == version && !version.isEmpty { continue }
                s.apiVersions[id] = version
                s.apiUIDs[id] = meta?["uid"]?.string
                // list items carry no kind/apiVersion
                var o = object.object ?? JSONObject()
                o["apiVersion"] = .string("crd.varmor.org/v1beta1")
                o["kind"] = .string(kind.rawValue)
                let file = PolicyParser.parse(
                    String(decoding: JSONValue.object(o).serialized(), as: UTF8.self), file: id, options: options)
                if file.isValid {
                    s.apiGood[id] = file.policies
                    s.files[id] = FileStatus(
                        path: id, valid: true, policies: file.policies.map(\.displayName), errors: [],
                        keptLastGood: false)
                } else {
                    let errors = file.errors.map(\.description)
                    let kept = s.apiGood[id] != nil
                    s.files[id] = FileStatus(
                        path: id, valid: false, policies: (s.apiGood[id] ?? []).map(\.displayName), errors: errors,
                        keptLastGood: kept)
                    logger.error(
                        "policy object rejected",
                        metadata: [
                            "object": "\(id)", "errors": "\(errors.joined(separator: "; "))",
                            "kept": "\(kept ? "the last good version stays active" : "nothing from it is active")",
                        ])
                }
            }
            for id in Array(s.files.keys) where id.hasPrefix(prefix) && !seen.contains(id) {
                s.apiGood[id] = nil
                s.files[id] = nil
                s.apiVersions[id] = nil
                s.apiUIDs[id] = nil
            }
        }
    }

    /// What this node did with each policy object of the API server, for Events on the object.
    public struct ObjectOutcome: Sendable, Equatable {
        public var kind: String
        public var namespace: String?
        public var name: String
        public var uid: String?
        /// `Loaded`, `Rejected`, `Overridden`, `Unresolved`, `Failed`
        public var reason: String
        public var warning: Bool
        public var message: String
    }

    public var objectOutcomes: [ObjectOutcome] {
        state.withLock { s in
            var out: [ObjectOutcome] = []
            for (id, status) in s.files where id.hasPrefix("api:") {
                let parts = id.dropFirst(4).split(separator: "/").map(String.init)
                guard parts.count >= 2 else { continue }
                let kind = parts[0]
                let namespace = parts.count == 3 ? parts[1] : nil
                let name = parts[parts.count - 1]
                var o = ObjectOutcome(
                    kind: kind, namespace: namespace, name: name, uid: s.apiUIDs[id], reason: "Loaded", warning: false,
                    message: "")
                if !status.valid {
                    o.reason = "Rejected"
                    o.warning = true
                    o.message =
                        "rejected: \(status.errors.joined(separator: "; "))"
                        + (status.keptLastGood ? " (the last good version stays in force)" : "")
                    out.append(o)
                    continue
                }
                var delivered = true
                for p in s.apiGood[id] ?? [] {
                    let profile = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
                    if s.applied[profile] == nil {
                        delivered = false  // read, not delivered yet: nothing to say until it is
                        continue
                    }
                    if let applied = s.applied[profile], applied.source.file != id {
                        o.reason = "Overridden"
                        o.warning = true
                        o.message =
                            "not in force: the policy file \(applied.source.file) on this node defines profile \(profile)"
                    } else if let st = s.profiles[profile] {
                        let states = [("BPF", st.bpf), ("AppArmor", st.appArmor), ("seccomp", st.seccomp)]
                            .filter { $0.1 != "not requested" }
                        let failed = states.filter { $0.1.hasPrefix("failed") || $0.1.hasPrefix("unavailable") }
                        if !failed.isEmpty {
                            o.reason = "Failed"
                            o.warning = true
                        } else if !st.unresolved.isEmpty {
                            o.reason = "Unresolved"
                            o.warning = true
                        }
                        o.message =
                            "profile \(profile): " + states.map { "\($0.0) \($0.1)" }.joined(separator: "; ")
                            + (st.unresolved.isEmpty
                                ? "" : "; unresolved egress: " + st.unresolved.joined(separator: "; "))
                    }
                }
                if delivered { out.append(o) }
            }
            return out.sorted { ($0.kind, $0.namespace ?? "", $0.name) < ($1.kind, $1.namespace ?? "", $1.name) }
        }
    }

    /// Why the inventory file is not in use as written (nil: read, or none configured).
    public var inventoryError: String? { state.withLock { $0.inventoryError } }

    /// Profiles being recorded (behaviour modeling) → when their window closes.
    public var recordingWindows: [String: Double] { state.withLock { $0.recording } }

    /// True while some profile is being modeled (one atomic load: read for every event).
    public var isRecording: Bool { recordingAny.load(ordering: .relaxed) }
    private let recordingAny = Atomic<Bool>(false)

    /// Whether `profile` is being modeled, without copying the windows.
    public func isRecording(_ profile: String) -> Bool {
        isRecording && state.withLock { $0.recording[profile] != nil }
    }

    enum Recording {
        case open(until: Double)
        case complete, unavailable
    }

    /// Opens the recording window of a BehaviorModeling profile the first time it is loaded here
    /// (its model file holds the window), closes it once the policy's duration has passed.
    func recordingWindow(_ name: String, _ policy: Policy, models: ModelStore) -> Recording {
        let now = Date().timeIntervalSince1970
        let duration = policy.spec.policy.modelingDurationMinutes ?? 0
        // the namespace of the profile's objects (vArmor keeps a cluster policy's model in its own)
        let namespace = policy.namespace ?? config.clusterProfileNamespace
        let stored: BehaviorModel?
        do {
            stored = try models.update(name) { stored throws(ModelStore.Failure) in
                var model = stored ?? BehaviorModel(name: name, namespace: namespace)
                var window = RecordingWindow(model) ?? RecordingWindow(started: now)
                if window.completed == nil && !window.isOpen(now: now, durationMinutes: duration) {
                    window.completed = now
                    logger.info(
                        "behaviour model complete", metadata: ["profile": "\(name)", "model": "\(model.summary)"])
                }
                if RecordingWindow(model) == nil {
                    logger.info(
                        "behaviour modeling started", metadata: ["profile": "\(name)", "minutes": "\(duration)"])
                }
                window.store(in: &model)
                return model
            }
        } catch {
            logger.error(
                "behaviour model unreadable or not writable: not recording (fix or delete the file)",
                metadata: ["profile": "\(name)", "error": "\(error)"])
            return .unavailable
        }
        guard let window = stored.flatMap(RecordingWindow.init) else { return .unavailable }
        return window.completed == nil ? .open(until: window.end(durationMinutes: duration)) : .complete
    }

    /// What `reload` would load, without touching the kernel or any file (`bulwarkd --check`).
    public func dryRun() -> String {
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        let paths = PolicyFiles.directoryContents(config.policyDirectories)
        var out = ["policy directories: \(config.policyDirectories.joined(separator: ", ")) (\(paths.count) files)"]
        for file in PolicyFiles.load(paths, options: options) {
            if file.isValid {
                for p in file.policies {
                    let name = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
                    let enforcers = p.spec.policy.enforcers.intersection(config.enforcers).names
                    out.append(
                        "ok       \(file.file): \(p.kind.rawValue) \(p.displayName) → profile \(name) "
                            + "[\(enforcers.joined(separator: ", "))]")
                }
            } else {
                out.append("rejected \(file.file):")
                out += file.errors.map { "  " + $0.description }
            }
        }
        return out.joined(separator: "\n")
    }
}
