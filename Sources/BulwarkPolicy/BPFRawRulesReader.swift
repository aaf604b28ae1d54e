import Foundation

/// Reads `enhanceProtect.bpfRawRules` (vArmor §1.4) and `defenseInDepth.bpf.bpfRawRules`.
struct BPFRawRulesReader {
    let value: YValue
    /// The mode of a rule written without `qualifiers` (vArmor 0.8, before the field existed):
    /// the policy's auditViolations/allowViolations.
    let legacyQualifiers: Qualifiers
    /// `allow` is a qualifier (allow-list entries: DefenseInDepth only).
    let allowQualifier: Bool

    func read() -> BPFRawRules {
        var rules = BPFRawRules()
        guard let m = value.mapping() else { return rules }
        for item in m.value("files")?.sequence() ?? [] {
            if let r = readFileRule(item, processes: false) { rules.files.append(r) }
        }
        for item in m.value("processes")?.sequence() ?? [] {
            if let r = readFileRule(item, processes: true) { rules.processes.append(r) }
        }
        if let net = m.value("network")?.mapping() {
            for item in net.value("sockets")?.sequence() ?? [] {
                if let r = readSocket(item), !rules.sockets.contains(r) { rules.sockets.append(r) }
            }
            if let eg = net.value("egress")?.mapping() {
                for item in eg.value("toDestinations")?.sequence() ?? [] {
                    if let r = readDestination(item) { rules.destinations.append(r) }
                }
                for item in eg.value("toServices")?.sequence() ?? [] {
                    if let r = readService(item) { rules.services.append(r) }
                }
                for item in eg.value("toPods")?.sequence() ?? [] {
                    if let r = readPod(item) { rules.pods.append(r) }
                }
                eg.finish(known: ["toDestinations", "toServices", "toPods"])
            }
            net.finish(known: ["sockets", "egress"])
        }
        if let p = m.value("ptrace") { rules.ptrace = readPtrace(p) }
        for item in m.value("mounts")?.sequence() ?? [] {
            if let r = readMount(item) { rules.mounts.append(r) }
        }
        m.finish(known: ["files", "processes", "network", "ptrace", "mounts"])
        return rules
    }

    /// `qualifiers` is required by vArmor's CRD; an empty list means "match, but neither deny nor log".
    func qualifiers(_ m: MappingReader) -> Qualifiers? {
        guard let qv = m.take("qualifiers"), !qv.isNull else {
            let written = Self.text(legacyQualifiers)
            m.owner.ctx.report(
                .warning, m.owner.node, "\(m.owner.path).qualifiers",
                "vArmor 0.8 form: no qualifiers, so the policy's auditViolations/allowViolations apply: \(written)",
                hint: "add `qualifiers: \(written)` (`bulwark policy migrate FILE` prints the current form)")
            m.owner.ctx.addQualifiers(at: m.owner.node, text: written)
            return legacyQualifiers
        }
        var q: Qualifiers = []
        for item in qv.sequence() ?? [] {
            guard let s = item.string() else { continue }
            switch s.lowercased() {
            case "deny": q.insert(.deny)
            case "audit": q.insert(.audit)
            case "allow" where allowQualifier: q.insert(.allow)
            case "allow":
                item.error(
                    "qualifier `allow` adds to an allow-list: it applies in defenseInDepth.bpf.bpfRawRules only",
                    hint: "use `deny` and/or `audit`")
            default:
                item.error(
                    "unknown qualifier \"\(s)\"",
                    hint: allowQualifier ? "use `allow`, `deny` and/or `audit`" : "use `deny` and/or `audit`")
            }
        }
        if q.contains(.allow) && q.contains(.deny) {
            qv.error("a rule cannot both allow and deny", hint: "write two rules, or drop one qualifier")
        }
        if qv.sequence()?.isEmpty == true {
            qv.warning("no qualifiers: the rule neither denies nor logs", hint: "add `deny`, `audit` or both")
        }
        return q
    }

    static func text(_ q: Qualifiers) -> String {
        "["
            + [
                q.contains(.allow) ? "allow" : nil, q.contains(.audit) ? "audit" : nil,
                q.contains(.deny) ? "deny" : nil,
            ]
            .compactMap { $0 }.joined(separator: ", ") + "]"
    }

