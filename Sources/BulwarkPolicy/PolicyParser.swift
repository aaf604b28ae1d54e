import BulwarkOCI
import Foundation
import Yams

/// Result of reading one policy file: the policies it defines and every diagnostic (errors
/// make `policies` empty for that document; warnings and notices do not).
public struct PolicyFile: Sendable {
    public var file: String
    public var policies: [Policy]
    public var diagnostics: [Diagnostic]
    /// Edits that write vArmor 0.8 syntax in the current form (`bulwark policy migrate`).
    public var migrations: [TextInsertion] = []

    public init(file: String, policies: [Policy], diagnostics: [Diagnostic]) {
        self.file = file
        self.policies = policies
        self.diagnostics = diagnostics
    }

    public var errors: [Diagnostic] { diagnostics.filter { $0.severity == .error } }
    public var isValid: Bool { errors.isEmpty }
}

/// Parses and validates vArmor policy files (YAML, multi-document, or JSON).
public enum PolicyParser {
    public static let apiVersion = "crd.varmor.org/v1beta1"
    /// Longest fixed text of a BPF file/process pattern (one byte of the trie key is the NUL).
    public static let maxPathPart = 246
    /// Mount source patterns are stored inline, as vArmor's.
    public static let maxMountPatternPart = 63

    /// Parses `text` read from `file`. Documents of other kinds (Deployments in vArmor's
    /// examples) are skipped with a notice.
    public static func parse(_ text: String, file: String, options: ParseOptions = ParseOptions()) -> PolicyFile {
        let nodes: [Node]
        do {
            nodes = try YAMLLoader.documents(text, file: file)
        } catch {
            return PolicyFile(file: file, policies: [], diagnostics: error.diagnostics)
        }
        var out = PolicyFile(file: file, policies: [], diagnostics: [])
        if nodes.isEmpty {
            out.diagnostics.append(
                Diagnostic(
                    .error, file: file, line: 1, column: 1, path: "", message: "file holds no YAML document",
                    hint: "write a VarmorPolicy or VarmorClusterPolicy"))
        }
        for (i, node) in nodes.enumerated() {
            let ctx = ReaderContext(file: file)
            let root = YValue(node: node, path: "", ctx: ctx)
            let policy = PolicyDocumentReader(
                root: root, options: options, documentIndex: i, documentCount: nodes.count
            ).read()
            out.diagnostics += ctx.diagnostics
            out.migrations += ctx.migrations
            if let policy, !ctx.hasErrors { out.policies.append(policy) }
        }
        return out
    }
}

/// Settings that change how policies are read.
public struct ParseOptions: Sendable {
    /// Namespace vArmor is installed in; cluster profile names are `varmor-cluster-<it>-<name>`.
    public var clusterProfileNamespace = "varmor"
    public init(clusterProfileNamespace: String = "varmor") { self.clusterProfileNamespace = clusterProfileNamespace }
}

struct PolicyDocumentReader {
    let root: YValue
    let options: ParseOptions
    let documentIndex: Int
    let documentCount: Int

    var ctx: ReaderContext { root.ctx }

