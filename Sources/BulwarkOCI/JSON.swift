/// A JSON document as the OCI start path needs it: parsed and written back without Foundation,
/// object members in their original order, numbers kept as their literal text — so a rewritten
/// `config.json` differs from the caller's only where Bulwark changed it, and unknown fields
/// survive untouched. (Foundation's JSONSerialization and Codable cost milliseconds per container
/// start here; this costs tens of microseconds for a podman spec.)
public indirect enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's literal text, as written (validated by the parser).
    case number(String)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }
    public var object: JSONObject? {
        if case .object(let o) = self { return o }
        return nil
    }
    public var array: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }
    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }
    public var isNumber: Bool {
        if case .number = self { return true }
        return false
    }
    /// A non-negative integer that fits `UInt64` (no fraction, no exponent).
    public var unsigned: UInt64? {
        if case .number(let n) = self { return UInt64(n) }
        return nil
    }
    /// An integer that fits `Int64`.
    public var integer: Int64? {
        if case .number(let n) = self { return Int64(n) }
        return nil
    }
    public static func number<T: BinaryInteger>(_ n: T) -> JSONValue { .number(String(n)) }
}

/// An object with its members in document order. Keys are unique: the parser refuses a document
/// with a duplicate member, because runc (Go's encoding/json) merges duplicates into one field and
/// crun (yajl) reads the first — a reader that picked either way would decide on a spec the
/// runtime does not run.
public struct JSONObject: Sendable, Equatable {
    public private(set) var members: [(key: String, value: JSONValue)] = []

    public init() {}
    public init(_ members: [(String, JSONValue)]) {
        self.members.reserveCapacity(members.count)
        for (k, v) in members { self[k] = v }
    }

    public subscript(key: String) -> JSONValue? {
        get { members.last { $0.key == key }?.value }
        set {
            if let i = members.firstIndex(where: { $0.key == key }) {
                if let newValue { members[i].value = newValue } else { members.remove(at: i) }
            } else if let newValue {
                members.append((key, newValue))
            }
        }
    }

    public var keys: [String] { members.map(\.key) }

    /// Members as parsed, known to be unique (checked in one pass by the parser: a document with
    /// many keys, such as user-supplied annotations, must not cost quadratic time on the container
    /// start path).
    init(unique: [(key: String, value: JSONValue)]) {
        members = unique
    }

