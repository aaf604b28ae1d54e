import BulwarkOCI
import BulwarkPolicy

/// A model document that cannot be used: where in it, what is wrong, how to fix it.
public struct ModelError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The member, as a path (`data.dynamicResult.appArmor.files[3].path`).
    public var member: String
    public var message: String
    public var hint: String?

    public init(_ member: String, _ message: String, hint: String? = nil) {
        self.member = member
        self.message = message
        self.hint = hint
    }

    public var description: String {
        (member.isEmpty ? "" : "\(member): ") + message + (hint.map { " (\($0))" } ?? "")
    }
}

extension BehaviorModel {
    public static let apiVersion = "crd.varmor.org/v1beta1"
    public static let kind = "ArmorProfileModel"
    /// A model file is read whole; a large real model (a JVM with its jars) is a few hundred KiB.
    public static let maxBytes = 32 << 20

    /// A profile name as a model file name and an object name: a Kubernetes object name (lower-case
    /// letters, digits, `-` and `.`, at most 253 bytes, not `.`/`..`).
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 253 && name != "." && name != ".."
            && name.utf8.allSatisfy {
                ($0 >= UInt8(ascii: "a") && $0 <= UInt8(ascii: "z"))
                    || ($0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9"))
                    || $0 == UInt8(ascii: "-") || $0 == UInt8(ascii: ".")
            }
    }

    // MARK: Writing

