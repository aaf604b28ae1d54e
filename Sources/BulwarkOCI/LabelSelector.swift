/// Kubernetes `metav1.LabelSelector`.
public struct LabelSelector: Sendable, Equatable {
    public struct Requirement: Sendable, Equatable {
        public enum Operator: String, Sendable, Equatable, CaseIterable {
            case `in` = "In"
            case notIn = "NotIn"
            case exists = "Exists"
            case doesNotExist = "DoesNotExist"
        }
        public var key: String
        public var op: Operator
        public var values: [String]

        public init(key: String, op: Operator, values: [String]) {
            self.key = key
            self.op = op
            self.values = values
        }
    }

    public var matchLabels: [String: String]
    public var matchExpressions: [Requirement]

    public init(matchLabels: [String: String] = [:], matchExpressions: [Requirement] = []) {
        self.matchLabels = matchLabels
        self.matchExpressions = matchExpressions
    }

    /// Kubernetes semantics: every label and every expression must hold; an empty selector
    /// matches everything.
    public func matches(_ labels: [String: String]) -> Bool {
        for (k, v) in matchLabels where labels[k] != v { return false }
        for r in matchExpressions {
            let value = labels[r.key]
            switch r.op {
            case .in: if value == nil || !r.values.contains(value!) { return false }
            case .notIn: if let value, r.values.contains(value) { return false }
            case .exists: if value == nil { return false }
            case .doesNotExist: if value != nil { return false }
            }
        }
        return true
    }
}

extension LabelSelector {
    /// The selector as the API server's `labelSelector` query parameter reads it (`a=b,c in (d,e),!f`),
    /// in a canonical order; nil when it selects everything or cannot be said exactly in that syntax
    /// (a key or value the API server would not accept as a label, an empty `In`): the caller then
    /// asks for every object and matches here, never for fewer objects than the selector matches.
    public var apiQuery: String? {
        var terms: [String] = []
        for (k, v) in matchLabels.sorted(by: { $0.key < $1.key }) {
            guard Self.isLabelKey(k), Self.isLabelValue(v), !v.isEmpty else { return nil }
            terms.append("\(k)=\(v)")
        }
        for r in matchExpressions {
            guard Self.isLabelKey(r.key), r.values.allSatisfy({ Self.isLabelValue($0) && !$0.isEmpty }) else {
                return nil
            }
            let set = "(" + Set(r.values).sorted().joined(separator: ",") + ")"
            switch r.op {
            case .in:
                guard !r.values.isEmpty else { return nil }
                terms.append("\(r.key) in \(set)")
            case .notIn:
                guard !r.values.isEmpty else { return nil }
                terms.append("\(r.key) notin \(set)")
            case .exists: terms.append(r.key)
            case .doesNotExist: terms.append("!" + r.key)
            }
        }
        return terms.isEmpty ? nil : Set(terms).sorted().joined(separator: ",")
    }

    /// A label name: `[prefix/]name`, the name 1–63 alphanumerics, `-`, `_`, `.` starting and
    /// ending alphanumeric; the prefix a DNS subdomain of at most 253.
    public static func isLabelKey(_ key: String) -> Bool {
        let parts = key.split(separator: "/", omittingEmptySubsequences: false)
        switch parts.count {
        case 1: return isLabelValue(key) && !key.isEmpty
        case 2:
            let prefix = parts[0]
            guard !prefix.isEmpty, prefix.count <= 253,
                prefix.split(separator: ".", omittingEmptySubsequences: false).allSatisfy({ label in
                    !label.isEmpty && label.count <= 63 && label.first!.isAlnumASCII && label.last!.isAlnumASCII
                        && label.allSatisfy { $0.isAlnumASCII || $0 == "-" }
                })
            else { return false }
            return !parts[1].isEmpty && isLabelValue(String(parts[1]))
        default: return false
        }
    }

    /// A label value: empty, or 1–63 alphanumerics, `-`, `_`, `.` starting and ending alphanumeric.
    public static func isLabelValue(_ value: String) -> Bool {
        guard let first = value.first, let last = value.last else { return true }
        return value.count <= 63 && first.isAlnumASCII && last.isAlnumASCII
            && value.allSatisfy { $0.isAlnumASCII || $0 == "-" || $0 == "_" || $0 == "." }
    }
}

extension Character {
    fileprivate var isAlnumASCII: Bool { isASCII && (isLetter || isNumber) }
}
