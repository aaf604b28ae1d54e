import BulwarkOCI
import Foundation

/// Where a value came from, for messages.
public struct SourceRef: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var file: String
    public var line: Int
    public var column: Int

    public init(file: String, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    public var description: String { "\(file):\(line):\(column)" }
}

/// `kind` of a vArmor policy resource.
public enum PolicyKind: String, Sendable, Equatable, Hashable, Codable {
    case varmorPolicy = "VarmorPolicy"
    case varmorClusterPolicy = "VarmorClusterPolicy"
}

/// A parsed and validated VarmorPolicy or VarmorClusterPolicy.
public struct Policy: Sendable, Equatable {
    public var kind: PolicyKind
    public var name: String
    /// Namespace of a VarmorPolicy (`default` when omitted); nil for a cluster policy.
    public var namespace: String?
    public var labels: [String: String]
    public var spec: PolicySpec
    public var source: SourceRef

    /// `namespace/name` or `name`, for messages.
    public var displayName: String { namespace.map { "\($0)/\(name)" } ?? name }

    /// The same policy wherever it was read from and wherever its parts sit in the file
    /// (`policy migrate` checks what it writes: an inserted line moves every rule after it). Every
    /// `SourceRef` in the value (the policy's, each built-in reference's, each file rule's) is
    /// written as `file:line:column`; they are compared without line and column.
    public func sameMeaning(as other: Policy) -> Bool {
        Self.positionless(self) == Self.positionless(other)
    }

    static func positionless(_ p: Policy) -> String {
        let marker = p.source.file + ":"
        var out = ""
        var rest = Substring(String(describing: p))
        while let r = rest.range(of: marker) {
            out += rest[..<r.lowerBound] + p.source.file
            // drop "LINE:COLUMN"
            rest = rest[r.upperBound...].drop(while: \.isNumber)
            if rest.first == ":" { rest = rest.dropFirst().drop(while: \.isNumber) }
        }
        return out + rest
    }
}

public struct PolicySpec: Sendable, Equatable {
    public var target: Target
    public var policy: PolicyBody
    public var updateExistingWorkloads: Bool
}

/// `spec.target`.
public struct Target: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable, CaseIterable {
        case deployment = "Deployment"
        case statefulSet = "StatefulSet"
        case daemonSet = "DaemonSet"
        case pod = "Pod"
        /// Bulwark extension: a non-Kubernetes container (podman, runc), selected by its OCI
        /// annotations and/or its name.
        case container = "Container"
    }

    public var kind: Kind
    public var name: String?
    public var selector: LabelSelector?
    /// Container names; empty = every regular container.
    public var containers: [String]
}

/// The enforcers a policy names. vArmor parses `spec.policy.enforcer` by case-insensitive
/// substring, so `AppArmorBPFSeccomp` names three.
public struct EnforcerSet: OptionSet, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let appArmor = EnforcerSet(rawValue: 0x1)
    public static let bpf = EnforcerSet(rawValue: 0x2)
    public static let seccomp = EnforcerSet(rawValue: 0x4)
    public static let networkProxy = EnforcerSet(rawValue: 0x8)

    /// vArmor's `GetEnforcerType`: substring matching on the lower-cased text.
    public static func parse(_ text: String) -> EnforcerSet {
        let t = text.lowercased()
        var set: EnforcerSet = []
        if t.contains("apparmor") { set.insert(.appArmor) }
        if t.contains("bpf") { set.insert(.bpf) }
        if t.contains("seccomp") { set.insert(.seccomp) }
        if t.contains("networkproxy") { set.insert(.networkProxy) }
        return set
    }

    public var names: [String] {
        var out: [String] = []
        if contains(.appArmor) { out.append("AppArmor") }
        if contains(.bpf) { out.append("BPF") }
        if contains(.seccomp) { out.append("Seccomp") }
        if contains(.networkProxy) { out.append("NetworkProxy") }
        return out
    }

    public var description: String { names.joined(separator: "+") }
}

/// `spec.policy.mode`.
public enum PolicyMode: String, Sendable, Equatable, CaseIterable {
    case alwaysAllow = "AlwaysAllow"
    case runtimeDefault = "RuntimeDefault"
    case enhanceProtect = "EnhanceProtect"
    case behaviorModeling = "BehaviorModeling"
    case defenseInDepth = "DefenseInDepth"
}