    func read() -> Policy? {
        guard let top = root.mapping() else { return nil }
        let kindValue = top.value("kind")
        let kindText = kindValue?.string()
        if let kindText, PolicyKind(rawValue: kindText) == nil {
            let known = ["VarmorPolicy", "VarmorClusterPolicy"]
            if let near = MappingReader.closest(kindText, in: known) {
                kindValue?.error("unknown kind \"\(kindText)\"", hint: "did you mean \(near)?")
            } else {
                ctx.report(
                    .notice, kindValue?.node, "kind",
                    "skipping document \(documentIndex + 1) of kind \(kindText): not a vArmor policy")
            }
            return nil
        }
        guard let kindText, let kind = PolicyKind(rawValue: kindText) else {
            ctx.report(
                .error, root.node, "kind", "required field is missing",
                hint: "set `kind: VarmorPolicy` or `kind: VarmorClusterPolicy`")
            return nil
        }
        if let api = top.required("apiVersion", hint: "set `apiVersion: \(PolicyParser.apiVersion)`")?.string(),
            api != PolicyParser.apiVersion
        {
            top.take("apiVersion")?.error(
                "unsupported apiVersion \"\(api)\"", hint: "set `apiVersion: \(PolicyParser.apiVersion)`")
        }
        var name = ""
        var namespace: String?
        var labels: [String: String] = [:]
        if let meta = top.required("metadata", hint: "add `metadata:` with `name:`")?.mapping() {
            if let n = meta.required("name", hint: "add `name: my-policy` under metadata")?.nonEmptyString() {
                name = n
                if !Self.isDNSSubdomain(n) {
                    meta.take("name")?.error(
                        "\"\(n)\" is not a valid name",
                        hint: "use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit")
                }
            }
            if let nsValue = meta.value("namespace"), let ns = nsValue.nonEmptyString() {
                if kind == .varmorClusterPolicy {
                    nsValue.error(
                        "a VarmorClusterPolicy is cluster-scoped and has no namespace",
                        hint: "remove metadata.namespace")
                } else if !Self.isDNSLabel(ns) {
                    nsValue.error("\"\(ns)\" is not a valid namespace", hint: "use lower-case letters, digits and '-'")
                } else {
                    namespace = ns
                }
            }
            if let l = meta.value("labels")?.stringMap() { labels = Dictionary(l, uniquingKeysWith: { _, b in b }) }
            _ = meta.value("annotations")?.stringMap()
            meta.ignore([
                "uid", "resourceVersion", "generation", "creationTimestamp", "deletionTimestamp", "finalizers",
                "ownerReferences", "managedFields", "selfLink", "generateName", "deletionGracePeriodSeconds",
            ])
            meta.finish(known: ["name", "namespace", "labels", "annotations"])
        }
        if kind == .varmorPolicy && namespace == nil { namespace = "default" }
        top.ignore(["status"])
        var spec: PolicySpec?
        if let specMap = top.required("spec", hint: "add `spec:` with `target:` and `policy:`")?.mapping() {
            spec = SpecReader(map: specMap, kind: kind).read()
        }
        top.finish(known: ["apiVersion", "kind", "metadata", "spec", "status"])
        guard let spec, !name.isEmpty else { return nil }
        let policy = Policy(
            kind: kind, name: name, namespace: namespace, labels: labels, spec: spec,
            source: SourceRef(file: ctx.file, line: root.line, column: root.column))
        let profile = ProfileNaming.profileName(for: policy, clusterNamespace: options.clusterProfileNamespace)
        if profile.count > 63 {
            top.take("metadata")?.error(
                "profile name \"\(profile)\" is \(profile.count) characters, more than 63",
                hint: "shorten metadata.name (the profile name is varmor-<namespace>-<name>)")
        }
        return policy
    }

    static func isDNSLabel(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 63 else { return false }
        let ok = s.allSatisfy { ($0.isASCII && ($0.isLowercase || $0.isNumber)) || $0 == "-" }
        return ok && s.first != "-" && s.last != "-"
    }

    static func isDNSSubdomain(_ s: String) -> Bool {
        guard !s.isEmpty, s.count <= 253 else { return false }
        return s.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { isDNSLabel(String($0)) }
    }
}

private struct SpecReader {
    let map: MappingReader
    let kind: PolicyKind

    func read() -> PolicySpec? {
        let target = map.required("target", hint: "add `target:` with `kind:` and `name:` or `selector:`").flatMap(
            readTarget)
        let body = map.required("policy", hint: "add `policy:` with `enforcer:` and `mode:`").flatMap {
            PolicyBodyReader(value: $0).read()
        }
        let update = map.value("updateExistingWorkloads")?.bool() ?? false
        map.finish(known: ["target", "policy", "updateExistingWorkloads"])
        guard let target, let body else { return nil }
        if target.kind == .container && update {
            map.take("updateExistingWorkloads")?.warning(
                "has no effect on standalone containers", hint: "restart the containers to apply a changed policy")
        }
        return PolicySpec(target: target, policy: body, updateExistingWorkloads: update)
    }