    public static func == (a: JSONObject, b: JSONObject) -> Bool {
        a.members.count == b.members.count
            && zip(a.members, b.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    public var offset: Int
    public var message: String
    public var description: String { "\(message) at byte \(offset)" }
}

extension JSONValue {
    /// Parses one JSON document (RFC 8259; surrounding whitespace allowed). Nesting is limited
    /// to `maxDepth` so hostile input cannot exhaust the stack.
    public static func parse<C: Collection>(_ bytes: C, maxDepth: Int = 256) throws(JSONParseError) -> JSONValue
    where C.Element == UInt8 {
        var p = JSONParser(bytes: Array(bytes), maxDepth: maxDepth)
        p.skipWhitespace()
        let v = try p.value(depth: 0)
        p.skipWhitespace()
        guard p.i == p.b.count else { throw p.error("unexpected data after the document") }
        return v
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue { try parse(Array(text.utf8)) }

    /// Compact UTF-8 text; `/` and non-ASCII characters are written as they are.
    public func serialized() -> [UInt8] {
        var w = JSONWriter()
        w.value(self)
        return w.bytes
    }

    public var text: String { String(decoding: serialized(), as: UTF8.self) }

    /// Indented text (two spaces, one member or element per line, a final newline): for files that
    /// people read and edit.
    public func indented() -> String {
        var w = JSONWriter()
        w.indented(self, depth: 0)
        w.bytes.append(0x0A)
        return String(decoding: w.bytes, as: UTF8.self)
    }
}

/// Compact JSON written straight into bytes: what `JSONValue.serialized` uses, and what hot paths
/// (the event pipeline) use to write a document without building a `JSONValue` tree first.
public struct JSONWriter: Sendable {
    public var bytes: [UInt8]

    public init(capacity: Int = 1024) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Bytes written as they are (punctuation, keys known to need no escaping).
    @inlinable public mutating func raw(_ s: StaticString) {
        bytes.append(contentsOf: UnsafeBufferPointer(start: s.utf8Start, count: s.utf8CodeUnitCount))
    }

    public mutating func value(_ v: JSONValue) {
        switch v {
        case .null: raw("null")
        case .bool(let b): b ? raw("true") : raw("false")
        case .number(let n): bytes.append(contentsOf: n.utf8)
        case .string(let s): string(s)
        case .array(let a):
            bytes.append(UInt8(ascii: "["))
            for (i, v) in a.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                value(v)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let o): object(o)
        }
    }

    mutating func indented(_ v: JSONValue, depth: Int) {
        func newline(_ d: Int) {
            bytes.append(0x0A)
            bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: 2 * d))
        }
        switch v {
        case .array(let a) where !a.isEmpty:
            bytes.append(UInt8(ascii: "["))
            for (i, e) in a.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                indented(e, depth: depth + 1)
            }
            newline(depth)
            bytes.append(UInt8(ascii: "]"))
        case .object(let o) where !o.members.isEmpty:
            bytes.append(UInt8(ascii: "{"))
            for (i, m) in o.members.enumerated() {
                if i > 0 { bytes.append(UInt8(ascii: ",")) }
                newline(depth + 1)
                string(m.key)
                raw(": ")
                indented(m.value, depth: depth + 1)
            }
            newline(depth)
            bytes.append(UInt8(ascii: "}"))
        default: value(v)
        }
    }

    public mutating func object(_ o: JSONObject) {
        bytes.append(UInt8(ascii: "{"))
        for (i, m) in o.members.enumerated() {
            if i > 0 { bytes.append(UInt8(ascii: ",")) }
            string(m.key)
            bytes.append(UInt8(ascii: ":"))
            value(m.value)
        }
        bytes.append(UInt8(ascii: "}"))
    }

    /// `,"key":"value"` — a member after the first (the key needs no escaping).
    public mutating func member(_ key: StaticString, _ value: String) {
        raw(",\"")
        raw(key)
        raw("\":")
        string(value)
    }

    /// `,"key":123`
    public mutating func member(_ key: StaticString, _ value: UInt64) {
        raw(",\"")
        raw(key)
        raw("\":")
        number(value)
    }

    /// An unsigned integer in decimal, without making a String.
    public mutating func number(_ n: UInt64) {
        if n < 10 {
            bytes.append(UInt8(ascii: "0") + UInt8(n))
            return
        }
        var digits: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)  // 32 bytes ≥ 20 digits
        withUnsafeMutableBytes(of: &digits) { buf in
            var i = buf.count
            var v = n
            while v > 0 {
                i -= 1
                buf[i] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            }
            bytes.append(contentsOf: buf[i...])
        }
    }

    /// A quoted string: `"`, `\\` and control characters escaped, everything else as it is.
    public mutating func string(_ s: String) {
        bytes.append(UInt8(ascii: "\""))
        var s = s
        s.withUTF8 { u in
            var plain = 0  // start of the run of bytes that need no escaping
            for i in 0..<u.count {
                let c = u[i]
                guard c < 0x20 || c == UInt8(ascii: "\"") || c == UInt8(ascii: "\\") else { continue }
                if plain < i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[plain..<i])) }
                escape(c)
                plain = i + 1
            }
            if plain < u.count { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: u[plain...])) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func escape(_ c: UInt8) {
        bytes.append(UInt8(ascii: "\\"))
        switch c {
        case UInt8(ascii: "\""): bytes.append(UInt8(ascii: "\""))
        case UInt8(ascii: "\\"): bytes.append(UInt8(ascii: "\\"))
        case 0x0A: bytes.append(UInt8(ascii: "n"))
        case 0x0D: bytes.append(UInt8(ascii: "r"))
        case 0x09: bytes.append(UInt8(ascii: "t"))
        default:
            let hex: StaticString = "0123456789abcdef"
            raw("u00")
            bytes.append(hex.utf8Start[Int(c >> 4)])
            bytes.append(hex.utf8Start[Int(c & 15)])
        }
    }
}

