import BulwarkModel
import BulwarkOCI
import BulwarkPolicy

/// IPs of Services and Pods for `toServices`, `toPods` and the service-based built-in rules.
/// In a cluster the agent fills it from NRI and the API server; on standalone hosts from the
/// node config's `inventoryFile`; the CLI has none, and the compiler notes what it could not resolve.
public struct EgressInventory: Sendable {
    public struct Endpoint: Sendable, Hashable {
        public var ip: String
        /// Empty = all ports.
        public var ports: [PortRange]
        public init(ip: String, ports: [PortRange] = []) {
            self.ip = ip
            self.ports = ports
        }
    }
    public var services: @Sendable (_ namespace: String?, _ name: String?, _ selector: LabelSelector?) -> [Endpoint]?
    public var pods: @Sendable (_ namespace: String?, _ selector: LabelSelector) -> [Endpoint]?

    public init(
        services: @escaping @Sendable (String?, String?, LabelSelector?) -> [Endpoint]?,
        pods: @escaping @Sendable (String?, LabelSelector) -> [Endpoint]?
    ) {
        self.services = services
        self.pods = pods
    }

    /// Resolves nothing.
    public static let none = EgressInventory(services: { _, _, _ in nil }, pods: { _, _ in nil })
}

/// Compiles a policy into the BPF enforcer's tables. Semantics follow vArmor (§2, §3) with
/// Bulwark's fixes: exact paths are exact, verdicts are the deterministic union of all
/// matching rules (no first-match, no last-writer-wins), IPv4-mapped IPv6 is IPv4.
public struct BPFCompiler: Sendable {
    public var diskDevices: [String]
    public var inventory: EgressInventory
    /// The behaviour model of the profile (DefenseInDepth with `bpf.profileType: BehaviorModel`).
    public var model: BehaviorModel?
    /// vArmor's manager flags `--enableServiceEgressControl` / `--enablePodEgressControl`, as the
    /// node config's `serviceEgressControl` / `podEgressControl`.
    public var serviceEgressControl: Bool
    public var podEgressControl: Bool

    public init(
        diskDevices: [String] = [], inventory: EgressInventory = .none, model: BehaviorModel? = nil,
        serviceEgressControl: Bool = true, podEgressControl: Bool = true
    ) {
        self.diskDevices = diskDevices
        self.inventory = inventory
        self.model = model
        self.serviceEgressControl = serviceEgressControl
        self.podEgressControl = podEgressControl
    }

    /// Throws when the profile cannot be compiled on this node (a DefenseInDepth allow-list without
    /// the behaviour model it is made from): nothing is delivered rather than an empty profile.
    public func compile(_ policy: Policy, profileName: String) throws(ProfileUnavailable) -> BPFProfile {
        var b = Builder(profile: BPFProfile(name: profileName, mode: .enforce))
        let body = policy.spec.policy
        switch body.mode {
        case .alwaysAllow:
            break
        case .defenseInDepth:
            guard let did = body.defenseInDepth, let bpf = did.bpf else {
                throw ProfileUnavailable("\(profileName): mode DefenseInDepth without `defenseInDepth.bpf`")
            }
            // an allow-list: every class is refused unless an entry allows it; observation mode
            // records instead (and raw deny rules only record)
            b.profile.allowList = did.allowViolations ? [.all, .observe] : .all
            b.observe = did.allowViolations
            if bpf.source == .behaviorModel {
                guard let model, model.name == profileName, let m = model.bpf, !m.isEmpty else {
                    throw .noModel(profileName, "BPF")
                }
                ModelProfiles.addBPFAllowList(m, into: &b)
            }
            addRaw(bpf.rawRules, privileged: true, into: &b)
        case .behaviorModeling:
            b.profile.mode = .complain
        case .runtimeDefault:
            b.addRuntimeDefaultBase(mode: .deny)
        case .enhanceProtect:
            let ep = body.enhanceProtect ?? EnhanceProtect()
            var mode: Qualifiers = ep.allowViolations ? [] : .deny
            if ep.auditViolations { mode.insert(.audit) }
            if !ep.privileged { b.addRuntimeDefaultBase(mode: mode) }
            let refs =
                ep.hardeningRules + ep.vulMitigationRules
                + ep.attackProtectionRules.filter { $0.targets.isEmpty }.flatMap { $0.rules }
            for ref in refs {
                guard let rule = BuiltinRule.lookup(ref.id) else { continue }
                for r in rule.bpf { add(r, mode: mode, privileged: ep.privileged, builtin: rule.id, into: &b) }
            }
            addRaw(ep.bpfRawRules, privileged: ep.privileged, into: &b)
        }
        return b.finish()
    }

