import BulwarkOCI

extension JSONValue {
    /// Block-style YAML for people (`bulwark model export`): every string double-quoted with JSON's
    /// escapes (valid YAML, and never read back as a number, a boolean or an alias such as `*`),
    /// plain keys where YAML reads them as the same string.
    public func yamlText() -> String {
        var out = ""
        YAMLEmitter.block(self, indent: 0, into: &out)
        return out
    }
}

enum YAMLEmitter {
    static func scalar(_ v: JSONValue) -> String {
        switch v {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let n): return n
        case .string(let s): return JSONValue.string(s).text
        case .array(let a) where a.isEmpty: return "[]"
        case .object(let o) where o.members.isEmpty: return "{}"
        default: return JSONValue.null.text  // not reached: containers are written as blocks
        }
    }

    static func isScalar(_ v: JSONValue) -> Bool {
        switch v {
        case .array(let a): return a.isEmpty
        case .object(let o): return o.members.isEmpty
        default: return true
        }
    }

    static func key(_ k: String) -> String {
        let reserved: Set<String> = ["true", "false", "null", "yes", "no", "on", "off", "y", "n", "~"]
        let u = Array(k.utf8)
        let plain =
            !u.isEmpty && !reserved.contains(k.lowercased())
            && (u[0] >= UInt8(ascii: "a") && u[0] <= UInt8(ascii: "z")
                || u[0] >= UInt8(ascii: "A") && u[0] <= UInt8(ascii: "Z"))
            && u.allSatisfy { c in
                (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z")) || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                    || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) || c == UInt8(ascii: "_")
                    || c == UInt8(ascii: "-")
                    || c == UInt8(ascii: ".") || c == UInt8(ascii: "/")
            }
        return plain ? k : JSONValue.string(k).text
    }

    /// Writes `v` (a container) as lines at `indent`; a scalar as one line.
    static func block(_ v: JSONValue, indent: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        switch v {
        case .object(let o) where !o.members.isEmpty:
            for m in o.members {
                if isScalar(m.value) {
                    out += "\(pad)\(key(m.key)): \(scalar(m.value))\n"
                } else {
                    out += "\(pad)\(key(m.key)):\n"
                    block(m.value, indent: indent + 2, into: &out)
                }
            }
        case .array(let a) where !a.isEmpty:
            for e in a {
                if isScalar(e) {
                    out += "\(pad)- \(scalar(e))\n"
                } else {
                    // the element's lines at indent + 2, the first one after "- "
                    var inner = ""
                    block(e, indent: indent + 2, into: &inner)
                    out += pad + "- " + inner.dropFirst(indent + 2)
                }
            }
        default:
            out += pad + scalar(v) + "\n"
        }
    }
}
