import BulwarkOCI

/// A behaviour model: what the containers of one profile were seen doing, per enforcer — vArmor's
/// `ArmorProfileModel` (`crd.varmor.org/v1beta1`), whose `data.dynamicResult` this mirrors member
/// for member, so a model moves between vArmor and Bulwark as the same object.
///
/// Every collection is a set (paths, names, addresses are unique keys), so two models merge by set
/// union and a model written twice is byte-identical (members sorted).
public struct BehaviorModel: Sendable, Equatable {
    /// The profile's name (`varmor-<namespace>-<policy>` or `varmor-cluster-…`): a DefenseInDepth
    /// policy finds its model by it.
    public var name: String
    public var namespace: String?
    /// `metadata.annotations`, kept as they are (Bulwark records how a recording went here:
    /// `bulwark.io/lost-records` and the recording window).
    public var annotations: [String: String]
    public var appArmor: AppArmorBehavior?
    public var bpf: BPFBehavior?
    public var seccomp: SeccompBehavior?
    /// `data.profile`, the profiles vArmor's manager generated from the data: kept verbatim.
    public var profile: JSONObject?

    public init(name: String, namespace: String? = nil) {
        self.name = name
        self.namespace = namespace
        annotations = [:]
    }

    /// Nothing recorded for any enforcer.
    public var isEmpty: Bool {
        (appArmor?.isEmpty ?? true) && (bpf?.isEmpty ?? true) && (seccomp?.isEmpty ?? true)
    }

    /// Set union per enforcer and field, as vArmor's manager merges node results (a file's `owner`
    /// is the AND of both: a path one node saw accessed by another uid is not owner-only; the first
    /// non-empty `oldPath` is kept). Annotations: the other's win; `profile`: kept unless absent.
    public mutating func merge(_ other: BehaviorModel) {
        if let a = other.appArmor { appArmor = (appArmor ?? AppArmorBehavior()).merged(a) }
        if let b = other.bpf { bpf = (bpf ?? BPFBehavior()).merged(b) }
        if let s = other.seccomp { seccomp = SeccompBehavior(syscalls: (seccomp?.syscalls ?? []).union(s.syscalls)) }
        annotations.merge(other.annotations) { _, new in new }
        if profile == nil { profile = other.profile }
    }
}

/// A file a process accessed, and how.
public struct FileAccess: Sendable, Equatable, Hashable {
    public var path: String
    /// Only ever accessed by the file's owner (AppArmor's `owner` qualifier).
    public var owner: Bool
    /// AppArmor: `r w a l k m` (vArmor drops `x`, which is an execution); BPF: `read write append exec`.
    public var permissions: Set<String>
    /// The path as recorded before generalisation (the first one seen), for people reading the model.
    public var oldPath: String

    public init(path: String, owner: Bool = false, permissions: Set<String>, oldPath: String = "") {
        self.path = path
        self.owner = owner
        self.permissions = permissions
        self.oldPath = oldPath
    }

    func merged(_ o: FileAccess) -> FileAccess {
        FileAccess(
            path: path, owner: owner && o.owner, permissions: permissions.union(o.permissions),
            oldPath: oldPath.isEmpty ? o.oldPath : oldPath)
    }
}

/// A socket a process created (`domain`/`type`/`protocol` as AppArmor and vArmor name them).
public struct SocketUse: Sendable, Equatable, Hashable, Comparable {
    public var domain: String
    public var type: String
    public var `protocol`: String

    public init(domain: String, type: String = "", protocol: String = "") {
        self.domain = domain
        self.type = type
        self.protocol = `protocol`
    }

    public static func < (a: SocketUse, b: SocketUse) -> Bool {
        (a.domain, a.type, a.protocol) < (b.domain, b.type, b.protocol)
    }
}

public struct NetworkBehavior: Sendable, Equatable {
    public var sockets: Set<SocketUse> = []
    /// connect(2) destinations: address → ports.
    public var egresses: [String: Set<UInt16>] = [:]

    public init(sockets: Set<SocketUse> = [], egresses: [String: Set<UInt16>] = [:]) {
        self.sockets = sockets
        self.egresses = egresses
    }

    public var isEmpty: Bool { sockets.isEmpty && egresses.isEmpty }

    func merged(_ o: NetworkBehavior) -> NetworkBehavior {
        NetworkBehavior(
            sockets: sockets.union(o.sockets), egresses: egresses.merging(o.egresses) { $0.union($1) })
    }
}

public struct SignalUse: Sendable, Equatable {
    public var permissions: Set<String>
    public var signals: Set<String>