    private func add(
        _ r: BuiltinRule.BPFRule, mode: Qualifiers, privileged: Bool, builtin: String, into b: inout Builder
    ) {
        switch r {
        case .file(let p, let perms):
            b.addPath(p, exec: false, verdict: .init(mode: mode, permissions: perms.rawValue))
        case .process(let p):
            b.addPath(p, exec: true, verdict: .init(mode: mode, permissions: FilePermissions.exec.rawValue))
        case .mount(let source, let fstype, let flags, let reverse, let privilegedOnly):
            if !privilegedOnly || privileged { b.addMount(source, fstype, flags, reverse, mode) }
        case .diskDeviceFiles(let perms):
            for d in diskDevices {
                b.addPath("/dev/\(d)", exec: false, verdict: .init(mode: mode, permissions: perms.rawValue))
            }
            if diskDevices.isEmpty {
                b.profile.notes.append("no disk devices given: disk-device file rules expand to nothing")
            }
        case .diskDeviceMounts(let flags, let reverse, let privilegedOnly):
            if !privilegedOnly || privileged {
                for d in diskDevices { b.addMount("/dev/\(d)", "*", flags, reverse, mode) }
            }
        case .capabilities(let caps):
            let mask = caps.reduce(UInt64(0)) { $0 | (1 << UInt64($1)) }
            if mode.contains(.deny) { b.profile.capabilityDeny |= mask }
            if mode.contains(.audit) { b.profile.capabilityAudit |= mask }
        case .ptraceCrossNamespace(let perms):
            b.addPtrace(perms, strict: false, mode: mode)
        case .socket(let domains, let types, let protocols):
            b.addSocket(domains: domains, types: types, protocols: protocols, mode: mode)
        case .egress(let addresses):
            for a in addresses { if let n = IPNetwork.host(a) { b.addEgress(n, ports: [], mode: mode) } }
        case .service(let ns, let name):
            resolveService(ns, name, nil, mode: mode, builtin: builtin, into: &b)
        }
    }

    private func resolveService(
        _ ns: String?, _ name: String?, _ sel: LabelSelector?, mode: Qualifiers, builtin: String? = nil,
        into b: inout Builder
    ) {
        var what = "toServices " + (name.map { "\(ns ?? "")/\($0)" } ?? "\(ns ?? "*") \(Self.describe(sel))")
        if let builtin { what = "built-in \(builtin): service \(ns ?? "")/\(name ?? "")" }
        func unresolved(_ r: BPFProfile.UnresolvedEgress.Reason) {
            b.profile.unresolved.append(.init(reference: what, reason: r, builtin: builtin != nil))
        }
        guard serviceEgressControl else { return unresolved(.serviceEgressControlOff) }
        guard let endpoints = inventory.services(ns, name, sel) else { return unresolved(.noInventory) }
        if endpoints.isEmpty { unresolved(.noMatch) }
        for e in endpoints { if let n = IPNetwork.host(e.ip) { b.addEgress(n, ports: e.ports, mode: mode) } }
    }

    /// What in a policy names cluster addresses (`toServices`, `toPods`, a service built-in).
    public enum ClusterReference: Sendable, Equatable {
        case services(namespace: String?, name: String?, selector: LabelSelector?)
        case pods(namespace: String?, selector: LabelSelector)
    }