    /// The `ArmorProfileModel` object, members in a fixed order and every set sorted: the same model
    /// is always the same bytes.
    public var document: JSONValue {
        var metadata = JSONObject()
        metadata["name"] = .string(name)
        if let namespace { metadata["namespace"] = .string(namespace) }
        if !annotations.isEmpty {
            metadata["annotations"] = .object(
                JSONObject(annotations.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
        }
        var dynamic = JSONObject()
        if let appArmor { dynamic["appArmor"] = .object(appArmor.document) }
        if let bpf { dynamic["bpf"] = .object(bpf.document) }
        if let seccomp { dynamic["seccomp"] = .object(JSONObject([("syscalls", strings(seccomp.syscalls))])) }
        var data = JSONObject()
        data["dynamicResult"] = .object(dynamic)
        data["staticResult"] = .object(JSONObject())
        if let profile { data["profile"] = .object(profile) }
        return .object(
            JSONObject([
                ("apiVersion", .string(Self.apiVersion)), ("kind", .string(Self.kind)),
                ("metadata", .object(metadata)), ("storageType", .string("CRDInternal")), ("data", .object(data)),
            ]))
    }

    // MARK: Reading

    /// Reads an `ArmorProfileModel` object (as `bulwark model export` writes it, or as vArmor's
    /// manager exports it with the data inline). Every member is checked: a model becomes an
    /// allow-list, so a member read wrongly would allow what nobody recorded.
    public init(document: JSONValue) throws(ModelError) {
        let top = try ModelReader(document, "")
        try top.only(["apiVersion", "kind", "metadata", "storageType", "data", "status"])
        guard try top.string("apiVersion") == Self.apiVersion else {
            throw ModelError("apiVersion", "must be \(Self.apiVersion)")
        }
        guard try top.string("kind") == Self.kind else { throw ModelError("kind", "must be \(Self.kind)") }
        let meta = try top.object("metadata")
        guard let name = try meta.optionalString("name"), Self.isValidName(name) else {
            throw ModelError(
                "metadata.name", "missing or not a profile name",
                hint: "the model's name is the name of the profile it models, e.g. varmor-default-demo")
        }
        self.init(name: name, namespace: try meta.optionalString("namespace"))
        if let a = try meta.optionalObject("annotations") {
            for key in a.keys { annotations[key] = try a.string(key) }
        }
        guard let data = try top.optionalObject("data") else {
            throw ModelError("data", "missing")
        }
        try data.only(["dynamicResult", "staticResult", "profile"])
        let storage = try top.optionalString("storageType")
        let dynamic = try data.optionalObject("dynamicResult")
        if storage == "LocalDisk" || storage == "PV/PVC", dynamic?.keys.isEmpty ?? true {
            throw ModelError(
                "storageType", "\(storage ?? "") — the data is not in this object",
                hint:
                    "vArmor keeps large models on its manager's disk (/var/log/varmor/apmdata/\(name)); export it with vArmor's model API, which returns the data inline"
            )
        }
        if let dynamic {
            try dynamic.only(["appArmor", "bpf", "seccomp"])
            if let a = try dynamic.optionalObject("appArmor") { appArmor = try AppArmorBehavior(a) }
            if let b = try dynamic.optionalObject("bpf") { bpf = try BPFBehavior(b) }
            if let s = try dynamic.optionalObject("seccomp") {
                try s.only(["syscalls"])
                seccomp = SeccompBehavior(syscalls: try s.names("syscalls"))
            }
        }
        profile = try data.optionalObject("profile")?.object
    }

    public init(bytes: [UInt8]) throws(ModelError) {
        let value: JSONValue
        do { value = try JSONValue.parse(bytes) } catch { throw ModelError("", "not JSON: \(error)") }
        try self.init(document: value)
    }
}

func strings(_ s: Set<String>) -> JSONValue { .array(s.sorted().map { .string($0) }) }

extension FileAccess {
    var document: JSONObject {
        var o = JSONObject([("path", .string(path))])
        if owner { o["owner"] = .bool(true) }
        o["permissions"] = strings(permissions)
        if !oldPath.isEmpty { o["oldPath"] = .string(oldPath) }
        return o
    }

    init(_ r: ModelReader) throws(ModelError) {
        try r.only(["path", "owner", "permissions", "oldPath"])
        self.init(
            path: try r.path("path"), owner: try r.optionalBool("owner") ?? false,
            permissions: try r.names("permissions"),
            oldPath: try r.optionalString("oldPath") ?? "")
    }
}

extension NetworkBehavior {
    var document: JSONObject {
        var o = JSONObject()
        if !sockets.isEmpty {
            o["sockets"] = .array(
                sockets.sorted().map { s in
                    var m = JSONObject()
                    if !s.domain.isEmpty { m["domain"] = .string(s.domain) }
                    if !s.type.isEmpty { m["type"] = .string(s.type) }
                    if !s.protocol.isEmpty { m["protocol"] = .string(s.protocol) }
                    return .object(m)
                })
        }
        if !egresses.isEmpty {
            o["egresses"] = .array(
                egresses.sorted { $0.key < $1.key }.map { ip, ports in
                    .object(JSONObject([("ip", .string(ip)), ("ports", .array(ports.sorted().map { .number($0) }))]))
                })
        }
        return o
    }

    init(_ r: ModelReader) throws(ModelError) {
        try r.only(["sockets", "egresses"])
        self.init()
        for s in try r.objects("sockets") {
            try s.only(["domain", "type", "protocol"])
            sockets.insert(
                SocketUse(
                    domain: try s.optionalString("domain") ?? "", type: try s.optionalString("type") ?? "",
                    protocol: try s.optionalString("protocol") ?? ""))
        }
        for e in try r.objects("egresses") {
            try e.only(["ip", "ports"])
            let ip = try e.string("ip")
            guard IPNetwork.host(ip) != nil else {
                throw ModelError(e.at("ip"), "\"\(ip)\" is not an IPv4 or IPv6 address")
            }
            egresses[ip, default: []].formUnion(try e.ports("ports"))
        }
    }
}

extension AppArmorBehavior {
    var document: JSONObject {
        var o = JSONObject()
        if !profiles.isEmpty { o["profiles"] = strings(profiles) }
        if !executions.isEmpty { o["executions"] = strings(executions) }
        if !files.isEmpty { o["files"] = .array(files.keys.sorted().map { .object(files[$0]!.document) }) }
        if !capabilities.isEmpty { o["capabilities"] = strings(capabilities) }
        if !network.isEmpty { o["networks"] = .object(network.document) }
        if !ptraces.isEmpty {
            o["ptraces"] = .array(
                ptraces.keys.sorted().map {
                    .object(JSONObject([("peer", .string($0)), ("permissions", strings(ptraces[$0]!))]))
                })
        }
        if !signals.isEmpty {
            o["signals"] = .array(
                signals.keys.sorted().map {
                    .object(
                        JSONObject([
                            ("peer", .string($0)), ("permissions", strings(signals[$0]!.permissions)),
                            ("signals", strings(signals[$0]!.signals)),
                        ]))
                })
        }
        if !unhandled.isEmpty { o["unhandled"] = strings(unhandled) }
        return o
    }

    init(_ r: ModelReader) throws(ModelError) {
        try r.only(["profiles", "executions", "files", "capabilities", "networks", "ptraces", "signals", "unhandled"])
        self.init()
        profiles = try r.names("profiles")
        executions = try r.paths("executions")
        for f in try r.objects("files") { addFile(try FileAccess(f)) }
        capabilities = try r.names("capabilities")
        if let n = try r.optionalObject("networks") { network = try NetworkBehavior(n) }
        for p in try r.objects("ptraces") {
            try p.only(["peer", "permissions", "external"])
            ptraces[try p.optionalString("peer") ?? "", default: []].formUnion(try p.names("permissions"))
        }
        for s in try r.objects("signals") {
            try s.only(["peer", "permissions", "signals"])
            let peer = try s.string("peer")
            let use = SignalUse(permissions: try s.names("permissions"), signals: try s.names("signals"))
            signals[peer] =
                signals[peer].map {
                    SignalUse(
                        permissions: $0.permissions.union(use.permissions), signals: $0.signals.union(use.signals))
                } ?? use
        }
        unhandled = try r.texts("unhandled")
    }
}

extension BPFBehavior {
    var document: JSONObject {
        var o = JSONObject()
        if !executions.isEmpty { o["executions"] = strings(executions) }
        if !files.isEmpty { o["files"] = .array(files.keys.sorted().map { .object(files[$0]!.document) }) }
        if !capabilities.isEmpty { o["capabilities"] = strings(capabilities) }
        if !network.isEmpty { o["network"] = .object(network.document) }
        if !ptraces.isEmpty {
            o["ptraces"] = .array(
                ptraces.keys.sorted { !$0 && $1 }.map { external in
                    var m = JSONObject([("permissions", strings(ptraces[external]!))])
                    if external { m["external"] = .bool(true) }
                    return .object(m)
                })
        }
        if !mounts.isEmpty {
            o["mounts"] = .array(
                mounts.keys.sorted().map { m in
                    var d = JSONObject([("path", .string(m.path))])
                    if !m.type.isEmpty { d["type"] = .string(m.type) }
                    if let flags = mounts[m], !flags.isEmpty { d["flags"] = strings(flags) }
                    return .object(d)
                })
        }
        return o
    }

    init(_ r: ModelReader) throws(ModelError) {
        try r.only(["executions", "files", "capabilities", "network", "ptraces", "mounts"])
        self.init()
        executions = try r.paths("executions")
        for f in try r.objects("files") { addFile(try FileAccess(f)) }
        capabilities = try r.names("capabilities")
        if let n = try r.optionalObject("network") { network = try NetworkBehavior(n) }
        for p in try r.objects("ptraces") {
            try p.only(["peer", "permissions", "external"])
            ptraces[try p.optionalBool("external") ?? false, default: []].formUnion(try p.names("permissions"))
        }
        for m in try r.objects("mounts") {
            try m.only(["path", "type", "flags"])
            let use = MountUse(path: try m.text("path"), type: try m.optionalString("type") ?? "")
            mounts[use, default: []].formUnion(try m.names("flags"))
        }
    }
}

/// Reads one JSON object of a model, naming each member by its path in errors.
struct ModelReader {
    let object: JSONObject
    let path: String

    init(_ value: JSONValue, _ path: String) throws(ModelError) {
        guard case .object(let o) = value else { throw ModelError(path, "must be an object") }
        object = o
        self.path = path
    }

    var keys: [String] { object.keys }

    func at(_ key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// Refuses members the format does not have: a misspelt member would otherwise drop what it holds.
    func only(_ known: Set<String>) throws(ModelError) {
        for k in object.keys where !known.contains(k) {
            throw ModelError(at(k), "unknown member", hint: "known here: \(known.sorted().joined(separator: ", "))")
        }
    }

    func optionalObject(_ key: String) throws(ModelError) -> ModelReader? {
        guard let v = object[key], v != .null else { return nil }
        return try ModelReader(v, at(key))
    }

    func object(_ key: String) throws(ModelError) -> ModelReader {
        guard let r = try optionalObject(key) else { throw ModelError(at(key), "missing") }
        return r
    }

    func objects(_ key: String) throws(ModelError) -> [ModelReader] {
        guard let v = object[key], v != .null else { return [] }
        guard case .array(let a) = v else { throw ModelError(at(key), "must be a list") }
        var out: [ModelReader] = []
        for (i, e) in a.enumerated() { out.append(try ModelReader(e, "\(at(key))[\(i)]")) }
        return out
    }

    func optionalString(_ key: String) throws(ModelError) -> String? {
        guard let v = object[key], v != .null else { return nil }
        guard case .string(let s) = v else { throw ModelError(at(key), "must be a string") }
        return try Self.checked(s, at(key))
    }

    func string(_ key: String) throws(ModelError) -> String {
        guard let s = try optionalString(key) else { throw ModelError(at(key), "missing") }
        return s
    }

    /// A non-empty string.
    func text(_ key: String) throws(ModelError) -> String {
        let s = try string(key)
        guard !s.isEmpty else { throw ModelError(at(key), "is empty") }
        return s
    }

    /// An absolute path.
    func path(_ key: String) throws(ModelError) -> String {
        let s = try text(key)
        guard s.hasPrefix("/") else { throw ModelError(at(key), "\"\(s)\" is not an absolute path") }
        return s
    }

    func optionalBool(_ key: String) throws(ModelError) -> Bool? {
        guard let v = object[key], v != .null else { return nil }
        guard case .bool(let b) = v else { throw ModelError(at(key), "must be true or false") }
        return b
    }

    private func list(_ key: String, _ each: (String, String) throws(ModelError) -> Void) throws(ModelError) {
        guard let v = object[key], v != .null else { return }
        guard case .array(let a) = v else { throw ModelError(at(key), "must be a list of strings") }
        for (i, e) in a.enumerated() {
            guard case .string(let s) = e else { throw ModelError("\(at(key))[\(i)]", "must be a string") }
            try each(try Self.checked(s, "\(at(key))[\(i)]"), "\(at(key))[\(i)]")
        }
    }

    /// Strings (any text without control characters).
    func texts(_ key: String) throws(ModelError) -> Set<String> {
        var out: Set<String> = []
        try list(key) { s, _ throws(ModelError) in out.insert(s) }
        return out
    }

    /// Names (permissions, capabilities, syscalls): a word without spaces.
    func names(_ key: String) throws(ModelError) -> Set<String> {
        var out: Set<String> = []
        try list(key) { s, at throws(ModelError) in
            guard !s.isEmpty, !s.contains(" ") else { throw ModelError(at, "\"\(s)\" is not a name") }
            out.insert(s)
        }
        return out
    }

    func paths(_ key: String) throws(ModelError) -> Set<String> {
        var out: Set<String> = []
        try list(key) { s, at throws(ModelError) in
            guard s.hasPrefix("/") else { throw ModelError(at, "\"\(s)\" is not an absolute path") }
            out.insert(s)
        }
        return out
    }

    func ports(_ key: String) throws(ModelError) -> Set<UInt16> {
        guard let v = object[key], v != .null else { return [] }
        guard case .array(let a) = v else { throw ModelError(at(key), "must be a list of ports") }
        var out: Set<UInt16> = []
        for (i, e) in a.enumerated() {
            guard let n = e.unsigned, n <= 65535 else {
                throw ModelError("\(at(key))[\(i)]", "must be a port (0–65535)")
            }
            out.insert(UInt16(n))
        }
        return out
    }

    /// Control characters never belong in a model: the strings become lines of AppArmor profiles.
    static func checked(_ s: String, _ at: String) throws(ModelError) -> String {
        if s.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) {
            throw ModelError(at, "contains a control character")
        }
        return s
    }
}

extension BehaviorModel {
    /// Every model in a file's text: JSON or YAML, one `ArmorProfileModel` per document, or a list
    /// (`kind: List` / `ArmorProfileModelList` with `items`, as `kubectl get -o yaml` writes).
    public static func models(in text: String, file: String) throws(ModelError) -> [BehaviorModel] {
        let documents: [JSONValue]
        if text.utf8.first(where: { $0 != 0x20 && $0 != 0x0A && $0 != 0x0D && $0 != 0x09 }) == UInt8(ascii: "{") {
            do { documents = [try JSONValue.parse(Array(text.utf8))] } catch {
                throw ModelError("", "\(file): not JSON: \(error)")
            }
        } else {
            do { documents = try YAMLDocuments.json(text, file: file, maxBytes: maxBytes) } catch {
                throw ModelError("", "\(error)")
            }
        }
        var out: [BehaviorModel] = []
        for (n, d) in documents.enumerated() {
            let place = documents.count > 1 ? "\(file) (document \(n + 1))" : file
            if case .object(let o) = d, let items = o["items"], o["kind"]?.string.map({ $0.hasSuffix("List") }) == true
            {
                guard case .array(let list) = items else { throw ModelError("items", "\(place): must be a list") }
                for (i, item) in list.enumerated() {
                    do { out.append(try BehaviorModel(document: item)) } catch {
                        throw ModelError("items[\(i)].\(error.member)", "\(place): \(error.message)", hint: error.hint)
                    }
                }
                continue
            }
            do { out.append(try BehaviorModel(document: d)) } catch {
                throw ModelError(error.member, "\(place): \(error.message)", hint: error.hint)
            }
        }
        if out.isEmpty { throw ModelError("", "\(file): no ArmorProfileModel in it") }
        return out
    }
}