    func readFileRule(_ item: YValue, processes: Bool) -> FileRule? {
        guard let m = item.mapping() else { return nil }
        let q = qualifiers(m)
        var pattern: PathPattern?
        if let pv = m.required("pattern", hint: "add `pattern: /path/**`"), let text = pv.nonEmptyString() {
            switch PathPattern.parse(text, maxPart: PolicyParser.maxPathPart) {
            case .success(let p): pattern = p
            case .failure(let e): pv.error(e.message, hint: e.hint)
            }
        }
        var perms: FilePermissions = []
        let permsValue = m.required(
            "permissions", hint: processes ? "add `permissions: [exec]`" : "add `permissions: [read, write]`")
        for p in permsValue?.sequence() ?? [] {
            guard let s = p.string() else { continue }
            switch s.lowercased() {
            case "all", "*": perms.formUnion([.read, .write, .append, .exec])
            case "read", "r": perms.insert(.read)
            case "write", "w": perms.formUnion([.write, .append])
            case "append", "a": perms.insert(.append)
            case "exec", "x": perms.insert(.exec)
            default:
                p.error("unknown permission \"\(s)\"", hint: "use read (r), write (w), append (a), exec (x) or all (*)")
            }
        }
        if let permsValue, permsValue.sequence()?.isEmpty == true {
            permsValue.error("`permissions` is empty", hint: "list at least one permission")
        }
        m.finish(known: ["qualifiers", "pattern", "permissions"])
        guard let q, let pattern, !perms.isEmpty else { return nil }
        return FileRule(
            qualifiers: q, pattern: pattern, permissions: perms,
            source: SourceRef(file: item.ctx.file, line: item.line, column: item.column))
    }

    func readSocket(_ item: YValue) -> SocketRule? {
        guard let m = item.mapping() else { return nil }
        let q = qualifiers(m)
        func values(_ key: String, table: [(String, [Int])]) -> ([Int], Bool) {
            guard let v = m.value(key) else { return ([], false) }
            var out: [Int] = []
            var present = false
            for e in v.sequence() ?? [] {
                guard let s = e.string() else { continue }
                present = true
                let lower = s.lowercased()
                if lower == "all" || lower == "*" { return ([], true) }
                guard let hit = table.first(where: { $0.0 == lower }) else {
                    e.error(
                        "unknown \(key.dropLast()) \"\(s)\"",
                        hint: "use one of all, \(table.map(\.0).joined(separator: ", "))")
                    continue
                }
                for n in hit.1 where !out.contains(n) { out.append(n) }
            }
            return (out, present)
        }
        let (domains, hasDomains) = values("domains", table: LinuxNames.addressFamilies.map { ($0.0, [$0.1]) })
        let (types, hasTypes) = values("types", table: LinuxNames.socketTypes.map { ($0.0, [$0.1]) })
        let (protocols, hasProtocols) = values("protocols", table: LinuxNames.protocols)
        m.finish(known: ["qualifiers", "domains", "types", "protocols"])
        if hasTypes && hasProtocols {
            item.error("`types` and `protocols` are mutually exclusive", hint: "split them into two socket rules")
            return nil
        }
        if !hasDomains && !hasTypes && !hasProtocols {
            item.error("a socket rule needs `domains`, `types` or `protocols`", hint: "add e.g. `protocols: [udp]`")
            return nil
        }
        guard let q else { return nil }
        return SocketRule(qualifiers: q, domains: domains, types: types, protocols: protocols)
    }

    static func readPorts(_ v: YValue?) -> [PortRange] {
        var out: [PortRange] = []
        for item in v?.sequence() ?? [] {
            guard let m = item.mapping() else { continue }
            let port = m.required("port", hint: "add `port: 443`")?.integer(in: 1...65535)
            let endValue = m.value("endPort")
            let end = endValue?.integer(in: 1...65535)
            m.finish(known: ["port", "endPort"])
            guard let port else { continue }
            if let end {
                if end < port {
                    endValue?.error("endPort \(end) is lower than port \(port)", hint: "set endPort ≥ port")
                    continue
                }
                out.append(PortRange(UInt16(port), UInt16(end)))
            } else if endValue == nil {
                out.append(PortRange(UInt16(port), UInt16(port)))
            }
        }
        return out
    }

    func readDestination(_ item: YValue) -> Destination? {
        guard let m = item.mapping() else { return nil }
        let q = qualifiers(m)
        let ipValue = m.value("ip")
        let cidrValue = m.value("cidr")
        let ports = Self.readPorts(m.value("ports"))
        m.finish(known: ["qualifiers", "ip", "cidr", "ports"])
        var addresses: [Destination.Address] = []
        if ipValue != nil && cidrValue != nil {
            item.error("`ip` and `cidr` are mutually exclusive", hint: "keep one of them")
            return nil
        }
        if let ipValue, let ip = ipValue.nonEmptyString() {
            switch ip {
            case "pod-self": addresses = [.podSelf]
            case "unspecified":
                addresses = [.network(IPNetwork.host("0.0.0.0")!), .network(IPNetwork.host("::")!)]
            case "localhost":
                addresses = [.network(IPNetwork.host("127.0.0.1")!), .network(IPNetwork.host("::1")!)]
            default:
                guard let net = IPNetwork.host(ip) else {
                    ipValue.error(
                        "\"\(ip)\" is not an IP address",
                        hint:
                            "write an IPv4/IPv6 address, or one of pod-self, unspecified, localhost; use `cidr` for networks"
                    )
                    return nil
                }
                addresses = [.network(net)]
            }
        } else if let cidrValue, let text = cidrValue.nonEmptyString() {
            guard let net = IPNetwork.cidr(text) else {
                cidrValue.error("\"\(text)\" is not a CIDR", hint: "write e.g. 10.0.0.0/8 or fd00::/8")
                return nil
            }
            addresses = [.network(net)]
        } else if ipValue == nil && cidrValue == nil {
            addresses = [.any]
        } else {
            return nil
        }
        guard let q else { return nil }
        return Destination(qualifiers: q, addresses: addresses, ports: ports)
    }

