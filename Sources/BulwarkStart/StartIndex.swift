import BulwarkOCI

/// What the container start path needs from the node's policies, published by whoever delivered
/// them (`bulwarkd` on every reload, `bulwark deliver` otherwise) so that `bulwark-runtime` decides
/// and patches a spec without reading YAML or compiling anything.
///
/// It holds the standalone (`target.kind: Container`) policies in decision order with their compiled
/// seccomp filters, the node settings the start path uses, and the stamps of every file it was
/// built from (node config, policy directories, policy files). A reader trusts it only while every
/// stamp still matches (`isCurrent`); otherwise it is stale and is rebuilt.
public struct StartIndex: Sendable, Equatable {
    public static let formatVersion = 1

    /// The identity of a file version (see `FileStamp`); `nil` fields: the file was absent.
    public struct Stamp: Sendable, Equatable {
        public var path: String
        /// device, inode, size, mtime ns, ctime ns; nil when the path did not exist
        public var identity: [Int64]?

        public init(path: String, identity: [Int64]?) {
            self.path = path
            self.identity = identity
        }
    }

    /// A standalone policy, as the start path applies it.
    public struct Entry: Sendable, Equatable {
        /// `namespace/name` or `name` (`Policy.displayName`).
        public var policy: String
        public var profile: String
        public var containerName: String?
        public var selector: LabelSelector?
        /// The policy's enforcers that this node runs (`seccomp`, `apparmor`, `bpf`).
        public var seccomp: Bool
        public var appArmor: Bool
        public var bpf: Bool
        /// `Fail` or `Ignore`.
        public var failurePolicy: String
        /// The compiled filter in `linux.seccomp` form when `seccomp` (kept as JSON: only the entry
        /// that matches is decoded, on the start path).
        public var seccompProfile: JSONValue?
        /// Why the policy's profile cannot be compiled on this node now (a DefenseInDepth policy
        /// without its behaviour model): the container is refused, or with failure policy Ignore
        /// runs without the missing parts and is reported.
        public var unavailable: String?
        /// The profile is being modeled (BehaviorModeling): the container's syscalls are recorded.
        public var recording: Bool

        public init(
            policy: String, profile: String, containerName: String?, selector: LabelSelector?, seccomp: Bool,
            appArmor: Bool, bpf: Bool, failurePolicy: String, seccompProfile: JSONValue?, unavailable: String? = nil,
            recording: Bool = false
        ) {
            self.policy = policy
            self.profile = profile
            self.containerName = containerName
            self.selector = selector
            self.seccomp = seccomp
            self.appArmor = appArmor
            self.bpf = bpf
            self.failurePolicy = failurePolicy
            self.seccompProfile = seccompProfile
            self.unavailable = unavailable
            self.recording = recording
        }

        /// `DecisionEngine.matches` for `target.kind: Container` (the same rule; checked against it
        /// by a randomized test).
        public func matches(containerName name: String, annotations: [String: String]) -> Bool {
            if let containerName, containerName != name { return false }
            if let selector, !selector.matches(annotations) { return false }
            return true
        }
    }

    /// The node config file it was built from ("" = none: defaults).
    public var configPath: String
    public var stamps: [Stamp]
    /// The real runtime (`runtime`), the BPF pin path and the container-record directory.
    public var runtime: String
    public var bpfPinPath: String
    public var containerStateDirectory: String
    /// Standalone policies in decision order (the first that matches wins).
    public var entries: [Entry]
    /// Policy files that were rejected (they contribute nothing, as with the agent).
    public var rejected: [String]

    public init(
        configPath: String, stamps: [Stamp], runtime: String, bpfPinPath: String, containerStateDirectory: String,
        entries: [Entry], rejected: [String]
    ) {
        self.configPath = configPath
        self.stamps = stamps
        self.runtime = runtime
        self.bpfPinPath = bpfPinPath
        self.containerStateDirectory = containerStateDirectory
        self.entries = entries
        self.rejected = rejected
    }

    /// The node config file the start path uses: `$BULWARK_CONFIG`, else the default path (the
    /// same rule and values as `NodeConfig`; a test keeps them equal).
    public static let defaultConfigPath = "/etc/bulwark/bulwark.yaml"
    public static let configVariable = "BULWARK_CONFIG"

    /// Where the index for the node config at `configPath` lives (one per config file, so nodes
    /// and tests with several configs never read each other's). The directory is root's.
    public static func location(configPath: String, directory: String = "/run/bulwark/start") -> String {
        // a name, not a security boundary: the index names its config and is checked against it
        directory + "/" + FNV1a.hex(configPath.utf8) + ".json"
    }

    /// The policy for a standalone container: the first entry that matches.
    public func decide(containerName: String, annotations: [String: String]) -> Entry? {
        entries.first { $0.matches(containerName: containerName, annotations: annotations) }
    }

    /// True while every file the index was built from is unchanged (`identity` gives a path's
    /// current identity, nil when absent), and the index was built from `configPath`.
    public func isCurrent(configPath: String, identity: (String) -> [Int64]?) -> Bool {
        self.configPath == configPath && stamps.allSatisfy { identity($0.path) == $0.identity }
    }
}

// MARK: JSON form