/// `spec.policy`.
public struct PolicyBody: Sendable, Equatable {
    public var enforcerText: String
    public var enforcers: EnforcerSet
    public var mode: PolicyMode
    public var enhanceProtect: EnhanceProtect?
    public var modelingDurationMinutes: Int?
    public var defenseInDepth: DefenseInDepth?
}

/// Rule-level qualifiers of vArmor's BPF raw rules (`deny`, `audit`).
public struct Qualifiers: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }
    public static let deny = Qualifiers(rawValue: 0x1)
    public static let audit = Qualifiers(rawValue: 0x2)
    /// An allow-list entry (`defenseInDepth.bpf.bpfRawRules` only; Bulwark's, not vArmor's).
    public static let allow = Qualifiers(rawValue: 0x4)
}

/// A built-in rule as written in the policy, resolved to its catalogue id.
public struct RuleReference: Sendable, Equatable {
    public var written: String
    public var id: String
    public var source: SourceRef
}

/// `spec.policy.enhanceProtect`.
public struct EnhanceProtect: Sendable, Equatable {
    public struct AttackProtection: Sendable, Equatable {
        public var rules: [RuleReference]
        public var targets: [String]
    }
    public struct AppArmorRaw: Sendable, Equatable {
        public var rules: String
        public var targets: [String]
    }

    public var hardeningRules: [RuleReference] = []
    public var attackProtectionRules: [AttackProtection] = []
    public var vulMitigationRules: [RuleReference] = []
    public var appArmorRawRules: [AppArmorRaw] = []
    public var bpfRawRules = BPFRawRules()
    public var syscallRawRules: [LinuxSyscall] = []
    public var privileged = false
    public var auditViolations = false
    public var allowViolations = false

    public init() {}
}

/// `enhanceProtect.bpfRawRules`.
public struct BPFRawRules: Sendable, Equatable {
    public var files: [FileRule] = []
    public var processes: [FileRule] = []
    public var sockets: [SocketRule] = []
    public var destinations: [Destination] = []
    public var services: [ServiceEgress] = []
    public var pods: [PodEgress] = []
    public var ptrace: PtraceRule?
    public var mounts: [MountRule] = []

    public var isEmpty: Bool {
        files.isEmpty && processes.isEmpty && sockets.isEmpty && destinations.isEmpty && services.isEmpty
            && pods.isEmpty && ptrace == nil && mounts.isEmpty
    }

    /// Some rule is an allow-list entry.
    public var hasAllowEntries: Bool {
        let q: [Qualifiers] =
            files.map(\.qualifiers) + processes.map(\.qualifiers) + sockets.map(\.qualifiers)
            + destinations.map(\.qualifiers) + services.map(\.qualifiers) + pods.map(\.qualifiers)
            + (ptrace.map { [$0.qualifiers] } ?? []) + mounts.map(\.qualifiers)
        return q.contains { $0.contains(.allow) }
    }
}

/// File permissions of BPF file/process rules (AppArmor numbering, as vArmor).
public struct FilePermissions: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let exec = FilePermissions(rawValue: 0x1)
    public static let write = FilePermissions(rawValue: 0x2)
    public static let read = FilePermissions(rawValue: 0x4)
    public static let append = FilePermissions(rawValue: 0x8)
    public static let create = FilePermissions(rawValue: 0x10)
    public static let rename = FilePermissions(rawValue: 0x80)
    public static let link = FilePermissions(rawValue: 0x40000)
}

/// `files[]` / `processes[]`.
public struct FileRule: Sendable, Equatable {
    public var qualifiers: Qualifiers
    public var pattern: PathPattern
    /// Permissions for file rules (read/write/append); `exec` makes it also a process rule.
    public var permissions: FilePermissions
    public var source: SourceRef
}

/// `network.sockets[]`: bitmasks `1 << AF_*`, `1 << SOCK_*`, `1 << IPPROTO_*` as vArmor.
public struct SocketRule: Sendable, Equatable {
    public var qualifiers: Qualifiers
    public var domains: [Int]
    public var types: [Int]
    public var protocols: [Int]
}

