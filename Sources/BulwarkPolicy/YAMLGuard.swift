import CYaml
import Foundation

/// Refuses hostile YAML before it is composed into a tree, in time and memory linear in its size.
///
/// Yams composes recursively (deep nesting can exhaust the stack), shares an aliased node by
/// reference and hashes every mapping key in full to find duplicates — an alias bomb (a
/// "billion laughs" document) then costs exponential time before any reader sees the tree.
/// Policies need neither. The guard runs libyaml's own event parser over the text — the same
/// scanner Yams uses, so what it calls an alias is exactly what Yams would expand, whatever the
/// spelling (`"k":*a` in a flow mapping included) — and refuses any alias and any collection
/// nested deeper than `maxDepth`, with a precise location. libyaml's parser is iterative, so this
/// pass cannot blow up itself. Anchors alone (`&name`) are harmless and allowed.
public struct YAMLGuard: Sendable {
    public var maxBytes = 1 << 20
    public var maxDepth = 64

    public init() {}

    public func check(_ text: String, file: String) throws(DiagnosticsError) {
        func fail(_ line: Int, _ column: Int, _ message: String, _ hint: String) -> DiagnosticsError {
            DiagnosticsError([
                Diagnostic(.error, file: file, line: line, column: column, path: "", message: message, hint: hint)
            ])
        }
        let bytes = Array(text.utf8)
        if bytes.count > maxBytes {
            throw fail(
                1, 1, "file is \(bytes.count) bytes, more than the \(maxBytes)-byte limit",
                "split it into several policy files")
        }
        if bytes.contains(0) {
            throw fail(1, 1, "file contains a NUL byte", "policies are UTF-8 text; check that this is the right file")
        }
        if let problem = Self.scan(bytes, maxDepth: maxDepth) {
            throw fail(problem.line, problem.column, problem.message, problem.hint)
        }
    }

    private struct Problem {
        var line: Int
        var column: Int
        var message: String
        var hint: String
    }

    /// The first alias or over-deep collection, by libyaml's events. A syntax error ends the scan
    /// without a problem: the composer that follows reports it with its own message.
    private static func scan(_ bytes: [UInt8], maxDepth: Int) -> Problem? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else {
            return Problem(line: 1, column: 1, message: "cannot start the YAML parser", hint: "")
        }
        defer { yaml_parser_delete(&parser) }
        yaml_parser_set_encoding(&parser, YAML_UTF8_ENCODING)
        return bytes.withUnsafeBufferPointer { buffer -> Problem? in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            var depth = 0
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return nil }
                defer { yaml_event_delete(&event) }
                let line = Int(event.start_mark.line) + 1
                let column = Int(event.start_mark.column) + 1
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return nil
                case YAML_ALIAS_EVENT:
                    return Problem(
                        line: line, column: column, message: "YAML aliases (*name) are not accepted in policy files",
                        hint: "write the value out in full, or quote it if it is a pattern such as \"**ping\"")
                case YAML_SEQUENCE_START_EVENT, YAML_MAPPING_START_EVENT:
                    depth += 1
                    if depth > maxDepth {
                        return Problem(
                            line: line, column: column,
                            message: "collections are nested deeper than \(maxDepth) levels",
                            hint: "flatten the document; policies need only a few levels")
                    }
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    depth -= 1
                default:
                    break
                }
            }
        }
    }
}
