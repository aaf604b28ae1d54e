import BulwarkBPF
import BulwarkBPFMaps
import BulwarkCluster
import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import CBulwarkABI
import Logging
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The one way a profile reaches the kernel: given a policy and the node's facts, compile it for
/// every enforcer the policy and the node both run and deliver it — seccomp as a JSON file for
/// runtimes that load profiles by path, AppArmor through `apparmor_parser`, BPF into the pinned
/// maps (atomically, live for bound containers). Used by the agent on every reload, by
/// `bulwark deliver` (the runtime wrapper's fallback when no agent published an index), and by the
/// NRI plugin for a BPF profile a container needs now. Every caller compiles with the same node
/// facts, so one profile name never carries different kernel rows depending on who loaded it.
public struct ProfileDelivery: Sendable {
    public struct Status: Sendable, Equatable {
        public var name: String
        public var policy: String
        public var mode: String
        public var seccomp: String
        public var appArmor: String
        public var bpf: String
        /// Egress references to cluster addresses that resolve to nothing (yet), or are not
        /// resolved on this node (`reference: reason`).
        public var unresolved: [String] = []
        /// The BPF profile as loaded (kept for profiles that name cluster addresses: an address
        /// change that leaves the rows as they are writes nothing).
        public var loadedBPF: BPFProfile?
        /// What its cluster references resolved to when it was compiled (`BPFCompiler.clusterResolution`):
        /// an address change that does not touch them does not even recompile it.
        public var clusterResolution: [[EgressInventory.Endpoint]?]?
    }

    public let config: NodeConfig
    public let facts: NodeFacts
    /// Cluster addresses for `toServices`/`toPods`: the agent's current inventory, else the node
    /// config's `inventoryFile`, read at the first compile that needs it and once per instance
    /// (the NRI plugin asks for a profile that is usually loaded already: no read then).
    public var inventory: EgressInventory { lazyInventory.value }
    let lazyInventory: Lazy<EgressInventory>
    let logger: Logger

    public init(config: NodeConfig, facts: NodeFacts? = nil, inventory: EgressInventory? = nil, logger: Logger) {
        self.config = config
        self.facts = facts ?? .read(pinPath: config.bpfPinPath)
        lazyInventory = Lazy {
            if let inventory { return inventory }
            switch InventorySource.read(config.inventoryFile) {
            case .success(let i): return i?.egress ?? .none
            case .failure(let e):
                // unreadable: nothing resolves, so profiles that need it are refused, not loaded short
                logger.error("inventory file unreadable", metadata: ["error": "\(e)"])
                return .none
            }
        }
        self.logger = logger
    }

    public var enforcer: Enforcer { Enforcer(pinPath: config.bpfPinPath) }
    public var modelStore: ModelStore { ModelStore(directory: config.modelDirectory) }