    public static func clusterReferences(_ policy: Policy) -> [ClusterReference] {
        let body = policy.spec.policy
        guard body.enforcers.contains(.bpf) else { return [] }
        var out: [ClusterReference] = []
        for raw in [body.enhanceProtect?.bpfRawRules, body.defenseInDepth?.bpf?.rawRules].compactMap({ $0 }) {
            out += raw.services.map { .services(namespace: $0.namespace, name: $0.name, selector: $0.selector) }
            out += raw.pods.map { .pods(namespace: $0.namespace, selector: $0.selector) }
        }
        if body.mode == .enhanceProtect, let ep = body.enhanceProtect {
            let refs = ep.hardeningRules + ep.vulMitigationRules + ep.attackProtectionRules.flatMap { $0.rules }
            for ref in refs {
                for case .service(let ns, let name) in BuiltinRule.lookup(ref.id)?.bpf ?? [] {
                    out.append(.services(namespace: ns, name: name, selector: nil))
                }
            }
        }
        return out
    }

    /// The policy's BPF profile depends on cluster addresses: it is compiled again when they change.
    public static func referencesClusterAddresses(_ policy: Policy) -> Bool { !clusterReferences(policy).isEmpty }

    /// What the policy's cluster references resolve to in this compiler's inventory: equal
    /// resolutions compile to equal rows, so an address change elsewhere recompiles nothing.
    public func clusterResolution(_ policy: Policy) -> [[EgressInventory.Endpoint]?] {
        Self.clusterReferences(policy).map { ref in
            switch ref {
            case .services(let ns, let name, let sel): inventory.services(ns, name, sel)
            case .pods(let ns, let sel): inventory.pods(ns, sel)
            }
        }
    }

    static func describe(_ sel: LabelSelector?) -> String {
        guard let sel else { return "{}" }
        let labels = sel.matchLabels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }
        let exprs = sel.matchExpressions.map { "\($0.key) \($0.op.rawValue) (\($0.values.joined(separator: ",")))" }
        return "{" + (labels + exprs).joined(separator: ", ") + "}"
    }

    private func addRaw(_ raw: BPFRawRules, privileged: Bool, into b: inout Builder) {
        // A file rule with exec also makes a process rule, and a process rule with r/w/a also
        // a file rule (vArmor runs both lists through both converters).
        for r in raw.files + raw.processes {
            let fileBits = r.permissions.subtracting(.exec)
            if !fileBits.isEmpty {
                b.addPath(r.pattern, exec: false, verdict: .init(mode: r.qualifiers, permissions: fileBits.rawValue))
            }
            if r.permissions.contains(.exec) {
                b.addPath(
                    r.pattern, exec: true,
                    verdict: .init(mode: r.qualifiers, permissions: FilePermissions.exec.rawValue))
            }
        }
        for s in raw.sockets {
            b.addSocket(domains: s.domains, types: s.types, protocols: s.protocols, mode: s.qualifiers)
        }
        for d in raw.destinations {
            for a in d.addresses {
                switch a {
                case .any:
                    b.addEgress(.cidr("0.0.0.0/0")!, ports: d.ports, mode: d.qualifiers)
                    b.addEgress(.cidr("::/0")!, ports: d.ports, mode: d.qualifiers)
                case .network(let n): b.addEgress(n, ports: d.ports, mode: d.qualifiers)
                case .podSelf: b.addPodSelf(d.ports, mode: d.qualifiers)
                }
            }
        }
        for s in raw.services { resolveService(s.namespace, s.name, s.selector, mode: s.qualifiers, into: &b) }
        for p in raw.pods {
            let what = "toPods \(p.namespace ?? "*") \(Self.describe(p.selector))"
            guard podEgressControl else {
                b.profile.unresolved.append(.init(reference: what, reason: .podEgressControlOff, builtin: false))
                continue
            }
            guard let endpoints = inventory.pods(p.namespace, p.selector) else {
                b.profile.unresolved.append(.init(reference: what, reason: .noInventory, builtin: false))
                continue
            }
            if endpoints.isEmpty {
                b.profile.unresolved.append(.init(reference: what, reason: .noMatch, builtin: false))
            }
            for e in endpoints {
                if let n = IPNetwork.host(e.ip) { b.addEgress(n, ports: p.ports, mode: p.qualifiers) }
            }
        }
        if let p = raw.ptrace { b.addPtrace(p.permissions, strict: p.strictMode, mode: p.qualifiers) }
        if privileged {
            for m in raw.mounts { b.addMount(m.sourcePattern.text, m.fstype, m.flags, m.reverseFlags, m.qualifiers) }
        }
    }
}

