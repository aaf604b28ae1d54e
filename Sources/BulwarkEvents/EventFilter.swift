import BulwarkOCI

/// A node-socket subscriber's server-side filter: every non-empty list must contain the event's
/// value (lists are alternatives, fields are all required). Empty filter = every event.
public struct EventFilter: Sendable, Equatable {
    public var actions: Set<String> = []
    public var enforcers: Set<String> = []
    public var namespaces: Set<String> = []
    public var pods: Set<String> = []
    public var containers: Set<String> = []

    public init() {}

    public static let fields = ["action", "enforcer", "namespace", "pod", "container"]

    /// No condition: every event matches.
    public var isEmpty: Bool {
        actions.isEmpty && enforcers.isEmpty && namespaces.isEmpty && pods.isEmpty && containers.isEmpty
    }

    public func matches(_ e: ViolationEvent) -> Bool {
        // `AUDIT|ALLOWED` (seccomp log records) matches a filter on either action.
        if !actions.isEmpty && !actions.contains(e.action)
            && !e.action.split(separator: "|").contains(where: { actions.contains(String($0)) })
        {
            return false
        }
        if !enforcers.isEmpty && !enforcers.contains(e.enforcer.rawValue) { return false }
        if !namespaces.isEmpty && !namespaces.contains(e.container.podNamespace) { return false }
        if !pods.isEmpty && !pods.contains(e.container.podName) { return false }
        if !containers.isEmpty
            && !containers.contains(e.container.containerName) && !containers.contains(e.container.containerID)
        {
            return false
        }
        return true
    }

    /// The JSON form used on the socket: `{"action":["DENIED"],"namespace":["shop"]}`.
    public var json: JSONValue {
        var o = JSONObject()
        for (k, v) in [
            ("action", actions), ("enforcer", enforcers), ("namespace", namespaces), ("pod", pods),
            ("container", containers),
        ] where !v.isEmpty {
            o[k] = .array(v.sorted().map(JSONValue.string))
        }
        return .object(o)
    }

    public struct Invalid: Error, Equatable, CustomStringConvertible {
        public var description: String
    }

    /// Parses the JSON form; unknown fields and non-string values are errors (a typo must not
    /// silently widen a filter to every event).
    public init(json: JSONValue) throws(Invalid) {
        guard let o = json.object else { throw Invalid(description: "filter must be a JSON object") }
        for m in o.members {
            guard Self.fields.contains(m.key) else {
                throw Invalid(
                    description: "unknown filter field \"\(m.key)\" (known: \(Self.fields.joined(separator: ", ")))")
            }
            let values: [String]
            switch m.value {
            case .string(let s): values = [s]
            case .array(let a):
                var out: [String] = []
                for v in a {
                    guard let s = v.string else { throw Invalid(description: "filter.\(m.key) must list strings") }
                    out.append(s)
                }
                values = out
            default: throw Invalid(description: "filter.\(m.key) must be a string or a list of strings")
            }
            switch m.key {
            case "action": actions.formUnion(values.map { $0.uppercased() })
            case "enforcer": enforcers.formUnion(values.map(Self.enforcerName))
            case "namespace": namespaces.formUnion(values)
            case "pod": pods.formUnion(values)
            default: containers.formUnion(values)
            }
        }
    }

    static func enforcerName(_ s: String) -> String {
        switch s.lowercased() {
        case "apparmor": return "AppArmor"
        case "bpf": return "BPF"
        case "seccomp": return "Seccomp"
        default: return s
        }
    }
}