    /// Compiles and delivers `policy` as profile `name` to every enforcer.
    public func deliver(_ policy: Policy, profile name: String) -> Status {
        let enforcers = policy.spec.policy.enforcers.intersection(config.enforcers)
        var st = Status(
            name: name, policy: policy.displayName, mode: policy.spec.policy.mode.rawValue, seccomp: "not requested",
            appArmor: "not requested", bpf: "not requested")
        // DefenseInDepth from a behaviour model: the model of this profile name
        var model: BehaviorModel?
        var modelProblem: String?
        if policy.spec.policy.defenseInDepth?.needsModel == true {
            do { model = try modelStore.load(name) } catch { modelProblem = error.description }
        }
        if enforcers.contains(.seccomp) {
            let path = config.seccompProfileDirectory + "/" + name + ".json"
            do throws(ProfileUnavailable) {
                if let modelProblem { throw ProfileUnavailable(modelProblem) }
                let json = try SeccompCompiler(model: model, kernelRecordsSyscalls: facts.syscallRecorder).compile(
                    policy
                ).json.serialized()
                do {
                    try TrustedDirectory.ensure(config.seccompProfileDirectory)
                    try AtomicFile.write(json, to: path, permissions: 0o644)
                    st.seccomp = "stored \(path)"
                } catch {
                    st.seccomp = "failed: cannot write \(path): \(error)"
                    logger.error(
                        "cannot store seccomp profile", metadata: ["profile": "\(name)", "error": "\(error)"])
                }
            } catch {
                // a stale file must not stand in for the profile that cannot be compiled
                unlink(path)
                st.seccomp = "failed: \(error)"
                logger.error("seccomp profile unavailable", metadata: ["profile": "\(name)", "error": "\(error)"])
            }
        }
        if enforcers.contains(.appArmor) {
            do throws(ProfileUnavailable) {
                if let modelProblem { throw ProfileUnavailable(modelProblem) }
                st.appArmor = loadAppArmor(
                    try AppArmorCompiler(diskDevices: facts.diskDevices, model: model).compile(
                        policy, profileName: name))
            } catch {
                st.appArmor = "failed: \(error)"
                logger.error("AppArmor profile unavailable", metadata: ["profile": "\(name)", "error": "\(error)"])
            }
        }
        if enforcers.contains(.bpf) {
            let e = enforcer
            if !e.isLoaded {
                st.bpf = "unavailable: the BPF enforcer is not loaded"
            } else {
                do throws(ProfileUnavailable) {
                    if let modelProblem { throw ProfileUnavailable(modelProblem) }
                    let profile = try compileBPF(policy, profile: name, model: model)
                    st.unresolved = profile.unresolved.map(\.description)
                    for u in profile.unresolved {
                        logger.warning(
                            "egress reference not resolved", metadata: ["profile": "\(name)", "reference": "\(u)"])
                    }
                    do {
                        let r = try e.apply(profile)
                        if BPFCompiler.referencesClusterAddresses(policy) {
                            st.loadedBPF = profile
                            st.clusterResolution = compiler(model: model, for: policy).clusterResolution(policy)
                        }
                        st.bpf = "loaded as id \(r.id) (\(r.rows) rows\(r.replaced ? ", replaced live" : ""))"
                        if !r.skipped.isEmpty {
                            logger.warning(
                                "BPF rules skipped", metadata: ["profile": "\(name)", "skipped": "\(r.skipped)"])
                        }
                    } catch {
                        st.bpf = "failed: \(error.message); the previous version stays in force"
                        logger.error("BPF profile not loaded", metadata: ["profile": "\(name)", "error": "\(error)"])
                    }
                } catch {
                    // new containers of the policy are refused (start index, NRI); containers
                    // bound to an earlier version keep it
                    st.bpf = "failed: \(error)"
                    logger.error("BPF profile unavailable", metadata: ["profile": "\(name)", "error": "\(error)"])
                }
            }
        }
        logger.info(
            "profile delivered",
            metadata: [
                "profile": "\(name)", "seccomp": "\(st.seccomp)", "apparmor": "\(st.appArmor)", "bpf": "\(st.bpf)",
            ])
        return st
    }

    /// The BPF profile as every caller compiles it (the node's disk devices included); `model`: the
    /// profile's behaviour model, when the policy's allow-list is made from it.
    /// The BPF profile of `policy` compiled again with the current cluster addresses, swapped in
    /// live when its rows differ from what `previous` loaded (AppArmor and seccomp do not depend on
    /// addresses and are left alone).
    public func refreshBPF(_ policy: Policy, profile name: String, previous: Status) -> Status {
        var st = previous
        let e = enforcer
        guard policy.spec.policy.enforcers.intersection(config.enforcers).contains(.bpf), e.isLoaded else { return st }
        let model = policy.spec.policy.defenseInDepth?.needsModel == true ? try? modelStore.load(name) : nil
        // the addresses it names did not move: nothing to compile (the common case under churn)
        let resolution = compiler(model: model, for: policy).clusterResolution(policy)
        if previous.loadedBPF != nil && resolution == previous.clusterResolution { return st }
        do throws(ProfileUnavailable) {
            let profile = try compileBPF(policy, profile: name, model: model)
            st.unresolved = profile.unresolved.map(\.description)
            st.clusterResolution = resolution
            if profile == previous.loadedBPF { return st }
            do {
                let r = try e.apply(profile)
                st.loadedBPF = profile
                st.bpf = "loaded as id \(r.id) (\(r.rows) rows, replaced live)"
                logger.info("cluster addresses changed: BPF profile replaced live", metadata: ["profile": "\(name)"])
            } catch {
                st.bpf = "failed: \(error.message); the previous version stays in force"
                logger.error("BPF profile not loaded", metadata: ["profile": "\(name)", "error": "\(error)"])
            }
        } catch {
            st.bpf = "failed: \(error)"
            st.loadedBPF = nil
            logger.error("BPF profile unavailable", metadata: ["profile": "\(name)", "error": "\(error)"])
        }
        return st
    }

