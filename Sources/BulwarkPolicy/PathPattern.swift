import Foundation

/// vArmor's BPF path pattern syntax (`files[].pattern`, `processes[].pattern`,
/// `mounts[].sourcePattern`), with Bulwark's fixed semantics:
///
/// - no wildcard: the exact path (vArmor matches it as a prefix, so `/etc/passwd` also hit
///   `/etc/passwd-`; Bulwark does not);
/// - one `**`: the path starts with the text before it and ends with the text after it (the
///   two halves are checked independently, as vArmor, so `/tmp/**/33` matches `/tmp/33`);
/// - one `*` and no `/`: the same on the file name (basename) only.
public struct PathPattern: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Form: Sendable, Hashable, Codable {
        case exact(String)
        case greedy(prefix: String, suffix: String)
        case basename(prefix: String, suffix: String)
    }

    public var text: String
    public var form: Form

    public var description: String { text }

    /// Parses `text`; on failure returns the message and a fix hint.
    public static func parse(_ text: String, maxPart: Int) -> Result<PathPattern, PatternError> {
        if text.isEmpty {
            return .failure(PatternError(message: "pattern is empty", hint: "write a path such as /etc/shadow"))
        }
        let doubles = text.components(separatedBy: "**").count - 1
        let singles = text.replacingOccurrences(of: "**", with: "").filter { $0 == "*" }.count
        if text.contains("***") || doubles > 1 || singles > 1 || (doubles == 1 && singles == 1) {
            return .failure(
                PatternError(
                    message: "pattern \"\(text)\" has more than one wildcard",
                    hint: "BPF patterns take one `**` or one `*`; split it into several rules"))
        }
        let form: Form
        if doubles == 1 {
            let parts = text.components(separatedBy: "**")
            form = .greedy(prefix: parts[0], suffix: parts[1])
        } else if singles == 1 {
            if text.contains("/") {
                return .failure(
                    PatternError(
                        message: "pattern \"\(text)\" uses `*` with a `/`",
                        hint: "a single `*` matches file names only (e.g. `*.sh`); use `**` for paths"))
            }
            let parts = text.split(separator: "*", omittingEmptySubsequences: false).map(String.init)
            form = .basename(prefix: parts[0], suffix: parts[1])
        } else {
            form = .exact(text)
        }
        let pattern = PathPattern(text: text, form: form)
        for part in pattern.parts where part.utf8.count > maxPart {
            return .failure(
                PatternError(
                    message: "pattern part \"\(part.prefix(32))…\" is \(part.utf8.count) bytes, more than \(maxPart)",
                    hint: "shorten the fixed text before or after the wildcard"))
        }
        return .success(pattern)
    }

    /// The literal texts the matcher stores.
    public var parts: [String] {
        switch form {
        case .exact(let p): return [p]
        case .greedy(let p, let s), .basename(let p, let s): return [p, s]
        }
    }

    /// Reference semantics, used by tests as the oracle for the compiled tables.
    public func matches(_ path: String) -> Bool {
        switch form {
        case .exact(let p): return Array(path.utf8) == Array(p.utf8)
        case .greedy(let p, let s): return Self.bytes(path, start: p, end: s)
        case .basename(let p, let s):
            let name = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
            return Self.bytes(name, start: p, end: s)
        }
    }
}

extension PathPattern {
    fileprivate static func bytes(_ text: String, start: String, end: String) -> Bool {
        let t = Array(text.utf8)
        let a = Array(start.utf8)
        let b = Array(end.utf8)
        return t.count >= a.count && t.count >= b.count && Array(t.prefix(a.count)) == a
            && Array(t.suffix(b.count)) == b
    }
}

public struct PatternError: Error, Sendable, Equatable {
    public var message: String
    public var hint: String
}
