import BulwarkPolicy
import CBulwarkABI

/// The BPF enforcer's view of one profile: the rows of every kernel table (layout in
/// `bulwark_abi.h`), computed by `BPFCompiler`. Codable for `bulwark policy compile --enforcer bpf`.
public struct BPFProfile: Codable, Sendable, Equatable {
    public enum Mode: String, Codable, Sendable { case enforce, complain }

    /// Rule modes as in the ABI: deny 0x1, audit 0x2, allow 0x4.
    public struct Verdict: Codable, Sendable, Hashable {
        /// Permissions (file: BULWARK_PERM_*; socket: bit 0) denied.
        public var deny: UInt32 = 0
        /// Permissions that produce an event.
        public var audit: UInt32 = 0
        /// Permissions an allow-list grants (allow-list profiles only).
        public var allow: UInt32 = 0
        public init(deny: UInt32 = 0, audit: UInt32 = 0, allow: UInt32 = 0) {
            self.deny = deny
            self.audit = audit
            self.allow = allow
        }
        public init(mode: Qualifiers, permissions: UInt32) {
            deny = mode.contains(.deny) ? permissions : 0
            audit = mode.contains(.audit) ? permissions : 0
            allow = mode.contains(.allow) ? permissions : 0
        }
        public mutating func formUnion(_ o: Verdict) {
            deny |= o.deny
            audit |= o.audit
            allow |= o.allow
        }
        public var isEmpty: Bool { deny == 0 && audit == 0 && allow == 0 }
    }

    /// `BULWARK_PATH_KIND_*`.
    public enum PathKind: UInt8, Codable, Sendable, Hashable, Comparable {
        case file = 1
        case fileName = 2
        case exec = 3
        case execName = 4
        public static func < (a: PathKind, b: PathKind) -> Bool { a.rawValue < b.rawValue }
    }

    /// A row of the prefix or suffix trie. `key` is the path text (suffix tries: not yet
    /// reversed; the encoder reverses it); `exact` appends the NUL terminator.
    public struct PathEntry: Codable, Sendable, Equatable {
        public var kind: PathKind
        public var key: String
        public var exact: Bool
        public var verdict: Verdict
        /// Compound rule indices whose half this entry (or a shorter one) matches.
        public var compound: [Int]

        public init(kind: PathKind, key: String, exact: Bool, verdict: Verdict, compound: [Int]) {
            self.kind = kind
            self.key = key
            self.exact = exact
            self.verdict = verdict
            self.compound = compound
        }
    }

    public struct CompoundRule: Codable, Sendable, Equatable {
        public var kind: PathKind
        public var index: Int
        public var pattern: String
        public var verdict: Verdict
    }

    public struct SocketEntry: Codable, Sendable, Equatable {
        /// nil = any.
        public var family: Int?
        public var type: Int?
        public var `protocol`: Int?
        public var mode: UInt8
    }

    public struct PortRangeMode: Codable, Sendable, Equatable {
        public var first: UInt16
        public var last: UInt16
        public var mode: UInt8
    }

    public struct EgressEntry: Codable, Sendable, Equatable {
        public var network: String
        public var ranges: [PortRangeMode]
    }

    public struct Ptrace: Codable, Sendable, Equatable {
        public var denyStrict: UInt32 = 0
        public var denyCross: UInt32 = 0
        public var auditStrict: UInt32 = 0
        public var auditCross: UInt32 = 0
        /// Allow-list: permissions allowed whoever the peer is / only with a peer in the container.
        public var allowAny: UInt32 = 0
        public var allowInner: UInt32 = 0
    }

    /// `BULWARK_ALLOW_*`: the operation classes this profile refuses unless an allow entry
    /// matches (DefenseInDepth), with `observe` recording instead of refusing.
    public struct AllowList: OptionSet, Codable, Sendable, Hashable {
        public let rawValue: UInt32
        public init(rawValue: UInt32) { self.rawValue = rawValue }
        public static let file = AllowList(rawValue: UInt32(BULWARK_ALLOW_FILE))
        public static let exec = AllowList(rawValue: UInt32(BULWARK_ALLOW_EXEC))
        public static let network = AllowList(rawValue: UInt32(BULWARK_ALLOW_NETWORK))
        public static let capability = AllowList(rawValue: UInt32(BULWARK_ALLOW_CAPABILITY))
        public static let ptrace = AllowList(rawValue: UInt32(BULWARK_ALLOW_PTRACE))
        public static let mount = AllowList(rawValue: UInt32(BULWARK_ALLOW_MOUNT))
        public static let all = AllowList(rawValue: UInt32(BULWARK_ALLOW_ALL))
        public static let observe = AllowList(rawValue: UInt32(BULWARK_ALLOW_OBSERVE))
    }

    public struct Mount: Codable, Sendable, Equatable {
        public var mode: UInt8
        public var source: String
        public var fstype: String
        public var flags: UInt32
        public var reverseFlags: UInt32
    }

    public var name: String
    public var mode: Mode
    public var capabilityDeny: UInt64 = 0
    public var capabilityAudit: UInt64 = 0
    public var capabilityAllow: UInt64 = 0
    public var allowList: AllowList = []
    public var ptrace = Ptrace()
    public var prefixes: [PathEntry] = []
    public var suffixes: [PathEntry] = []
    public var compound: [CompoundRule] = []
    public var sockets: [SocketEntry] = []
    public var egress4: [EgressEntry] = []
    public var egress6: [EgressEntry] = []
    public var podSelfRanges: [PortRangeMode] = []
    public var mounts: [Mount] = []
    /// Things the compiler could not express (patterns widened, rules dropped).
    public var notes: [String] = []
    /// Egress references to cluster addresses (`toServices`, `toPods`, the service built-ins)
    /// that did not resolve to every address they name: shown at run time (status, metric,
    /// node-socket notice), and refused by delivery where a rule would silently be missing.
    public var unresolved: [UnresolvedEgress] = []

    public struct UnresolvedEgress: Codable, Sendable, Equatable, CustomStringConvertible {
        public enum Reason: String, Codable, Sendable {
            /// No inventory on this node (no `inventoryFile`, no API server).
            case noInventory =
                "no cluster addresses known for it on this node (node config: inventoryFile or kubeconfig; from the API server, until its watch has listed)"
            /// The node config turns the feature off (vArmor's manager flags).
            case serviceEgressControlOff = "serviceEgressControl is off in the node config"
            case podEgressControlOff = "podEgressControl is off in the node config"
            /// Resolved, to no address yet: rules appear when addresses do.
            case noMatch = "matches no address yet"
        }
        /// `toServices ns/name`, `toPods ns selector`, `built-in block-access-to-kube-apiserver: …`.
        public var reference: String
        public var reason: Reason
        /// From a built-in rule (vArmor adds nothing for those when it cannot resolve them).
        public var builtin: Bool

        public var description: String { "\(reference): \(reason.rawValue)" }
        /// A rule the user wrote would be missing from the kernel: the profile must not load.
        public var refusesProfile: Bool { !builtin && reason != .noMatch }
    }

    /// Source path rules, kept for explanation and as the test oracle's input.
    public var pathRules: [PathRuleSource] = []

    public struct PathRuleSource: Codable, Sendable, Equatable {
        public var exec: Bool
        public var pattern: PathPattern
        public var verdict: Verdict
    }
}