    /// The BPF compiler with this node's facts, inventory (read only for a policy that names
    /// cluster addresses) and switches.
    func compiler(model: BehaviorModel?, for policy: Policy) -> BPFCompiler {
        BPFCompiler(
            diskDevices: facts.diskDevices,
            inventory: BPFCompiler.referencesClusterAddresses(policy) ? inventory : .none, model: model,
            serviceEgressControl: config.serviceEgressControl, podEgressControl: config.podEgressControl)
    }

    /// A rule the user wrote that cannot be resolved here (no inventory, feature off) refuses the
    /// profile: loading it without the rule would leave that egress open while the policy says
    /// otherwise. A reference that resolves to no address yet loads, and is reported.
    public func compileBPF(_ policy: Policy, profile name: String, model: BehaviorModel?) throws(ProfileUnavailable)
        -> BPFProfile
    {
        let profile = try compiler(model: model, for: policy).compile(policy, profileName: name)
        let refused = profile.unresolved.filter(\.refusesProfile)
        guard refused.isEmpty else {
            throw ProfileUnavailable(
                "\(name): egress rules cannot be resolved on this node: "
                    + refused.map(\.description).joined(separator: "; "))
        }
        return profile
    }

    /// Loads `policy`'s BPF profile unless the enforcer already has one named `name` (the NRI
    /// plugin, before a container that needs it starts). Nil when it is in the kernel afterwards;
    /// otherwise why not.
    public func ensureBPF(_ policy: Policy?, profile name: String) -> String? {
        let e = enforcer
        guard e.isLoaded else { return "the BPF enforcer is not loaded" }
        if (try? e.profileID(named: name)) ?? nil != nil { return nil }
        guard let policy else { return "no BPF profile named \(name) is loaded" }
        let profile: BPFProfile
        do {
            let model = policy.spec.policy.defenseInDepth?.needsModel == true ? try modelStore.load(name) : nil
            profile = try compileBPF(policy, profile: name, model: model)
        } catch {
            return "\(error)"
        }
        do {
            _ = try e.apply(profile)
            return nil
        } catch {
            return error.message
        }
    }

    /// Unloads a profile whose policy is gone. Returns a status when its BPF profile must stay
    /// (containers are still bound to it; unloading would leave them unconfined).
    public func withdraw(_ name: String) -> String? {
        let e = enforcer
        if e.isLoaded, let id = try? e.profileID(named: name) {
            let bound = e.bindings().filter { $0.profileID == id }.count
            if bound > 0 {
                logger.warning(
                    "policy removed but containers are still bound to its BPF profile; kept until they stop",
                    metadata: ["profile": "\(name)", "containers": "\(bound)"])
                return "kept: policy removed, \(bound) container(s) still bound"
            }
            do { try e.remove(profile: name) } catch {
                logger.error("cannot unload BPF profile", metadata: ["profile": "\(name)", "error": "\(error)"])
            }
        }
        unlink(config.seccompProfileDirectory + "/" + name + ".json")
        let aaFile = config.appArmorProfileDirectory + "/" + name
        if AppArmorFacts.enabled, access(aaFile, F_OK) == 0, let parser = Spawn.find("apparmor_parser") {
            let r = Spawn.run(parser, ["-R", aaFile])
            if r.status != 0 {
                logger.error("apparmor_parser -R failed", metadata: ["profile": "\(name)", "stderr": "\(r.stderr)"])
            }
        }
        unlink(aaFile)
        logger.info("profile unloaded", metadata: ["profile": "\(name)"])
        return nil
    }