/// Accumulates rules, then computes the table rows.
struct Builder {
    var profile: BPFProfile
    /// Observation mode: deny rules only record (allow-list profiles with `allowViolations`).
    var observe = false
    private var egressRules: [(IPNetwork, [PortRange], Qualifiers)] = []
    private var podSelf: [(PortRange, Qualifiers)] = []
    private var socketModes: [SocketKey: UInt8] = [:]

    init(profile: BPFProfile) { self.profile = profile }

    struct SocketKey: Hashable {
        var family: Int?
        var type: Int?
        var proto: Int?
    }

    mutating func addRuntimeDefaultBase(mode: Qualifiers) {
        let rwa: FilePermissions = [.read, .write, .append]
        for p in [
            "/proc/sysrq-trigger", "/proc/**/mem", "/proc/kmem", "/proc/kcore", "/sys/firmware/**",
            "/sys/devices/virtual/powercap/**", "/sys/kernel/security/**",
        ] {
            addPath(p, exec: false, verdict: .init(mode: mode, permissions: rwa.rawValue))
        }
        addMount("**", "*", LinuxNames.mountAll & ~LinuxNames.umount, LinuxNames.mountAll, mode)
        addPtrace([.trace, .read, .traceBy, .readBy], strict: false, mode: mode)
    }

    mutating func addPath(_ text: String, exec: Bool, verdict: BPFProfile.Verdict) {
        guard case .success(let p) = PathPattern.parse(text, maxPart: PolicyParser.maxPathPart) else { return }
        addPath(p, exec: exec, verdict: verdict)
    }

    mutating func addPath(_ p: PathPattern, exec: Bool, verdict: BPFProfile.Verdict) {
        var v = verdict
        if observe {
            v.audit |= v.deny
            v.deny = 0
        }
        profile.pathRules.append(.init(exec: exec, pattern: p, verdict: v))
    }

    /// A rule's mode as this profile applies it (observation: deny only records).
    func effective(_ mode: Qualifiers) -> Qualifiers {
        guard observe, mode.contains(.deny) else { return mode }
        return mode.subtracting(.deny).union(.audit)
    }

    mutating func addMount(_ source: String, _ fstype: String, _ flags: UInt32, _ reverse: UInt32, _ mode: Qualifiers) {
        profile.mounts.append(
            .init(mode: effective(mode).rawValue, source: source, fstype: fstype, flags: flags, reverseFlags: reverse))
    }

    mutating func addPtrace(_ perms: PtracePermissions, strict: Bool, mode: Qualifiers) {
        let mode = effective(mode)
        // an allow entry allows whoever the peer is (`strictMode` narrows deny rules only)
        if mode.contains(.allow) { profile.ptrace.allowAny |= perms.rawValue }
        if mode.contains(.deny) {
            if strict {
                profile.ptrace.denyStrict |= perms.rawValue
            } else {
                profile.ptrace.denyCross |= perms.rawValue
            }
        }
        if mode.contains(.audit) {
            if strict {
                profile.ptrace.auditStrict |= perms.rawValue
            } else {
                profile.ptrace.auditCross |= perms.rawValue
            }
        }
    }

    mutating func addSocket(domains: [Int], types: [Int], protocols: [Int], mode: Qualifiers) {
        let ds: [Int?] = domains.isEmpty ? [nil] : domains
        let ts: [Int?] = types.isEmpty ? [nil] : types
        let ps: [Int?] = protocols.isEmpty ? [nil] : protocols
        let mode = effective(mode)
        for d in ds {
            for t in ts {
                for p in ps { socketModes[SocketKey(family: d, type: t, proto: p), default: 0] |= mode.rawValue }
            }
        }
    }

    mutating func addEgress(_ n: IPNetwork, ports: [PortRange], mode: Qualifiers) {
        egressRules.append((n, ports.isEmpty ? [.all] : ports, effective(mode)))
    }

