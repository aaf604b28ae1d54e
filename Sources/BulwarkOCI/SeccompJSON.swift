/// `linux.seccomp` to and from `JSONValue`, for the runtime wrapper's start path (no Codable).
/// Reading is strict about types (a wrong type is an error naming the field), as runc is.
extension LinuxSeccomp {
    public struct FieldError: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var expected: String
        public var description: String { "linux.seccomp.\(path): expected \(expected)" }
        public init(path: String, expected: String) {
            self.path = path
            self.expected = expected
        }
    }

    public init(json: JSONValue) throws(FieldError) {
        guard let o = json.object else { throw FieldError(path: "", expected: "an object") }
        guard let action = o["defaultAction"]?.string else {
            throw FieldError(path: "defaultAction", expected: "a string")
        }
        self.init(defaultAction: action)
        defaultErrnoRet = try Self.optional(o["defaultErrnoRet"], "defaultErrnoRet") {
            $0.unsigned.flatMap(UInt32.init(exactly:))
        }
        architectures = try Self.optional(o["architectures"], "architectures") { Self.strings($0) }
        flags = try Self.optional(o["flags"], "flags") { Self.strings($0) }
        listenerPath = try Self.optional(o["listenerPath"], "listenerPath") { $0.string }
        listenerMetadata = try Self.optional(o["listenerMetadata"], "listenerMetadata") { $0.string }
        if let list = o["syscalls"], list != .null {
            guard let entries = list.array else { throw FieldError(path: "syscalls", expected: "an array") }
            var out: [LinuxSyscall] = []
            for (i, e) in entries.enumerated() {
                let p = "syscalls[\(i)]"
                guard let s = e.object else { throw FieldError(path: p, expected: "an object") }
                guard let names = s["names"].flatMap(Self.strings) else {
                    throw FieldError(path: p + ".names", expected: "an array of strings")
                }
                guard let act = s["action"]?.string else { throw FieldError(path: p + ".action", expected: "a string") }
                var call = LinuxSyscall(names: names, action: act)
                call.errnoRet = try Self.optional(s["errnoRet"], p + ".errnoRet") {
                    $0.unsigned.flatMap(UInt32.init(exactly:))
                }
                if let args = s["args"], args != .null {
                    guard let list = args.array else { throw FieldError(path: p + ".args", expected: "an array") }
                    call.args = try list.enumerated().map { (j, a) throws(FieldError) -> LinuxSeccompArg in
                        let ap = p + ".args[\(j)]"
                        guard let ao = a.object, let index = ao["index"]?.unsigned.flatMap(UInt32.init(exactly:)),
                            let value = ao["value"]?.unsigned, let op = ao["op"]?.string
                        else { throw FieldError(path: ap, expected: "{index, value, op}") }
                        let two = try Self.optional(ao["valueTwo"], ap + ".valueTwo") { $0.unsigned }
                        return LinuxSeccompArg(index: index, value: value, valueTwo: two, op: op)
                    }
                }
                out.append(call)
            }
            syscalls = out
        }
    }

    static func strings(_ v: JSONValue) -> [String]? {
        guard let a = v.array else { return nil }
        var out: [String] = []
        for e in a {
            guard let s = e.string else { return nil }
            out.append(s)
        }
        return out
    }

    static func optional<T>(_ v: JSONValue?, _ path: String, _ read: (JSONValue) -> T?) throws(FieldError) -> T? {
        guard let v, v != .null else { return nil }
        guard let t = read(v) else { throw FieldError(path: path, expected: "a value of type \(T.self)") }
        return t
    }

    /// The same fields as the Codable encoding (absent optionals left out).
    public var json: JSONValue {
        var o = JSONObject()
        o["defaultAction"] = .string(defaultAction)
        if let defaultErrnoRet { o["defaultErrnoRet"] = .number(defaultErrnoRet) }
        if let architectures { o["architectures"] = .array(architectures.map(JSONValue.string)) }
        if let flags { o["flags"] = .array(flags.map(JSONValue.string)) }
        if let listenerPath { o["listenerPath"] = .string(listenerPath) }
        if let listenerMetadata { o["listenerMetadata"] = .string(listenerMetadata) }
        if let syscalls {
            o["syscalls"] = .array(
                syscalls.map { s in
                    var e = JSONObject()
                    e["names"] = .array(s.names.map(JSONValue.string))
                    e["action"] = .string(s.action)
                    if let r = s.errnoRet { e["errnoRet"] = .number(r) }
                    if let args = s.args {
                        e["args"] = .array(
                            args.map { a in
                                var ao = JSONObject()
                                ao["index"] = .number(a.index)
                                ao["value"] = .number(a.value)
                                if let two = a.valueTwo { ao["valueTwo"] = .number(two) }
                                ao["op"] = .string(a.op)
                                return .object(ao)
                            })
                    }
                    return .object(e)
                })
        }
        return .object(o)
    }
}