extension StartIndex {
    public struct FormatError: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("version", .number(Self.formatVersion)),
                ("config", .string(configPath)),
                (
                    "stamps",
                    .array(
                        stamps.map { s in
                            .object(
                                JSONObject([
                                    ("path", .string(s.path)),
                                    ("identity", s.identity.map { .array($0.map(JSONValue.number)) } ?? .null),
                                ]))
                        })
                ),
                ("runtime", .string(runtime)),
                ("bpfPinPath", .string(bpfPinPath)),
                ("containerStateDirectory", .string(containerStateDirectory)),
                ("entries", .array(entries.map(\.json))),
                ("rejected", .array(rejected.map(JSONValue.string))),
            ]))
    }

    public init(json: JSONValue) throws(FormatError) {
        func fail(_ what: String) -> FormatError { FormatError(description: "start index: \(what)") }
        guard let o = json.object else { throw fail("not an object") }
        guard o["version"]?.integer == Int64(Self.formatVersion) else {
            throw fail(
                "format version \(o["version"]?.integer.map(String.init) ?? "missing"), want \(Self.formatVersion)")
        }
        guard let config = o["config"]?.string, let runtime = o["runtime"]?.string,
            let pin = o["bpfPinPath"]?.string, let state = o["containerStateDirectory"]?.string,
            let stampList = o["stamps"]?.array, let entryList = o["entries"]?.array,
            let rejectedList = o["rejected"]?.array
        else { throw fail("missing fields") }
        var stamps: [Stamp] = []
        for s in stampList {
            guard let path = s.object?["path"]?.string, let id = s.object?["identity"] else { throw fail("bad stamp") }
            if id == .null {
                stamps.append(Stamp(path: path, identity: nil))
            } else {
                guard let values = id.array?.compactMap(\.integer), values.count == id.array?.count else {
                    throw fail("bad stamp identity")
                }
                stamps.append(Stamp(path: path, identity: values))
            }
        }
        var entries: [Entry] = []
        for e in entryList { entries.append(try Entry(json: e)) }
        self.init(
            configPath: config, stamps: stamps, runtime: runtime, bpfPinPath: pin, containerStateDirectory: state,
            entries: entries, rejected: rejectedList.compactMap(\.string))
    }
}

extension StartIndex.Entry {
    var json: JSONValue {
        var o = JSONObject([
            ("policy", .string(policy)), ("profile", .string(profile)), ("seccomp", .bool(seccomp)),
            ("appArmor", .bool(appArmor)), ("bpf", .bool(bpf)), ("failurePolicy", .string(failurePolicy)),
        ])
        if let containerName { o["containerName"] = .string(containerName) }
        if let selector { o["selector"] = selector.json }
        if let seccompProfile { o["seccompProfile"] = seccompProfile }
        if let unavailable { o["unavailable"] = .string(unavailable) }
        if recording { o["recording"] = .bool(true) }
        return .object(o)
    }

    init(json: JSONValue) throws(StartIndex.FormatError) {
        func fail(_ what: String) -> StartIndex.FormatError { .init(description: "start index entry: \(what)") }
        guard let o = json.object, let policy = o["policy"]?.string, let profile = o["profile"]?.string,
            let seccomp = o["seccomp"]?.bool, let appArmor = o["appArmor"]?.bool, let bpf = o["bpf"]?.bool,
            let failurePolicy = o["failurePolicy"]?.string
        else { throw fail("missing fields") }
        var selector: LabelSelector?
        if let s = o["selector"] {
            guard let parsed = LabelSelector(json: s) else { throw fail("bad selector of \(policy)") }
            selector = parsed
        }
        let filter = o["seccompProfile"]
        let unavailable = o["unavailable"]?.string
        guard !seccomp || filter?.object != nil || unavailable != nil else {
            throw fail("\(policy) asks for seccomp without a profile")
        }
        self.init(
            policy: policy, profile: profile, containerName: o["containerName"]?.string, selector: selector,
            seccomp: seccomp, appArmor: appArmor, bpf: bpf, failurePolicy: failurePolicy, seccompProfile: filter,
            unavailable: unavailable, recording: o["recording"]?.bool ?? false)
    }
}

extension LabelSelector {
    /// `{"matchLabels":{…},"matchExpressions":[{"key","operator","values"}]}` (Kubernetes' form).
    public var json: JSONValue {
        .object(
            JSONObject([
                (
                    "matchLabels",
                    .object(JSONObject(matchLabels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
                ),
                (
                    "matchExpressions",
                    .array(
                        matchExpressions.map { r in
                            .object(
                                JSONObject([
                                    ("key", .string(r.key)), ("operator", .string(r.op.rawValue)),
                                    ("values", .array(r.values.map(JSONValue.string))),
                                ]))
                        })
                ),
            ]))
    }

    public init?(json: JSONValue) {
        guard let o = json.object else { return nil }
        var labels: [String: String] = [:]
        for m in o["matchLabels"]?.object?.members ?? [] {
            guard let v = m.value.string else { return nil }
            labels[m.key] = v
        }
        var expressions: [Requirement] = []
        for e in o["matchExpressions"]?.array ?? [] {
            guard let key = e.object?["key"]?.string,
                let op = e.object?["operator"]?.string.flatMap(Requirement.Operator.init),
                let values = e.object?["values"]?.array?.compactMap(\.string)
            else { return nil }
            expressions.append(Requirement(key: key, op: op, values: values))
        }
        self.init(matchLabels: labels, matchExpressions: expressions)
    }
}