    mutating func addPodSelf(_ ports: [PortRange], mode: Qualifiers) {
        for r in ports.isEmpty ? [.all] : ports { podSelf.append((r, effective(mode))) }
    }

    func finish() -> BPFProfile {
        var p = profile
        PathTables.build(&p)
        p.sockets = socketModes.map {
            .init(family: $0.key.family, type: $0.key.type, protocol: $0.key.proto, mode: $0.value)
        }
        .sorted {
            ($0.family ?? -1, $0.type ?? -1, $0.protocol ?? -1) < ($1.family ?? -1, $1.type ?? -1, $1.protocol ?? -1)
        }
        for family in [IPNetwork.Family.ipv4, .ipv6] {
            // Longest-prefix match returns one entry: it carries every rule whose network contains
            // it. Networks are visited shortest prefix first; an entry is its nearest present
            // ancestor's merged ranges plus its own rules (ancestors found by masking to each
            // prefix length in use: near-linear in the number of rules, not quadratic).
            var own: [IPNetwork: [(PortRange, Qualifiers)]] = [:]
            for r in egressRules where r.0.family == family {
                own[r.0, default: []] += r.1.map { ($0, r.2) }
            }
            let nets = own.keys.map { ($0, $0.description) }.sorted {
                ($0.0.prefixLength, $0.1) < ($1.0.prefixLength, $1.1)
            }
            .map(\.0)
            let lengths = Set(nets.map(\.prefixLength)).sorted(by: >)
            var merged: [IPNetwork: [BPFProfile.PortRangeMode]] = [:]
            var entries: [BPFProfile.EgressEntry] = []
            entries.reserveCapacity(nets.count)
            for n in nets {
                var inherited: [(PortRange, Qualifiers)] = []
                for l in lengths where l < n.prefixLength {
                    let ancestor = IPNetwork(family: family, bytes: n.bytes, prefixLength: l)
                    if let m = merged[ancestor] {
                        inherited = m.map { (PortRange($0.first, $0.last), Qualifiers(rawValue: $0.mode)) }
                        break
                    }
                }
                let ranges = PortRanges.merge(inherited + (own[n] ?? []))
                merged[n] = ranges
                entries.append(.init(network: n.description, ranges: ranges))
            }
            if family == .ipv4 { p.egress4 = entries } else { p.egress6 = entries }
        }
        p.podSelfRanges = PortRanges.merge(podSelf)
        return p
    }
}

/// Port-range algebra: overlapping ranges with modes → sorted, disjoint ranges with OR-ed modes.
public enum PortRanges {
    /// A sweep over the range ends (sorted once): O(k log k) for k input ranges.
    public static func merge(_ input: [(PortRange, Qualifiers)]) -> [BPFProfile.PortRangeMode] {
        guard !input.isEmpty else { return [] }
        // (point, +1 start / -1 end after `point - 1`, mode bits)
        var events: [(point: Int, delta: Int, mode: UInt8)] = []
        events.reserveCapacity(input.count * 2)
        for (r, q) in input {
            events.append((Int(r.first), 1, q.rawValue))
            events.append((Int(r.last) + 1, -1, q.rawValue))
        }
        events.sort { $0.point < $1.point }
        var bitCounts = [Int](repeating: 0, count: 8)
        var active = 0
        var out: [BPFProfile.PortRangeMode] = []
        var i = 0
        while i < events.count {
            let lo = events[i].point
            while i < events.count && events[i].point == lo {
                let e = events[i]
                active += e.delta
                for b in 0..<8 where e.mode & (1 << b) != 0 { bitCounts[b] += e.delta }
                i += 1
            }
            guard active > 0, i < events.count else { continue }
            let hi = events[i].point - 1
            var mode: UInt8 = 0
            for b in 0..<8 where bitCounts[b] > 0 { mode |= 1 << b }
            if let last = out.last, Int(last.last) + 1 == lo, last.mode == mode {
                out[out.count - 1].last = UInt16(hi)
            } else {
                out.append(.init(first: UInt16(lo), last: UInt16(hi), mode: mode))
            }
        }
        return out
    }
}