    /// `-C` for a complain-mode profile: its text does not say so (a custom DefenseInDepth
    /// profile is the user's text), and without it the kernel enforces what the status calls
    /// complain (observation mode must allow and log).
    package static func appArmorParserArguments(_ profile: AppArmorProfile, path: String) -> [String] {
        (profile.complain ? ["-C"] : []) + ["-r", "-W", path]
    }

    func loadAppArmor(_ profile: AppArmorProfile) -> String {
        guard AppArmorFacts.enabled else { return "unavailable: AppArmor is not enabled in this kernel" }
        guard let parser = Spawn.find("apparmor_parser") else { return "unavailable: apparmor_parser not installed" }
        let path = config.appArmorProfileDirectory + "/" + profile.name
        do {
            try TrustedDirectory.ensure(config.appArmorProfileDirectory)
            try AtomicFile.write(Array(profile.text.utf8), to: path, permissions: 0o644)
        } catch {
            return "failed: cannot write \(path): \(error)"
        }
        let r = Spawn.run(parser, Self.appArmorParserArguments(profile, path: path))
        guard r.status == 0 else {
            let first = r.stderr.split(separator: "\n").first.map(String.init) ?? "exit \(r.status)"
            logger.error("apparmor_parser failed", metadata: ["profile": "\(profile.name)", "stderr": "\(r.stderr)"])
            return "failed: apparmor_parser: \(first); the previous version stays in force"
        }
        return "loaded" + (profile.complain ? " (complain)" : "")
    }
}

/// Facts about this node that compiled profiles depend on, read once per delivery round.
public struct NodeFacts: Sendable, Equatable {
    /// Whole-disk names (sda, nvme0n1, vda — not their partitions), for the built-in disk rules.
    public var diskDevices: [String]
    /// The agent's syscall recorder is pinned under the enforcer's bpffs directory (behaviour
    /// modeling records syscalls in the kernel; see `SeccompCompiler.kernelRecordsSyscalls`).
    public var syscallRecorder: Bool

    public init(diskDevices: [String], syscallRecorder: Bool = false) {
        self.diskDevices = diskDevices
        self.syscallRecorder = syscallRecorder
    }

    public static func read(pinPath: String? = nil) -> NodeFacts {
        NodeFacts(diskDevices: diskDevicesFromProcPartitions(), syscallRecorder: pinPath.map(syscallRecorder) ?? false)
    }

    public static func syscallRecorder(pinPath: String) -> Bool {
        access(Enforcer(pinPath: pinPath).trackerDir + "/" + BULWARK_MAP_RECORDING, F_OK) == 0
    }

    static func diskDevicesFromProcPartitions() -> [String] {
        guard let bytes = try? RegularFile.read("/proc/partitions", maxBytes: 1 << 20) else { return [] }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").dropFirst().compactMap { line -> String? in
            guard let name = line.split(separator: " ").last, name != "name" else { return nil }
            let n = String(name)
            if n.hasPrefix("nvme") || n.hasPrefix("mmcblk") { return n.contains("p") ? nil : n }
            return n.last?.isNumber == true ? nil : n
        }
    }

    public static func hostName() -> String {
        var buf = [UInt8](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// A value computed at its first use, once.
final class Lazy<Value: Sendable>: Sendable {
    private let make: @Sendable () -> Value
    private let cached = Mutex<Value?>(nil)

    init(_ make: @escaping @Sendable () -> Value) { self.make = make }

    var value: Value {
        cached.withLock { v in
            if let v { return v }
            let made = make()
            v = made
            return made
        }
    }
}