/// An inclusive port range; a single port has `first == last`.
public struct PortRange: Sendable, Hashable, Codable, Comparable {
    public var first: UInt16
    public var last: UInt16
    public init(_ first: UInt16, _ last: UInt16) {
        self.first = first
        self.last = last
    }
    public static func < (a: PortRange, b: PortRange) -> Bool { (a.first, a.last) < (b.first, b.last) }
    public static let all = PortRange(0, 65535)
}

/// `network.egress.toDestinations[]`.
public struct Destination: Sendable, Equatable {
    public enum Address: Sendable, Equatable {
        /// No `ip` and no `cidr`: every IPv4 and IPv6 address.
        case any
        case network(IPNetwork)
        /// `pod-self`: the container's own pod IP, known only at bind time.
        case podSelf
    }
    public var qualifiers: Qualifiers
    /// One written value may expand to several (`localhost` = 127.0.0.1 and ::1).
    public var addresses: [Address]
    /// Empty = all ports.
    public var ports: [PortRange]
}

/// `network.egress.toServices[]`: resolved to IPs by an inventory.
public struct ServiceEgress: Sendable, Equatable {
    public var qualifiers: Qualifiers
    public var namespace: String?
    public var name: String?
    public var selector: LabelSelector?
}

/// `network.egress.toPods[]`: resolved to pod IPs by an inventory.
public struct PodEgress: Sendable, Equatable {
    public var qualifiers: Qualifiers
    public var namespace: String?
    public var selector: LabelSelector
    public var ports: [PortRange]
}

/// Ptrace permissions (vArmor numbering).
public struct PtracePermissions: OptionSet, Sendable, Hashable, Codable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }
    public static let trace = PtracePermissions(rawValue: 0x2)
    public static let read = PtracePermissions(rawValue: 0x4)
    public static let traceBy = PtracePermissions(rawValue: 0x8)
    public static let readBy = PtracePermissions(rawValue: 0x10)
    public static let all: PtracePermissions = [.trace, .read, .traceBy, .readBy]
}

/// `bpfRawRules.ptrace`.
public struct PtraceRule: Sendable, Equatable {
    public var qualifiers: Qualifiers
    public var strictMode: Bool
    public var permissions: PtracePermissions
}

/// `bpfRawRules.mounts[]`.
public struct MountRule: Sendable, Equatable {
    public var qualifiers: Qualifiers
    public var sourcePattern: PathPattern
    public var fstype: String
    public var flags: UInt32
    public var reverseFlags: UInt32
}

/// `spec.policy.defenseInDepth`.
public struct DefenseInDepth: Sendable, Equatable {
    /// `profileType`: where the allow-list comes from.
    public enum Source<Custom: Sendable & Equatable>: Sendable, Equatable {
        /// `Custom`: the policy's `customProfile`.
        case custom(Custom)
        /// `BehaviorModel`: the behaviour model of the policy's own profile name (recorded by a
        /// BehaviorModeling run of the same policy, or imported with `bulwark model import`).
        case behaviorModel
    }
    public struct AppArmor: Sendable, Equatable {
        public var source: Source<String>
        public var rawRules: [EnhanceProtect.AppArmorRaw]
    }
    public struct Seccomp: Sendable, Equatable {
        public var source: Source<LinuxSeccomp>
        public var syscallRawRules: [LinuxSyscall]
    }
    /// `defenseInDepth.bpf` (Bulwark's; vArmor's BPF enforcer has no allow-list): the allow-list is
    /// the behaviour model's BPF data (`BehaviorModel`) or only the raw rules' `allow` entries
    /// (`Custom`); `bpfRawRules` add allow entries, and deny/audit rules that take precedence.
    public struct BPF: Sendable, Equatable {
        public var source: Source<BPFRawRules>
        public var rawRules: BPFRawRules
    }
    public var appArmor: AppArmor?
    public var seccomp: Seccomp?
    public var bpf: BPF?
    public var allowViolations: Bool

    /// An enforcer's allow-list comes from the behaviour model.
    public var needsModel: Bool {
        appArmor?.source == .behaviorModel || seccomp?.source == .behaviorModel || bpf?.source == .behaviorModel
    }
}
