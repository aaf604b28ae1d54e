import BulwarkBPF
import BulwarkBPFMaps
import BulwarkDelivery
import BulwarkEvents
import BulwarkHook
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import Foundation
import Synchronization

/// Turns kernel records into vArmor-format events: attributes each to its container (the hook's
/// records, by mount namespace or pid) and to its policy (the store's profile owners), then
/// publishes them on the hub.
public final class EventPipeline: Sendable {
    let config: NodeConfig
    let nodeName: String
    let metadata: JSONObject
    let registry: ContainerRegistry
    let store: PolicyStore
    let hub: EventHub
    let syscalls = SyscallNames()
    let bootEpochNanoseconds: UInt64
    /// Profile id → name from the enforcer's maps, and when they were last read.
    private let profileNames = Mutex<(table: [UInt32: String], readAt: UInt64)>(([:], 0))
    private let ignored = Atomic<UInt64>(0)
    /// Behaviour modeling: takes the events of profiles being recorded (true: the event went into
    /// the model, not to the violation log and the node socket).
    private let recorder = Mutex<(@Sendable (ViolationEvent) -> Bool)?>(nil)

    public func use(recorder: (@Sendable (ViolationEvent) -> Bool)?) { self.recorder.withLock { $0 = recorder } }

    /// The events that are not the modeler's.
    func unrecorded(_ events: [ViolationEvent]) -> [ViolationEvent] {
        guard let modeler = recorder.withLock({ $0 }) else { return events }
        return events.filter { !modeler($0) }
    }

    public init(config: NodeConfig, registry: ContainerRegistry, store: PolicyStore, hub: EventHub) {
        self.config = config
        self.registry = registry
        self.store = store
        self.hub = hub
        nodeName = config.nodeName.isEmpty ? NodeFacts.hostName() : config.nodeName
        var meta = config.auditEventMetadata
        if meta["varmorNamespace"] == nil { meta["varmorNamespace"] = .string(config.clusterProfileNamespace) }
        metadata = meta
        bootEpochNanoseconds = Self.bootEpochNanoseconds()
    }

    /// Kernel records that belong to no Bulwark container or profile (other software's seccomp
    /// log records, say): counted, not published.
    public var ignoredRecords: UInt64 { ignored.load(ordering: .relaxed) }

    static func bootEpochNanoseconds() -> UInt64 {
        var real = timespec()
        var boot = timespec()
        clock_gettime(CLOCK_REALTIME, &real)
        clock_gettime(CLOCK_BOOTTIME, &boot)
        let r = UInt64(real.tv_sec) * 1_000_000_000 + UInt64(real.tv_nsec)
        let b = UInt64(boot.tv_sec) * 1_000_000_000 + UInt64(boot.tv_nsec)
        return r &- b
    }

    // MARK: Sources

    public func ingest(bpf records: [BPFEvent]) {
        hub.publish(unrecorded(records.map(event(bpf:))))
    }

    public func ingest(kernelLines lines: [String]) {
        hub.publish(unrecorded(lines.compactMap(event(kernelLine:))))
    }

    public func event(bpf e: BPFEvent) -> ViolationEvent {
        let record = registry.record(namespace: e.mountNamespace)
        var identity = identity(record)
        if let name = profileName(id: e.profileID) { identity.profileName = name }
        attachOwner(&identity, record: record)
        return ViolationEvent(
            metadata: metadata, nodeName: nodeName, container: identity, pid: e.pid, mntNsID: e.mountNamespace,
            eventTimestamp: e.eventTimestamp(bootEpochNanoseconds: bootEpochNanoseconds), enforcer: .bpf,
            action: e.action.rawValue, event: e.varmorBody)
    }

    public func event(kernelLine line: String) -> ViolationEvent? {
        switch KernelLogLine(line) {
        case .seccomp(let r):
            let (record, ns) = registry.record(pid: r.pid)
            var identity = identity(record)
            if let p = r.profileName { identity.profileName = p }
            guard attachOwner(&identity, record: record) || record != nil else {
                ignored.wrappingAdd(1, ordering: .relaxed)
                return nil
            }
            return ViolationEvent(
                metadata: metadata, nodeName: nodeName, container: identity, pid: r.pid, mntNsID: ns,
                eventTimestamp: r.epoch, enforcer: .seccomp, action: "AUDIT|ALLOWED",
                event: r.body(syscallName: syscalls.name(r.syscall)))
        case .appArmor(let normalized, let action):
            guard let log = AppArmorLog(normalized: normalized) else {
                ignored.wrappingAdd(1, ordering: .relaxed)
                return nil
            }
            let (record, ns) = registry.record(pid: log.pid)
            var identity = identity(record)
            if let p = BulwarkEvents.profileName(fromLabel: log.profile) { identity.profileName = p }
            guard attachOwner(&identity, record: record) || record != nil else {
                ignored.wrappingAdd(1, ordering: .relaxed)
                return nil
            }
            return ViolationEvent(
                metadata: metadata, nodeName: nodeName, container: identity, pid: log.pid, mntNsID: ns,
                eventTimestamp: log.epoch, enforcer: .appArmor, action: action, event: log.body)
        case .other:
            return nil
        }
    }

    // MARK: Attribution

    func identity(_ r: ContainerRecord?) -> ContainerIdentity {
        var c = ContainerIdentity()
        guard let r else { return c }
        c.containerID = r.id
        c.containerName = r.containerName ?? ""
        c.podName = r.podName ?? ""
        c.podNamespace = r.podNamespace ?? ""
        c.podUID = r.podUID ?? ""
        c.image = r.image ?? ""
        c.profileName = r.profile
        return c
    }

    /// Fills the policy fields from the profile's owner (or, for a profile the store no longer
    /// has, from the hook's record). True when the profile is one of Bulwark's.
    @discardableResult
    func attachOwner(_ c: inout ContainerIdentity, record: ContainerRecord?) -> Bool {
        guard !c.profileName.isEmpty else { return false }
        if let owner = store.owner(ofProfile: c.profileName) {
            c.policyKind = owner.kind
            c.policyName = owner.name
            c.policyNamespace = owner.namespace
            return true
        }
        if let policy = record?.policy, record?.profile == c.profileName {
            if let slash = policy.firstIndex(of: "/") {
                c.policyKind = PolicyKind.varmorPolicy.rawValue
                c.policyNamespace = String(policy[..<slash])
                c.policyName = String(policy[policy.index(after: slash)...])
            } else {
                c.policyKind = PolicyKind.varmorClusterPolicy.rawValue
                c.policyName = policy
                c.policyNamespace = ""
            }
            return true
        }
        return false
    }

    /// The name of a profile id. An unknown id re-reads the enforcer's name map at most once a
    /// second (a burst of events of an unloaded profile must not scan the map per event).
    func profileName(id: UInt32) -> String? {
        let now = DispatchTime.now().uptimeNanoseconds
        let (hit, stale) = profileNames.withLock { c in (c.table[id], now &- c.readAt > 1_000_000_000) }
        if let hit { return hit }
        guard stale else { return nil }
        let loaded = Enforcer(pinPath: config.bpfPinPath).loadedProfiles()
        let table = Dictionary(loaded.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        profileNames.withLock { $0 = (table, now) }
        return table[id]
    }

    /// Profile ids can be reused after an unload: forget the cache when profiles change.
    public func profilesChanged() { profileNames.withLock { $0 = ([:], 0) } }
}
