import BulwarkOCI
import Foundation
import Yams

/// Walks a composed YAML tree with a field path, collecting diagnostics instead of stopping at
/// the first one. Every value read is marked as used; `MappingReader.finish()` reports the keys
/// nobody asked for as unknown fields. A node budget bounds the work on any input.
final class ReaderContext {
    let file: String
    var diagnostics: [Diagnostic] = []
    var budget: Int

    init(file: String, budget: Int = 200_000) {
        self.file = file
        self.budget = budget
    }

    /// Text insertions that turn a vArmor 0.8 document into the current form (`policy migrate`).
    var migrations: [TextInsertion] = []

    var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    /// `qualifiers: TEXT` as the first field of the mapping `node` (`policy migrate`).
    func addQualifiers(at node: Node, text: String) {
        guard let mark = node.mark else { return }
        migrations.append(TextInsertion(line: mark.line, column: mark.column, field: "qualifiers: \(text)"))
    }

    func report(_ severity: Diagnostic.Severity, _ node: Node?, _ path: String, _ message: String, hint: String = "") {
        let mark = node?.mark
        diagnostics.append(
            Diagnostic(
                severity, file: file, line: mark?.line ?? 1, column: mark?.column ?? 1, path: path, message: message,
                hint: hint))
    }
}

/// A field to add as the first of the mapping that starts at 1-based `line` and `column`
/// (characters), written in that mapping's style: `{field, …}` or a line of its own.
public struct TextInsertion: Sendable, Equatable {
    public var line: Int
    public var column: Int
    public var field: String

    /// `text` with every insertion applied (last first, so earlier positions stay valid). Lines and
    /// columns are counted as libyaml counts them (its marks are what the positions come from):
    /// a line ends at LF, CR LF, CR, NEL, LS or PS, a column is a Unicode scalar, a leading byte
    /// order mark is not counted. The inserted line break is the one that ends the line.
    public static func apply(_ insertions: [TextInsertion], to text: String) -> String {
        var s = Array(text.unicodeScalars)
        let bom = s.first == "\u{FEFF}" ? 1 : 0
        // (start, end of content, line break) of every line
        var lines: [(start: Int, end: Int, newline: [Unicode.Scalar])] = []
        var start = bom
        var i = bom
        while i < s.count {
            switch s[i] {
            case "\r" where i + 1 < s.count && s[i + 1] == "\n":
                lines.append((start, i, ["\r", "\n"]))
                i += 2
                start = i
            case "\n", "\r", "\u{85}", "\u{2028}", "\u{2029}":
                lines.append((start, i, [s[i]]))
                i += 1
                start = i
            default:
                i += 1
            }
        }
        lines.append((start, s.count, ["\n"]))
        for ins in insertions.sorted(by: { ($0.line, $0.column) > ($1.line, $1.column) }) {
            guard ins.line >= 1, ins.line <= lines.count else { continue }
            let line = lines[ins.line - 1]
            let column = min(max(ins.column - 1, 0), line.end - line.start)
            let at = line.start + column
            if at < line.end && s[at] == "{" {
                let rest = s[(at + 1)..<line.end].drop { $0 == " " }
                s.insert(contentsOf: (ins.field + (rest.first == "}" ? "" : ", ")).unicodeScalars, at: at + 1)
            } else {
                let indent = Array(repeating: Unicode.Scalar(" "), count: column)
                s.insert(contentsOf: Array(ins.field.unicodeScalars) + line.newline + indent, at: at)
            }
        }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: s)
        return String(out)
    }
}

/// A node together with its field path.
struct YValue {
    let node: Node
    let path: String
    let ctx: ReaderContext

    var line: Int { node.mark?.line ?? 1 }
    var column: Int { node.mark?.column ?? 1 }

    func error(_ message: String, hint: String = "") { ctx.report(.error, node, path, message, hint: hint) }
    func warning(_ message: String, hint: String = "") { ctx.report(.warning, node, path, message, hint: hint) }

    private func spend() -> Bool {
        ctx.budget -= 1
        if ctx.budget == 0 {
            error("document has too many values", hint: "split it into several policy files")
        }
        return ctx.budget > 0
    }

    var isNull: Bool {
        if case .scalar(let s) = node, s.style == .plain, ["", "~", "null", "Null", "NULL"].contains(s.string) {
            return true
        }
        return false
    }

    /// A string scalar. Numbers and booleans written plainly are accepted as their text.
    func string() -> String? {
        guard spend() else { return nil }
        guard case .scalar(let s) = node, !isNull else {
            error(
                "expected a string, found \(kindName)",
                hint: "write a single value, e.g. `\(path.split(separator: ".").last ?? ""): value`")
            return nil
        }
        if s.string.utf8.contains(0) {
            // a YAML escape ("\0", "\x00") cannot reach a C string, a path or an annotation
            error("contains a NUL character", hint: "remove the \\0 escape")
            return nil
        }
        return s.string
    }

    /// A non-empty string scalar.
    func nonEmptyString() -> String? {
        guard let s = string() else { return nil }
        if s.isEmpty {
            error("must not be empty", hint: "write a value or remove the field")
            return nil
        }
        return s
    }