    func readService(_ item: YValue) -> ServiceEgress? {
        guard let m = item.mapping() else { return nil }
        let q = qualifiers(m)
        let ns = m.value("namespace")?.nonEmptyString()
        let nameValue = m.value("name")
        let name = nameValue?.nonEmptyString()
        let selValue = m.value("serviceSelector")
        let selector = selValue.flatMap(LabelSelectorReader.read)
        m.finish(known: ["qualifiers", "namespace", "name", "serviceSelector"])
        if nameValue != nil && selValue != nil {
            item.error("`name` and `serviceSelector` are mutually exclusive", hint: "keep one of them")
            return nil
        }
        if nameValue == nil && selValue == nil {
            item.error(
                "a service rule needs `name` or `serviceSelector`", hint: "add `name: <service>` with `namespace:`")
            return nil
        }
        if nameValue != nil && ns == nil {
            item.error("`name` requires `namespace`", hint: "add `namespace: <service namespace>`")
            return nil
        }
        guard let q else { return nil }
        return ServiceEgress(qualifiers: q, namespace: ns, name: name, selector: selector)
    }

    func readPod(_ item: YValue) -> PodEgress? {
        guard let m = item.mapping() else { return nil }
        let q = qualifiers(m)
        let ns = m.value("namespace")?.nonEmptyString()
        let selector = m.required("podSelector", hint: "add `podSelector: {matchLabels: ...}`").flatMap(
            LabelSelectorReader.read)
        let ports = Self.readPorts(m.value("ports"))
        m.finish(known: ["qualifiers", "namespace", "podSelector", "ports"])
        guard let q, let selector else { return nil }
        return PodEgress(qualifiers: q, namespace: ns, selector: selector, ports: ports)
    }

    func readPtrace(_ item: YValue) -> PtraceRule? {
        guard let m = item.mapping() else { return nil }
        let q = qualifiers(m)
        let strict = m.value("strictMode")?.bool() ?? false
        var perms: PtracePermissions = []
        let pv = m.required("permissions", hint: "add `permissions: [trace, read]`")
        for p in pv?.sequence() ?? [] {
            guard let s = p.string() else { continue }
            switch s.lowercased() {
            case "all", "*": perms.formUnion(.all)
            case "trace": perms.insert(.trace)
            case "read": perms.insert(.read)
            case "traceby": perms.insert(.traceBy)
            case "readby": perms.insert(.readBy)
            default: p.error("unknown ptrace permission \"\(s)\"", hint: "use trace, read, traceby, readby or all")
            }
        }
        if let pv, pv.sequence()?.isEmpty == true {
            pv.error("`permissions` is empty", hint: "list at least one permission")
        }
        m.finish(known: ["qualifiers", "strictMode", "permissions"])
        guard let q, !perms.isEmpty else { return nil }
        return PtraceRule(qualifiers: q, strictMode: strict, permissions: perms)
    }

    func readMount(_ item: YValue) -> MountRule? {
        guard let m = item.mapping() else { return nil }
        let q = qualifiers(m)
        var pattern: PathPattern?
        if let pv = m.required("sourcePattern", hint: "add `sourcePattern: /dev/**`"), let text = pv.nonEmptyString() {
            switch PathPattern.parse(text, maxPart: PolicyParser.maxMountPatternPart) {
            case .success(let p): pattern = p
            case .failure(let e): pv.error(e.message, hint: e.hint)
            }
        }
        var fstype: String?
        if let fv = m.required("fstype", hint: "add `fstype: \"*\"` for any filesystem"), let f = fv.nonEmptyString() {
            if f.utf8.count > 15 {
                fv.error(
                    "fstype \"\(f)\" is longer than 15 bytes", hint: "use the kernel's filesystem name, e.g. ext4, or *"
                )
            } else {
                fstype = f
            }
        }
        var flags: UInt32 = 0
        var reverse: UInt32 = 0
        let fv = m.required("flags", hint: "add `flags: [all]`")
        for f in fv?.sequence() ?? [] {
            guard let s = f.string() else { continue }
            let key = ["B", "M", "R"].contains(s) ? s : s.lowercased()
            guard let bits = LinuxNames.mountFlags[key] else {
                f.error(
                    "unknown mount flag \"\(s)\"",
                    hint: "use e.g. all, ro, rw, bind, rbind, move, remount, nosuid, umount")
                continue
            }
            flags |= bits.0
            reverse |= bits.1
        }
        if let fv, fv.sequence()?.isEmpty == true {
            fv.error("`flags` is empty", hint: "list at least one flag, or `all`")
        }
        m.finish(known: ["qualifiers", "sourcePattern", "fstype", "flags"])
        guard let q, let pattern, let fstype, flags != 0 || reverse != 0 else { return nil }
        return MountRule(qualifiers: q, sourcePattern: pattern, fstype: fstype, flags: flags, reverseFlags: reverse)
    }
}