    public init(permissions: Set<String>, signals: Set<String>) {
        self.permissions = permissions
        self.signals = signals
    }
}

public struct MountUse: Sendable, Equatable, Hashable, Comparable {
    public var path: String
    public var type: String

    public init(path: String, type: String) {
        self.path = path
        self.type = type
    }

    public static func < (a: MountUse, b: MountUse) -> Bool { (a.path, a.type) < (b.path, b.type) }
}

/// `dynamicResult.appArmor`: from AppArmor complain-mode records of the profile and its children.
public struct AppArmorBehavior: Sendable, Equatable {
    public var profiles: Set<String> = []
    public var executions: Set<String> = []
    public var files: [String: FileAccess] = [:]
    public var capabilities: Set<String> = []
    public var network = NetworkBehavior()
    /// ptrace peers → permissions (`read`, `trace`, `readby`, `tracedby`).
    public var ptraces: [String: Set<String>] = [:]
    public var signals: [String: SignalUse] = [:]
    /// Records of kinds the model has no field for, as text (vArmor keeps them the same way).
    public var unhandled: Set<String> = []

    public init() {}

    public var isEmpty: Bool {
        profiles.isEmpty && executions.isEmpty && files.isEmpty && capabilities.isEmpty && network.isEmpty
            && ptraces.isEmpty && signals.isEmpty && unhandled.isEmpty
    }

    public mutating func addFile(_ f: FileAccess) { files[f.path] = files[f.path].map { $0.merged(f) } ?? f }

    func merged(_ o: AppArmorBehavior) -> AppArmorBehavior {
        var m = self
        m.profiles.formUnion(o.profiles)
        m.executions.formUnion(o.executions)
        for f in o.files.values { m.addFile(f) }
        m.capabilities.formUnion(o.capabilities)
        m.network = network.merged(o.network)
        m.ptraces.merge(o.ptraces) { $0.union($1) }
        m.signals.merge(o.signals) {
            SignalUse(permissions: $0.permissions.union($1.permissions), signals: $0.signals.union($1.signals))
        }
        m.unhandled.formUnion(o.unhandled)
        return m
    }
}

/// `dynamicResult.bpf`: from the BPF enforcer's audit records of the profile's containers.
public struct BPFBehavior: Sendable, Equatable {
    public var executions: Set<String> = []
    public var files: [String: FileAccess] = [:]
    public var capabilities: Set<String> = []
    public var network = NetworkBehavior()
    /// ptrace by whether the peer is outside the container → permissions.
    public var ptraces: [Bool: Set<String>] = [:]
    public var mounts: [MountUse: Set<String>] = [:]

    public init() {}

    public var isEmpty: Bool {
        executions.isEmpty && files.isEmpty && capabilities.isEmpty && network.isEmpty && ptraces.isEmpty
            && mounts.isEmpty
    }

    public mutating func addFile(_ f: FileAccess) { files[f.path] = files[f.path].map { $0.merged(f) } ?? f }

    func merged(_ o: BPFBehavior) -> BPFBehavior {
        var m = self
        m.executions.formUnion(o.executions)
        for f in o.files.values { m.addFile(f) }
        m.capabilities.formUnion(o.capabilities)
        m.network = network.merged(o.network)
        m.ptraces.merge(o.ptraces) { $0.union($1) }
        m.mounts.merge(o.mounts) { $0.union($1) }
        return m
    }
}

/// `dynamicResult.seccomp`: syscall names.
public struct SeccompBehavior: Sendable, Equatable {
    public var syscalls: Set<String>

    public init(syscalls: Set<String> = []) { self.syscalls = syscalls }

    public var isEmpty: Bool { syscalls.isEmpty }
}

extension BehaviorModel {
    /// Annotation with the number of records a recording could not add to the model (dropped in
    /// a burst, or unattributable): a model with lost records may miss behaviour.
    public static let lostRecordsAnnotation = "bulwark.io/lost-records"

    /// One line: what the model holds per enforcer.
    public var summary: String {
        var parts: [String] = []
        if let a = appArmor {
            parts.append(
                "AppArmor: \(a.files.count) files, \(a.executions.count) executions, \(a.capabilities.count) capabilities, \(a.network.sockets.count) sockets"
            )
        }
        if let b = bpf {
            parts.append(
                "BPF: \(b.files.count) files, \(b.executions.count) executions, \(b.capabilities.count) capabilities, \(b.network.egresses.count) destinations"
            )
        }
        if let s = seccomp { parts.append("seccomp: \(s.syscalls.count) syscalls") }
        return parts.isEmpty ? "nothing recorded" : parts.joined(separator: "; ")
    }
}