    func bool() -> Bool? {
        guard spend() else { return nil }
        if case .scalar(let s) = node, s.style == .plain {
            switch s.string {
            case "true", "True", "TRUE": return true
            case "false", "False", "FALSE": return false
            default: break
            }
        }
        error("expected true or false, found \(describe)", hint: "write `true` or `false` without quotes")
        return nil
    }

    func integer(in range: ClosedRange<Int64>? = nil) -> Int64? {
        guard spend() else { return nil }
        if case .scalar(let s) = node, s.style == .plain, let value = Self.parseInteger(s.string) {
            if let range, !range.contains(value) {
                error(
                    "\(value) is out of range \(range.lowerBound)...\(range.upperBound)",
                    hint: "use a value from \(range.lowerBound) to \(range.upperBound)")
                return nil
            }
            return value
        }
        error("expected an integer, found \(describe)", hint: "write a number without quotes")
        return nil
    }

    static func parseInteger(_ text: String) -> Int64? {
        if text.hasPrefix("0x") || text.hasPrefix("0X") { return Int64(text.dropFirst(2), radix: 16) }
        if text.hasPrefix("0o") { return Int64(text.dropFirst(2), radix: 8) }
        return Int64(text)
    }

    func unsigned64() -> UInt64? {
        guard spend() else { return nil }
        if case .scalar(let s) = node, s.style == .plain {
            let t = s.string
            if t.hasPrefix("0x") || t.hasPrefix("0X"), let v = UInt64(t.dropFirst(2), radix: 16) { return v }
            if t.hasPrefix("0o"), let v = UInt64(t.dropFirst(2), radix: 8) { return v }
            if let v = UInt64(t) { return v }
        }
        error("expected an unsigned integer, found \(describe)", hint: "write a number without quotes")
        return nil
    }

    /// Elements of a sequence; `null` reads as empty.
    func sequence() -> [YValue]? {
        guard spend() else { return nil }
        if isNull { return [] }
        guard case .sequence(let seq) = node else {
            error("expected a list, found \(kindName)", hint: "write a YAML list (`- item` lines or `[a, b]`)")
            return nil
        }
        return seq.enumerated().map { YValue(node: $1, path: "\(path)[\($0)]", ctx: ctx) }
    }

    func stringList() -> [String]? {
        guard let items = sequence() else { return nil }
        var out: [String] = []
        for item in items {
            if let s = item.string() { out.append(s) }
        }
        return out
    }

    func mapping() -> MappingReader? {
        guard spend() else { return nil }
        if isNull { return MappingReader(self, pairs: []) }
        guard case .mapping(let map) = node else {
            error("expected a mapping, found \(kindName)", hint: "write `key: value` lines under this field")
            return nil
        }
        var pairs: [(String, Node, Node)] = []
        for (k, v) in map {
            guard case .scalar(let ks) = k else {
                ctx.report(.error, k, path, "mapping keys must be plain strings", hint: "use a field name as the key")
                continue
            }
            if ks.string.utf8.contains(0) {
                ctx.report(.error, k, path, "a key contains a NUL character", hint: "remove the \\0 escape")
                continue
            }
            pairs.append((ks.string, k, v))
        }
        return MappingReader(self, pairs: pairs)
    }

    /// Any value as JSON: plain scalars typed as YAML 1.2's core schema does (null, booleans,
    /// integers, floats), quoted ones as strings; mapping keys as strings. Bounded by the budget.
    func json() -> JSONValue? {
        guard spend() else { return nil }
        switch node {
        case .scalar(let s):
            if s.string.utf8.contains(0) {
                error("contains a NUL character", hint: "remove the \\0 escape")
                return nil
            }
            guard s.style == .plain else { return .string(s.string) }
            if isNull { return .null }
            switch s.string {
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            default: break
            }
            if (try? JSONValue.parse(s.string))?.isNumber == true { return .number(s.string) }
            return .string(s.string)
        case .sequence:
            return .array((sequence() ?? []).compactMap { $0.json() })
        case .mapping:
            guard let m = mapping() else { return nil }
            var members: [(String, JSONValue)] = []
            for key in m.keys {
                if let v = m.take(key)?.json() { members.append((key, v)) }
            }
            return .object(JSONObject(members))
        case .alias:
            return nil
        }
    }

    /// A map of strings to strings (labels, annotations, metadata).
    func stringMap() -> [(String, String)]? {
        guard let m = mapping() else { return nil }
        var out: [(String, String)] = []
        for key in m.keys {
            if let v = m.take(key)?.string() { out.append((key, v)) }
        }
        return out
    }

    var kindName: String {
        switch node {
        case .scalar: return isNull ? "null" : "a scalar (\(describe))"
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .alias: return "an alias"
        }
    }

    var describe: String {
        if case .scalar(let s) = node {
            let text = s.string.count > 40 ? String(s.string.prefix(40)) + "…" : s.string
            return "\"\(text)\""
        }
        return kindName
    }
}

/// Reads the fields of one mapping; reports unknown and duplicate fields.
final class MappingReader {
    let owner: YValue
    private var pairs: [(String, Node, Node)]
    private var used: Set<String> = []

