import Foundation

/// A problem found in a policy or config file: what, where (file:line:column and the field
/// path) and how to fix it. Errors make the document invalid; warnings and notices do not.
public struct Diagnostic: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable, Equatable, Comparable {
        case error, warning, notice

        public static func < (lhs: Severity, rhs: Severity) -> Bool {
            let order: [Severity] = [.error, .warning, .notice]
            return order.firstIndex(of: lhs)! < order.firstIndex(of: rhs)!
        }
    }

    public var severity: Severity
    public var file: String
    public var line: Int
    public var column: Int
    /// Field path such as `spec.policy.enhanceProtect.bpfRawRules.files[2].pattern`; empty for
    /// problems of the whole file.
    public var path: String
    public var message: String
    public var hint: String

    public init(
        _ severity: Severity, file: String, line: Int, column: Int, path: String, message: String, hint: String = ""
    ) {
        self.severity = severity
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        self.message = message
        self.hint = hint
    }

    /// `file:line:column: error: path: message` and, on the next line, `  fix: hint`.
    public var description: String {
        var text = "\(file):\(line):\(column): \(severity.rawValue): "
        if !path.isEmpty { text += "\(path): " }
        text += message
        if !hint.isEmpty { text += "\n  fix: \(hint)" }
        return text
    }
}

/// Thrown when a file holds at least one error; carries every diagnostic found.
public struct DiagnosticsError: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]

    public init(_ diagnostics: [Diagnostic]) { self.diagnostics = diagnostics }

    public var description: String { diagnostics.map(\.description).joined(separator: "\n") }
}
