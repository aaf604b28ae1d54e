import BulwarkOCI
import Foundation

/// Reads and validates `spec.policy` (vArmor's create-time rules, §1.9, plus Bulwark's own).
struct PolicyBodyReader {
    let value: YValue

    static let notSupported = "the NetworkProxy enforcer (Envoy sidecar) is not supported by Bulwark"

    func read() -> PolicyBody? {
        guard let m = value.mapping() else { return nil }
        var enforcers: EnforcerSet = []
        var enforcerText = ""
        let enforcerValue = m.required(
            "enforcer", hint: "set `enforcer:` to AppArmor, BPF, Seccomp or a combination such as AppArmorBPFSeccomp")
        if let ev = enforcerValue, let text = ev.nonEmptyString() {
            enforcerText = text
            enforcers = EnforcerSet.parse(text)
            if enforcers.contains(.networkProxy) {
                ev.error(
                    Self.notSupported,
                    hint: "remove NetworkProxy from the enforcer; Bulwark enforces AppArmor, BPF and Seccomp")
            } else if enforcers.isEmpty {
                ev.error(
                    "\"\(text)\" names no known enforcer",
                    hint: "use AppArmor, BPF, Seccomp or a combination such as AppArmorBPFSeccomp")
            }
        }
        var mode: PolicyMode?
        if let mv = m.required(
            "mode", hint: "set `mode:` to one of \(PolicyMode.allCases.map(\.rawValue).joined(separator: ", "))"),
            let text = mv.string()
        {
            mode = PolicyMode(rawValue: text)
            if mode == nil {
                let near = MappingReader.closest(text, in: PolicyMode.allCases.map(\.rawValue))
                mv.error(
                    "unknown mode \"\(text)\"",
                    hint: near.map { "did you mean \($0)?" }
                        ?? "use one of \(PolicyMode.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        let epValue = m.value("enhanceProtect")
        let moValue = m.value("modelingOptions")
        let didValue = m.value("defenseInDepth")
        if let np = m.value("networkProxyConfig") {
            np.error(Self.notSupported, hint: "remove networkProxyConfig")
        }
        m.finish(known: [
            "enforcer", "mode", "enhanceProtect", "modelingOptions", "defenseInDepth", "networkProxyConfig",
        ])
        guard let mode, !enforcers.isEmpty else { return nil }

        var body = PolicyBody(enforcerText: enforcerText, enforcers: enforcers, mode: mode)
        // Mode requirements.
        switch mode {
        case .enhanceProtect:
            if epValue == nil {
                value.error("mode EnhanceProtect requires `enhanceProtect`", hint: "add `enhanceProtect:` with rules")
            }
        case .behaviorModeling:
            if moValue == nil {
                value.error(
                    "mode BehaviorModeling requires `modelingOptions`",
                    hint: "add `modelingOptions: {duration: 30}` (minutes)")
            }
        case .defenseInDepth:
            if didValue == nil {
                value.error(
                    "mode DefenseInDepth requires `defenseInDepth`",
                    hint: "add `defenseInDepth:` with appArmor/seccomp/bpf profiles")
            }
        case .alwaysAllow, .runtimeDefault:
            break
        }
        if let epValue {
            if mode != .enhanceProtect {
                epValue.warning("ignored in mode \(mode.rawValue)", hint: "remove it, or set mode: EnhanceProtect")
            }
            body.enhanceProtect = EnhanceProtectReader(value: epValue, enforcers: enforcers).read()
        }
        if let moValue {
            if mode != .behaviorModeling { moValue.warning("ignored in mode \(mode.rawValue)", hint: "remove it") }
            if let mm = moValue.mapping() {
                if let dv = mm.required("duration", hint: "add `duration: 30` (minutes)"),
                    let d = dv.integer(in: 1...525_600)
                {
                    body.modelingDurationMinutes = Int(d)
                }
                mm.finish(known: ["duration"])
            }
        }
        if let didValue {
            if mode != .defenseInDepth { didValue.warning("ignored in mode \(mode.rawValue)", hint: "remove it") }
            body.defenseInDepth = DefenseInDepthReader(
                value: didValue, enforcers: enforcers, checkRequired: mode == .defenseInDepth
            ).read()
        }
        return body
    }
}

struct EnhanceProtectReader {
    let value: YValue
    let enforcers: EnforcerSet

    func read() -> EnhanceProtect? {
        guard let m = value.mapping() else { return nil }
        var ep = EnhanceProtect()
        ep.hardeningRules = readRules(m.value("hardeningRules"), category: .hardening)
        for item in m.value("attackProtectionRules")?.sequence() ?? [] {
            guard let am = item.mapping() else { continue }
            let rules = readRules(am.required("rules", hint: "add `rules: [rule-name]`"), category: .attackProtection)
            let targetsValue = am.value("targets")
            let targets = readTargets(targetsValue)
            am.finish(known: ["rules", "targets"])
            if !targets.isEmpty && !enforcers.contains(.appArmor) {
                targetsValue?.warning(
                    "targets apply to the AppArmor enforcer only; this policy has \(enforcers), so these rules are not enforced",
                    hint: "add AppArmor to the enforcer, or remove `targets` to apply the rules to the whole container")
            }
            ep.attackProtectionRules.append(.init(rules: rules, targets: targets))
        }
        ep.vulMitigationRules = readRules(m.value("vulMitigationRules"), category: .vulMitigation)
        ep.appArmorRawRules = AppArmorRawReader.read(m.value("appArmorRawRules"))
        if !ep.appArmorRawRules.isEmpty && !enforcers.contains(.appArmor) {
            m.take("appArmorRawRules")?.warning("ignored: the policy does not use the AppArmor enforcer")
        }
        // vArmor 0.8's raw rules had no `qualifiers`: the policy-level settings gave their mode
        ep.auditViolations = m.value("auditViolations")?.bool() ?? false
        ep.allowViolations = m.value("allowViolations")?.bool() ?? false
        if let raw = m.value("bpfRawRules") {
            var legacy: Qualifiers = ep.allowViolations ? [] : .deny
            if ep.auditViolations { legacy.insert(.audit) }
            ep.bpfRawRules = BPFRawRulesReader(value: raw, legacyQualifiers: legacy, allowQualifier: false).read()
            if !enforcers.contains(.bpf) && !ep.bpfRawRules.isEmpty {
                raw.warning("ignored: the policy does not use the BPF enforcer")
            }
        }
        if let sv = m.value("syscallRawRules") {
            ep.syscallRawRules = SyscallReader.read(sv)
            if !enforcers.contains(.seccomp) && !ep.syscallRawRules.isEmpty {
                sv.warning("ignored: the policy does not use the Seccomp enforcer")
            }
        }
        if let np = m.value("networkProxyRawRules") {
            np.error(PolicyBodyReader.notSupported, hint: "remove networkProxyRawRules")
        }
        ep.privileged = m.value("privileged")?.bool() ?? false
        if !ep.bpfRawRules.mounts.isEmpty && !ep.privileged {
            m.take("bpfRawRules")?.warning(
                "bpfRawRules.mounts apply only with `privileged: true` (vArmor semantics: the RuntimeDefault base already denies every mount)",
                hint: "set `privileged: true` for a privileged container, or remove the mount rules")
        }
        m.finish(known: [
            "hardeningRules", "attackProtectionRules", "vulMitigationRules", "appArmorRawRules", "bpfRawRules",
            "syscallRawRules", "networkProxyRawRules", "privileged", "auditViolations", "allowViolations",
        ])
        return ep
    }

    private func readRules(_ v: YValue?, category: BuiltinRule.Category) -> [RuleReference] {
        guard let items = v?.sequence() else { return [] }
        var out: [RuleReference] = []
        for item in items {
            guard let name = item.nonEmptyString() else { continue }
            guard let rule = BuiltinRule.lookup(name) else {
                let names = BuiltinRule.catalogue.filter { $0.category == category }.map(\.id)
                let near = MappingReader.closest(BuiltinRule.canonical(name), in: names)
                item.error(
                    "unknown built-in rule \"\(name)\"",
                    hint: near.map { "did you mean \($0)?" }
                        ?? "see `bulwark policy rules` for the rules of \(category.rawValue)")
                continue
            }
            if rule.category != category {
                item.error(
                    "\"\(name)\" is one of the \(rule.category.rawValue), not \(category.rawValue)",
                    hint: "move it to \(rule.category.rawValue)")
                continue
            }
            if rule.effective.intersection(enforcers).isEmpty {
                item.warning(
                    "\"\(name)\" has no effect with enforcer \(enforcers) (it is implemented by \(rule.effective))",
                    hint: "add \(rule.effective) to the enforcer, or remove the rule")
            }
            out.append(
                RuleReference(
                    written: name, id: rule.id,
                    source: SourceRef(file: item.ctx.file, line: item.line, column: item.column)))
        }
        return out
    }

    private func readTargets(_ v: YValue?) -> [String] {
        guard let items = v?.sequence() else { return [] }
        var out: [String] = []
        for item in items {
            guard let t = item.nonEmptyString() else { continue }
            if !t.hasPrefix("/") {
                item.error(
                    "target \"\(t)\" is not an absolute path", hint: "write the executable's full path, e.g. /bin/bash")
                continue
            }
            out.append(t)
        }
        return out
    }
}

enum AppArmorRawReader {
    static func read(_ v: YValue?) -> [EnhanceProtect.AppArmorRaw] {
        var out: [EnhanceProtect.AppArmorRaw] = []
        for item in v?.sequence() ?? [] {
            guard let m = item.mapping() else { continue }
            let rules = m.required("rules", hint: "add `rules: |` with AppArmor rules")?.string()
            var targets: [String] = []
            for t in m.value("targets")?.sequence() ?? [] {
                guard let s = t.nonEmptyString() else { continue }
                if !s.hasPrefix("/") {
                    t.error(
                        "target \"\(s)\" is not an absolute path",
                        hint: "write the executable's full path, e.g. /bin/bash")
                } else {
                    targets.append(s)
                }
            }
            m.finish(known: ["rules", "targets"])
            guard let rules else { continue }
            if rules.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                m.take("rules")?.error(
                    "AppArmor raw rules are empty", hint: "write rules such as `deny /etc/shadow r,`")
                continue
            }
            if rules.filter({ $0 == "{" }).count != rules.filter({ $0 == "}" }).count {
                m.take("rules")?.error(
                    "AppArmor raw rules have unbalanced braces",
                    hint: "write plain rules; Bulwark places them inside the profile")
                continue
            }
            out.append(.init(rules: rules, targets: targets))
        }
        return out
    }
}

enum SyscallReader {
    static func read(_ v: YValue) -> [LinuxSyscall] {
        var out: [LinuxSyscall] = []
        for item in v.sequence() ?? [] {
            guard let m = item.mapping() else { continue }
            let namesValue = m.required("names", hint: "add `names: [syscall]`")
            var names: [String] = []
            for n in namesValue?.sequence() ?? [] {
                guard let s = n.nonEmptyString() else { continue }
                if !s.allSatisfy({ $0.isASCII && ($0.isLowercase || $0.isNumber || $0 == "_") }) {
                    n.error(
                        "\"\(s)\" is not a syscall name", hint: "write the name as in `man 2 syscalls`, e.g. `unshare`")
                    continue
                }
                // runc and crun skip a name libseccomp does not know: a typo would silently drop the rule
                if let real = SyscallNames.aliases[s] {
                    n.warning(
                        "libseccomp calls \"\(s)\" \"\(real)\"; compiled as \(real) (runc would skip \"\(s)\")",
                        hint: "write `\(real)`")
                    names.append(real)
                    continue
                }
                if !SyscallNames.known.contains(s) {
                    let near = MappingReader.closest(s, in: SyscallNames.known.sorted())
                    n.error(
                        "unknown syscall \"\(s)\" (no architecture has it)",
                        hint: near.map { "did you mean `\($0)`?" } ?? "write the name as in `man 2 syscalls`")
                    continue
                }
                names.append(s)
            }
            if let namesValue, names.isEmpty, !item.ctx.hasErrors {
                namesValue.error("`names` is empty", hint: "list at least one syscall")
            }
            var action = ""
            if let av = m.required("action", hint: "add `action: SCMP_ACT_ERRNO`"), let a = av.string() {
                if SeccompVocabulary.actions.contains(a) {
                    action = a
                } else {
                    av.error(
                        "unknown seccomp action \"\(a)\"",
                        hint: "use one of \(SeccompVocabulary.actions.sorted().joined(separator: ", "))")
                }
            }
            var errnoRet: UInt32?
            if let ev = m.value("errnoRet"), let e = ev.integer(in: 0...4095) { errnoRet = UInt32(e) }
            var args: [LinuxSeccompArg] = []
            for a in m.value("args")?.sequence() ?? [] {
                guard let am = a.mapping() else { continue }
                let index = am.required("index", hint: "add `index:` (0-5)")?.integer(in: 0...5)
                let value = am.required("value", hint: "add `value:`")?.unsigned64()
                let valueTwo = am.value("valueTwo")?.unsigned64()
                var op: String?
                if let ov = am.required("op", hint: "add `op: SCMP_CMP_EQ`"), let o = ov.string() {
                    if SeccompVocabulary.operators.contains(o) {
                        op = o
                    } else {
                        ov.error(
                            "unknown comparison \"\(o)\"",
                            hint: "use one of \(SeccompVocabulary.operators.sorted().joined(separator: ", "))")
                    }
                }
                am.finish(known: ["index", "value", "valueTwo", "op"])
                if let index, let value, let op {
                    args.append(LinuxSeccompArg(index: UInt32(index), value: value, valueTwo: valueTwo, op: op))
                }
            }
            m.finish(known: ["names", "action", "errnoRet", "args"])
            if !names.isEmpty && !action.isEmpty {
                out.append(
                    LinuxSyscall(names: names, action: action, errnoRet: errnoRet, args: args.isEmpty ? nil : args))
            }
        }
        return out
    }
}

struct DefenseInDepthReader {
    let value: YValue
    let enforcers: EnforcerSet
    let checkRequired: Bool

    func read() -> DefenseInDepth? {
        guard let m = value.mapping() else { return nil }
        var did = DefenseInDepth(allowViolations: false)
        let aaValue = m.value("appArmor")
        let scValue = m.value("seccomp")
        let bpfValue = m.value("bpf")
        if let np = m.value("networkProxy") {
            np.error(PolicyBodyReader.notSupported, hint: "remove defenseInDepth.networkProxy")
        }
        did.allowViolations = m.value("allowViolations")?.bool() ?? false
        m.finish(known: ["appArmor", "seccomp", "bpf", "networkProxy", "allowViolations"])
        if checkRequired && enforcers.contains(.appArmor) && aaValue == nil {
            value.error(
                "enforcer AppArmor in mode DefenseInDepth requires `defenseInDepth.appArmor`",
                hint: "add `appArmor: {profileType: Custom, customProfile: ...}`")
        }
        if checkRequired && enforcers.contains(.seccomp) && scValue == nil {
            value.error(
                "enforcer Seccomp in mode DefenseInDepth requires `defenseInDepth.seccomp`",
                hint: "add `seccomp: {profileType: Custom, customProfile: ...}`")
        }
        if checkRequired && enforcers.contains(.bpf) && bpfValue == nil {
            value.error(
                "enforcer BPF in mode DefenseInDepth requires `defenseInDepth.bpf`",
                hint: "add `bpf: {profileType: BehaviorModel}` (the allow-list from the behaviour model)")
        }
        if let bpfValue, let bm = bpfValue.mapping() {
            let rawValue = bm.value("bpfRawRules")
            let raw =
                rawValue.map { BPFRawRulesReader(value: $0, legacyQualifiers: .deny, allowQualifier: true).read() }
                ?? BPFRawRules()
            if let tv = bm.required("profileType", hint: "set `profileType: BehaviorModel` or `Custom`"),
                let t = tv.string()
            {
                switch t {
                case "BehaviorModel": did.bpf = .init(source: .behaviorModel, rawRules: raw)
                case "Custom":
                    // the allow-list is the raw rules' `allow` entries
                    if raw.hasAllowEntries {
                        did.bpf = .init(source: .custom(raw), rawRules: raw)
                    } else {
                        tv.error(
                            "profileType Custom for BPF takes its allow-list from bpfRawRules, and no rule there has `qualifiers: [allow]`: the container could do nothing",
                            hint: "add allow rules to bpfRawRules, or use profileType BehaviorModel")
                    }
                default: tv.error("unknown profileType \"\(t)\"", hint: "use BehaviorModel or Custom")
                }
            }
            if let c = bm.take("customProfile") {
                c.error(
                    "the BPF enforcer has no profile text: its allow-list is the behaviour model or the `allow` rules of bpfRawRules",
                    hint: "remove customProfile; write allow entries as bpfRawRules with `qualifiers: [allow]`")
            }
            bm.finish(known: ["profileType", "bpfRawRules"])
        }
        if let aaValue, let am = aaValue.mapping() {
            let type = readProfileType(am, value: aaValue)
            let rawRules = AppArmorRawReader.read(am.value("appArmorRawRules"))
            am.finish(known: ["profileType", "customProfile", "appArmorRawRules"])
            if case .custom(let custom) = type {
                if custom.range(of: #"(^|\s)profile\s+\S+"#, options: .regularExpression) == nil {
                    am.take("customProfile")?.error(
                        "customProfile has no `profile <name>` block",
                        hint: "write a full AppArmor profile: `profile NAME flags=(...) { ... }`")
                } else {
                    did.appArmor = .init(source: .custom(custom), rawRules: rawRules)
                }
            } else if type == .behaviorModel {
                did.appArmor = .init(source: .behaviorModel, rawRules: rawRules)
            }
        }
        if let scValue, let sm = scValue.mapping() {
            let type = readProfileType(sm, value: scValue)
            let raw = sm.value("syscallRawRules").map(SyscallReader.read) ?? []
            sm.finish(known: ["profileType", "customProfile", "syscallRawRules"])
            if type == .behaviorModel { did.seccomp = .init(source: .behaviorModel, syscallRawRules: raw) }
            if case .custom(let custom) = type {
                do {
                    let profile = try JSONDecoder().decode(LinuxSeccomp.self, from: Data(custom.utf8))
                    if let bad = profile.syscalls?.first(where: { !SeccompVocabulary.actions.contains($0.action) }) {
                        sm.take("customProfile")?.error(
                            "customProfile uses unknown action \"\(bad.action)\"", hint: "use SCMP_ACT_* actions")
                    } else {
                        did.seccomp = .init(source: .custom(profile), syscallRawRules: raw)
                    }
                } catch {
                    sm.take("customProfile")?.error(
                        "customProfile is not a valid OCI seccomp profile: \(Self.describe(error))",
                        hint: "write JSON with `defaultAction` and `syscalls` as in the OCI runtime spec")
                }
            }
        }
        return did
    }

    private func readProfileType(_ m: MappingReader, value: YValue) -> DefenseInDepth.Source<String>? {
        guard let tv = m.required("profileType", hint: "set `profileType: Custom` or `BehaviorModel`"),
            let t = tv.string()
        else {
            return nil
        }
        switch t {
        case "Custom":
            return m.required("customProfile", hint: "add `customProfile: |` with the profile text")?.nonEmptyString()
                .map { .custom($0) }
        case "BehaviorModel":
            if let c = m.take("customProfile") {
                c.warning(
                    "ignored with profileType BehaviorModel: the allow-list comes from the behaviour model",
                    hint: "remove customProfile, or use profileType Custom")
            }
            return .behaviorModel
        default:
            tv.error("unknown profileType \"\(t)\"", hint: "use Custom or BehaviorModel")
            return nil
        }
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, _): return "missing `\(key.stringValue)`"
        case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c):
            return "wrong type at \(c.codingPath.map(\.stringValue).joined(separator: "."))"
        case DecodingError.dataCorrupted: return "not valid JSON"
        default: return "\(error)"
        }
    }
}