    init(_ owner: YValue, pairs: [(String, Node, Node)]) {
        self.owner = owner
        self.pairs = pairs
    }

    var keys: [String] { pairs.map(\.0) }

    func has(_ key: String) -> Bool { pairs.contains { $0.0 == key } }

    private func childPath(_ key: String) -> String { owner.path.isEmpty ? key : "\(owner.path).\(key)" }

    func take(_ key: String) -> YValue? {
        used.insert(key)
        guard let pair = pairs.first(where: { $0.0 == key }) else { return nil }
        return YValue(node: pair.2, path: childPath(key), ctx: owner.ctx)
    }

    /// A present, non-null field.
    func value(_ key: String) -> YValue? {
        guard let v = take(key), !v.isNull else { return nil }
        return v
    }

    func required(_ key: String, hint: String) -> YValue? {
        if let v = value(key) { return v }
        owner.ctx.report(.error, owner.node, childPath(key), "required field is missing", hint: hint)
        return nil
    }

    /// Marks keys as known but ignored (e.g. Kubernetes-managed metadata).
    func ignore(_ keys: [String]) { used.formUnion(keys) }

    /// Reports every key not read. `known` lists the valid field names for the hint.
    func finish(known: [String]) {
        for (key, keyNode, _) in pairs where !used.contains(key) {
            let suggestion = Self.closest(key, in: known)
            let hint =
                suggestion.map { "did you mean `\($0)`? valid fields here: \(known.joined(separator: ", "))" }
                ?? "valid fields here: \(known.joined(separator: ", "))"
            owner.ctx.report(.error, keyNode, childPath(key), "unknown field", hint: hint)
        }
    }

    static func closest(_ word: String, in candidates: [String]) -> String? {
        let lower = word.lowercased()
        var best: (String, Int)?
        for c in candidates {
            let d = editDistance(lower, c.lowercased())
            if d <= max(2, c.count / 4), best == nil || d < best!.1 { best = (c, d) }
        }
        return best?.0
    }

    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a.utf8)
        let b = Array(b.utf8)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var prev = Array(0...b.count)
        var cur = prev
        for i in 1...a.count {
            cur[0] = i
            for j in 1...b.count {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            swap(&prev, &cur)
        }
        return prev[b.count]
    }
}

/// Parses text into YAML documents after the guard has accepted it.
enum YAMLLoader {
    static func documents(_ text: String, file: String, guard yamlGuard: YAMLGuard = YAMLGuard())
        throws(DiagnosticsError)
        -> [Node]
    {
        try yamlGuard.check(text, file: file)
        do {
            var out: [Node] = []
            // `.basic`: no implicit tag resolution (the readers type scalars themselves); the default
            // resolver compiles its regular expressions at first use, a measurable cost at every start.
            // a byte order mark (editors on Windows write one) is not part of the document
            let body = text.unicodeScalars.first == "\u{FEFF}" ? String(text.unicodeScalars.dropFirst()) : text
            let parser = try Parser(yaml: body, resolver: .basic)
            while let node = try parser.nextRoot() {
                out.append(node)
            }
            return out
        } catch let error as YamlError {
            throw DiagnosticsError([Self.diagnostic(error, file: file)])
        } catch {
            throw DiagnosticsError([
                Diagnostic(.error, file: file, line: 1, column: 1, path: "", message: "cannot parse YAML: \(error)")
            ])
        }
    }

    private static func diagnostic(_ error: YamlError, file: String) -> Diagnostic {
        var line = 1
        var column = 1
        var message = "invalid YAML"
        switch error {
        case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _):
            line = mark.line
            column = mark.column
            message = "invalid YAML: \(problem)" + (context.map { " \($0.text)" } ?? "")
        case .composer(let context, let problem, let mark, _):
            line = mark.line
            column = mark.column
            message = "invalid YAML: \(problem)" + (context.map { " \($0.text)" } ?? "")
        case .duplicatedKeysInMapping(let duplicates, let context):
            line = context.mark.line
            column = context.mark.column
            message = "duplicate field \(duplicates.joined(separator: ", "))"
        default:
            message = "invalid YAML: \(error)"
        }
        return Diagnostic(
            .error, file: file, line: line, column: column, path: "", message: message,
            hint: "check indentation and quoting at this position")
    }
}

/// YAML documents read as JSON (behaviour models, which people may keep as YAML): the same guard
/// as policies (no aliases, bounded nesting), plain scalars typed by YAML 1.2's core schema.
public enum YAMLDocuments {
    public static func json(_ text: String, file: String, maxBytes: Int = 1 << 20) throws(DiagnosticsError)
        -> [JSONValue]
    {
        var yamlGuard = YAMLGuard()
        yamlGuard.maxBytes = maxBytes
        let ctx = ReaderContext(file: file, budget: max(200_000, maxBytes / 8))
        let values = try YAMLLoader.documents(text, file: file, guard: yamlGuard).map {
            YValue(node: $0, path: "", ctx: ctx).json()
        }
        if ctx.hasErrors { throw DiagnosticsError(ctx.diagnostics) }
        return values.compactMap { $0 }
    }
}