    func readTarget(_ value: YValue) -> Target? {
        guard let m = value.mapping() else { return nil }
        var kind: Target.Kind?
        let kinds = Target.Kind.allCases.map(\.rawValue)
        if let kv = m.required("kind", hint: "set `kind:` to one of \(kinds.joined(separator: ", "))"),
            let k = kv.string()
        {
            kind = Target.Kind(rawValue: k)
            if kind == nil {
                kv.error("unknown target kind \"\(k)\"", hint: "use one of \(kinds.joined(separator: ", "))")
            }
        }
        let nameValue = m.value("name")
        let name = nameValue?.nonEmptyString()
        let selectorValue = m.value("selector")
        let selector = selectorValue.flatMap(LabelSelectorReader.read)
        let containersValue = m.value("containers")
        let containers = containersValue?.stringList() ?? []
        m.finish(known: ["kind", "name", "selector", "containers"])
        guard let kind else { return nil }
        if kind == .container {
            if nameValue == nil && selectorValue == nil {
                value.error(
                    "a Container target needs `selector` (over OCI annotations) or `name` (container name)",
                    hint: "add `selector: {matchLabels: {app: web}}` and run the container with `--annotation app=web`")
            }
            if containersValue != nil {
                containersValue?.error(
                    "`containers` does not apply to kind Container", hint: "use `name` to select a container by name")
            }
        } else {
            if nameValue != nil && selectorValue != nil {
                value.error("`name` and `selector` are mutually exclusive", hint: "keep one of them")
            } else if nameValue == nil && selectorValue == nil {
                value.error(
                    "one of `name` or `selector` is required",
                    hint: "add `name: <workload>` or `selector: {matchLabels: ...}`")
            }
        }
        return Target(kind: kind, name: name, selector: selector, containers: containers)
    }
}

enum LabelSelectorReader {
    static func read(_ value: YValue) -> LabelSelector? {
        guard let m = value.mapping() else { return nil }
        var selector = LabelSelector()
        if let labels = m.value("matchLabels")?.stringMap() {
            selector.matchLabels = Dictionary(labels, uniquingKeysWith: { _, b in b })
        }
        for item in m.value("matchExpressions")?.sequence() ?? [] {
            guard let e = item.mapping() else { continue }
            let key = e.required("key", hint: "add `key: <label>`")?.nonEmptyString()
            let opValue = e.required("operator", hint: "add `operator: In`")
            let values = e.value("values")?.stringList() ?? []
            e.finish(known: ["key", "operator", "values"])
            guard let key, let opValue, let opText = opValue.string() else { continue }
            guard let op = LabelSelector.Requirement.Operator(rawValue: opText) else {
                opValue.error(
                    "unknown operator \"\(opText)\"",
                    hint:
                        "use one of \(LabelSelector.Requirement.Operator.allCases.map(\.rawValue).joined(separator: ", "))"
                )
                continue
            }
            if (op == .in || op == .notIn) && values.isEmpty {
                item.error("operator \(op.rawValue) needs a non-empty `values` list", hint: "add `values: [a, b]`")
            }
            if (op == .exists || op == .doesNotExist) && !values.isEmpty {
                item.error("operator \(op.rawValue) takes no `values`", hint: "remove `values`")
            }
            selector.matchExpressions.append(.init(key: key, op: op, values: values))
        }
        m.finish(known: ["matchLabels", "matchExpressions"])
        return selector
    }
}

extension PolicyParser {
    /// Parses a one-off `VarmorPolicy` whose `spec.policy` is `policyBody` (YAML lines indented by
    /// four spaces, as they stand under `policy:`). For the selftest, benchmarks and tests.
    public static func inline(_ policyBody: String, name: String = "inline", namespace: String = "bulwark")
        -> PolicyFile
    {
        let text = """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: \(name), namespace: \(namespace)}
            spec:
              target: {kind: Pod, name: \(name)}
              policy:
            \(policyBody)

            """
        return parse(text, file: "\(name).yaml")
    }
}
