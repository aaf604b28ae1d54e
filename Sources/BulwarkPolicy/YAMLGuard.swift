import Foundation

/// Refuses hostile YAML before it reaches the parser, in time and memory linear in its size.
///
/// libyaml and Yams are recursive in nesting depth and expand aliases by reference, so deep
/// nesting can exhaust the stack and an alias used as a mapping key is hashed in full (a
/// "billion laughs" document then takes exponential time). Policies never need either: this
/// scanner bounds the size, the flow and block nesting, and rejects aliases (`*name`) with a
/// precise location. Anchors alone (`&name`) are harmless and allowed.
public struct YAMLGuard: Sendable {
    public var maxBytes = 1 << 20
    public var maxFlowDepth = 64
    public var maxIndent = 512
    public var maxCompactIndicators = 64

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
        var scanner = Scanner(bytes: bytes, limits: self)
        if let problem = scanner.run() {
            throw fail(problem.line, problem.column, problem.message, problem.hint)
        }
    }

    private struct Problem {
        var line: Int
        var column: Int
        var message: String
        var hint: String
    }

    private struct Scanner {
        let bytes: [UInt8]
        let limits: YAMLGuard
        var index = 0
        var line = 1
        var lineStart = 0
        var flowDepth = 0
        var atNodeStart = true
        var inBlockScalar = false
        var blockParentIndent = 0
        var blockIndent: Int?
        var quote: UInt8?  // '"' or '\'' while inside a quoted scalar

        init(bytes: [UInt8], limits: YAMLGuard) {
            self.bytes = bytes
            self.limits = limits
        }

        mutating func run() -> Problem? {
            while index < bytes.count {
                if let problem = scanLine() { return problem }
            }
            return nil
        }

        private func isBreak(_ i: Int) -> Bool { i >= bytes.count || bytes[i] == 0x0A || bytes[i] == 0x0D }
        private func isBlank(_ i: Int) -> Bool { isBreak(i) || bytes[i] == 0x20 || bytes[i] == 0x09 }

        /// Scans one physical line starting at `index` and leaves `index` at the next line.
        private mutating func scanLine() -> Problem? {
            var end = index
            while end < bytes.count && bytes[end] != 0x0A { end += 1 }
            defer {
                index = end + 1
                line += 1
                lineStart = index
            }
            var indent = 0
            while index + indent < end && bytes[index + indent] == 0x20 { indent += 1 }
            let blankLine = (index + indent >= end) || bytes[index + indent] == 0x0D
            if inBlockScalar {
                if blankLine { return nil }
                if let block = blockIndent {
                    if indent >= block { return nil }
                    inBlockScalar = false
                } else if indent > blockParentIndent {
                    blockIndent = indent
                    return nil
                } else {
                    inBlockScalar = false
                }
            }
            if quote == nil {
                if indent > limits.maxIndent {
                    return Problem(
                        line: line, column: indent + 1, message: "nesting is deeper than \(limits.maxIndent) columns",
                        hint: "flatten the document; policies need only a few levels")
                }
                if flowDepth == 0 { atNodeStart = true }
            }
            var compact = 0
            var i = index + indent
            while i < end {
                let c = bytes[i]
                if let q = quote {
                    if q == UInt8(ascii: "\"") && c == UInt8(ascii: "\\") {
                        i += 2
                        continue
                    }
                    if c == q {
                        if q == UInt8(ascii: "'") && i + 1 < end && bytes[i + 1] == q {
                            i += 2
                            continue
                        }
                        quote = nil
                        atNodeStart = false
                    }
                    i += 1
                    continue
                }
                switch c {
                case UInt8(ascii: " "), UInt8(ascii: "\t"), 0x0D:
                    break
                case UInt8(ascii: "#") where i == index || isBlank(i - 1):
                    return nil  // comment to end of line
                case UInt8(ascii: "\""), UInt8(ascii: "'"):
                    if atNodeStart { quote = c } else { atNodeStart = false }
                case UInt8(ascii: "*") where atNodeStart:
                    return Problem(
                        line: line, column: i - lineStart + 1,
                        message: "YAML aliases (*name) are not accepted in policy files",
                        hint: "write the value out in full, or quote it if it is a pattern such as \"**ping\"")
                case UInt8(ascii: "&") where atNodeStart, UInt8(ascii: "!") where atNodeStart:
                    while i < end && !isBlank(i) { i += 1 }
                    continue
                case UInt8(ascii: "|") where atNodeStart && flowDepth == 0,
                    UInt8(ascii: ">") where atNodeStart && flowDepth == 0:
                    inBlockScalar = true
                    blockParentIndent = indent
                    blockIndent = nil
                    return nil
                case UInt8(ascii: "["), UInt8(ascii: "{"):
                    if atNodeStart || flowDepth > 0 {
                        flowDepth += 1
                        if flowDepth > limits.maxFlowDepth {
                            return Problem(
                                line: line, column: i - lineStart + 1,
                                message: "flow collections are nested deeper than \(limits.maxFlowDepth) levels",
                                hint: "flatten the document; policies need only a few levels")
                        }
                        atNodeStart = true
                    }
                case UInt8(ascii: "]"), UInt8(ascii: "}"):
                    if flowDepth > 0 {
                        flowDepth -= 1
                        atNodeStart = false
                    }
                case UInt8(ascii: ",") where flowDepth > 0:
                    atNodeStart = true
                case UInt8(ascii: "-") where atNodeStart && isBlank(i + 1),
                    UInt8(ascii: "?") where atNodeStart && isBlank(i + 1):
                    compact += 1
                    if compact > limits.maxCompactIndicators {
                        return Problem(
                            line: line, column: i - lineStart + 1,
                            message: "more than \(limits.maxCompactIndicators) nested collections on one line",
                            hint: "flatten the document; policies need only a few levels")
                    }
                case UInt8(ascii: ":")
                where isBlank(i + 1) || (flowDepth > 0 && i + 1 < end && ",]}".utf8.contains(bytes[i + 1])):
                    atNodeStart = true
                default:
                    atNodeStart = false
                }
                i += 1
            }
            return nil
        }
    }
}