struct JSONParser {
    let b: [UInt8]
    var i = 0
    let maxDepth: Int

    init(bytes: [UInt8], maxDepth: Int) {
        b = bytes
        self.maxDepth = maxDepth
    }

    func error(_ message: String) -> JSONParseError { JSONParseError(offset: i, message: message) }

    mutating func skipWhitespace() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0A || b[i] == 0x0D || b[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSONValue {
        guard depth < maxDepth else { throw error("nesting deeper than \(maxDepth)") }
        guard i < b.count else { throw error("unexpected end of input") }
        switch b[i] {
        case UInt8(ascii: "{"):
            i += 1
            var o: [(key: String, value: JSONValue)] = []
            var seen: Set<String> = []
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "}") {
                i += 1
                return .object(JSONObject())
            }
            while true {
                skipWhitespace()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw error("expected a string key") }
                let keyOffset = i
                let key = try string()
                guard seen.insert(key).inserted else {
                    throw JSONParseError(offset: keyOffset, message: "duplicate member \"\(key)\"")
                }
                skipWhitespace()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw error("expected ':'") }
                i += 1
                skipWhitespace()
                o.append((key, try value(depth: depth + 1)))
                skipWhitespace()
                guard i < b.count else { throw error("unexpected end of input in an object") }
                if b[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                guard b[i] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                i += 1
                return .object(JSONObject(unique: o))
            }
        case UInt8(ascii: "["):
            i += 1
            var a: [JSONValue] = []
            skipWhitespace()
            if i < b.count, b[i] == UInt8(ascii: "]") {
                i += 1
                return .array(a)
            }
            while true {
                skipWhitespace()
                a.append(try value(depth: depth + 1))
                skipWhitespace()
                guard i < b.count else { throw error("unexpected end of input in an array") }
                if b[i] == UInt8(ascii: ",") {
                    i += 1
                    continue
                }
                guard b[i] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                i += 1
                return .array(a)
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return try number()
        }
    }

    mutating func literal(_ word: StaticString, _ v: JSONValue) throws(JSONParseError) -> JSONValue {
        let w = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard i + w.count <= b.count, b[i..<(i + w.count)].elementsEqual(w) else { throw error("invalid literal") }
        i += w.count
        return v
    }

    mutating func number() throws(JSONParseError) -> JSONValue {
        let start = i
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.i
            while p.i < p.b.count, p.b[p.i] >= 0x30, p.b[p.i] <= 0x39 { p.i += 1 }
            return p.i - s
        }
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        let intStart = i
        let n = digits(&self)
        guard n > 0 else { throw error("invalid value") }
        if n > 1, b[intStart] == 0x30 { throw error("leading zero in a number") }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard digits(&self) > 0 else { throw error("digits expected after '.'") }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard digits(&self) > 0 else { throw error("digits expected in the exponent") }
        }
        return .number(String(decoding: b[start..<i], as: UTF8.self))
    }

    mutating func string() throws(JSONParseError) -> String {
        i += 1  // opening quote
        var out: [UInt8] = []
        while true {
            guard i < b.count else { throw error("unterminated string") }
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                break
            }
            if c < 0x20 { throw error("control character in a string") }
            if c != UInt8(ascii: "\\") {
                out.append(c)
                i += 1
                continue
            }
            i += 1
            guard i < b.count else { throw error("unterminated escape") }
            let e = b[i]
            i += 1
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var scalar = try hex4()
                if (0xD800..<0xDC00).contains(scalar) {
                    // a high surrogate must be followed by \u and a low surrogate
                    guard i + 1 < b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                        throw error("unpaired surrogate")
                    }
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                } else if (0xDC00..<0xE000).contains(scalar) {
                    throw error("unpaired surrogate")
                }
                guard let u = Unicode.Scalar(scalar) else { throw error("invalid \\u escape") }
                out += Array(String(Character(u)).utf8)
            default: throw error("invalid escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw error("invalid UTF-8 in a string") }
        return s
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw error("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x61...0x66: d = c - 0x61 + 10
            case 0x41...0x46: d = c - 0x41 + 10
            default: throw error("invalid \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }
}
