import BulwarkOCI
import Foundation
internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import NIOSSL
import Synchronization

/// A stand-in for the Kubernetes API server (none can be installed on the build machines) that
/// behaves as the real one does on the wire for what Bulwark uses: HTTPS with a bearer token (401
/// without it), RBAC refusals (403 with a `Status` body naming the verb and resource), lists in
/// pages (`limit`, `continue`; an expired token is `410 Gone`), watches as chunked streams of JSON
/// lines from a `resourceVersion` (`ADDED`/`MODIFIED`/`DELETED`, `BOOKMARK` when asked, an `ERROR`
/// event with a 410 `Status` when the version was compacted away, the stream ends after
/// `timeoutSeconds`), a namespace's collection, `fieldSelector` and `labelSelector` on lists and
/// watches (an object that stops matching a watch's selector is DELETED from it, one that starts
/// matching ADDED, as the watch cache does), one
/// cluster-wide `resourceVersion` counter as etcd's, GET/POST/PUT of one object, and Events.
public final class KubeTestServer: @unchecked Sendable {
    public struct TLSFiles: Sendable {
        public var caPEM: String
        public var certPEM: String
        public var keyPEM: String
    }

    struct Watcher {
        let id: Int
        let path: String
        /// (type, object, the object before the change)
        let send: @Sendable (String, JSONValue, JSONValue?) -> Void
    }

    struct Store {
        /// list path (`/api/v1/pods`) → key → (object, its resourceVersion)
        var objects: [String: [String: (JSONValue, Int)]] = [:]
        var log: [(rv: Int, path: String, type: String, object: JSONValue, previous: JSONValue?)] = []
        var revision = 100
        var compactedBelow = 0
        var watchers: [Watcher] = []
        var nextWatcher = 0
        var forbidden: Set<String> = []
        var events: [JSONValue] = []
        var requests: [String] = []
        /// Written just before the next update is processed (`raceNextUpdate`).
        var raceNextUpdate: JSONValue?
        var conflicts = 0
    }

    let store = Mutex(Store())
    public let token: String
    public let tls: TLSFiles
    let group: MultiThreadedEventLoopGroup
    var channel: (any Channel)?
    public private(set) var port = 0
    /// Bookmark interval for watches that allow them.
    public var bookmarkSeconds = 1.0

    public init(token: String = "test-token", tls: TLSFiles) throws {
        self.token = token
        self.tls = tls
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let cert = try NIOSSLCertificate.fromPEMBytes(Array(tls.certPEM.utf8))
        let key = try NIOSSLPrivateKey(bytes: Array(tls.keyPEM.utf8), format: .pem)
        let context = try NIOSSLContext(
            configuration: .makeServerConfiguration(
                certificateChain: cert.map { .certificate($0) }, privateKey: .privateKey(key)))
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: context))
                    try ch.pipeline.syncOperations.configureHTTPServerPipeline()
                    try ch.pipeline.syncOperations.addHandler(Handler(server: self))
                }
            }
        channel = try bootstrap.bind(host: "127.0.0.1", port: 0).wait()
        port = channel?.localAddress?.port ?? 0
    }

    public var server: String { "https://127.0.0.1:\(port)" }

    public func stop() {
        try? channel?.close().wait()
        try? group.syncShutdownGracefully()
    }

    /// A self-signed CA and a server certificate for 127.0.0.1, made with openssl(1).
    public static func makeTLS(in dir: String) throws -> TLSFiles {
        func run(_ args: [String]) throws {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = args
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            if p.terminationStatus != 0 { throw NSError(domain: "openssl \(args.first ?? "")", code: 1) }
        }
        try run([
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=kube-test-ca", "-keyout", dir + "/ca.key", "-out", dir + "/ca.crt",
        ])
        try run([
            "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=kube-apiserver",
            "-keyout", dir + "/server.key", "-out", dir + "/server.csr",
        ])
        try "subjectAltName=IP:127.0.0.1,DNS:localhost\n".write(
            toFile: dir + "/san.ext", atomically: true, encoding: .utf8)
        try run([
            "x509", "-req", "-in", dir + "/server.csr", "-CA", dir + "/ca.crt", "-CAkey", dir + "/ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", dir + "/san.ext", "-out", dir + "/server.crt",
        ])
        func read(_ f: String) throws -> String { try String(contentsOfFile: dir + "/" + f, encoding: .utf8) }
        return TLSFiles(caPEM: try read("ca.crt"), certPEM: try read("server.crt"), keyPEM: try read("server.key"))
    }

    // MARK: The cluster's state

    static func withVersion(_ o: JSONValue, _ rv: Int) -> JSONValue {
        guard case .object(var obj) = o, case .object(var meta)? = obj["metadata"] else { return o }
        meta["resourceVersion"] = .string(String(rv))
        obj["metadata"] = .object(meta)
        return .object(obj)
    }

    /// Writes a kubeconfig file that reaches this server (its CA, its token) and returns its path.
    public func writeKubeconfig(to path: String) throws -> String {
        try """
        apiVersion: v1
        kind: Config
        current-context: test
        clusters:
        - name: test
          cluster: {server: "\(server)", certificate-authority-data: \(Data(tls.caPEM.utf8).base64EncodedString())}
        contexts:
        - name: test
          context: {cluster: test, user: agent}
        users:
        - name: agent
          user: {token: \(token)}

        """.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    /// Creates or replaces an object (`path`: the resource's cluster-wide list path).
    public func apply(_ path: String, _ object: JSONValue) {
        change(path, object, delete: false)
    }

    public func delete(_ path: String, _ object: JSONValue) {
        change(path, object, delete: true)
    }

    private func change(_ path: String, _ object: JSONValue, delete: Bool) {
        let watchers = store.withLock { s -> [(Watcher, String, JSONValue, JSONValue?)] in
            s.revision += 1
            let k = Self.fullKey(object)
            let previous = s.objects[path]?[k]?.0
            let o = Self.withVersion(object, s.revision)
            let type = delete ? "DELETED" : (previous != nil ? "MODIFIED" : "ADDED")
            if delete { s.objects[path]?[k] = nil } else { s.objects[path, default: [:]][k] = (o, s.revision) }
            s.log.append((s.revision, path, type, o, previous))
            return s.watchers.filter { $0.path == path }.map { ($0, type, o, previous) }
        }
        for (w, type, o, previous) in watchers { w.send(type, o, previous) }
    }

    static func fullKey(_ o: JSONValue) -> String {
        let m = o.object?["metadata"]?.object
        let name = m?["name"]?.string ?? ""
        return (m?["namespace"]?.string).map { "\($0)/\(name)" } ?? name
    }

    /// Forgets the change log below the current version: older watches get 410. `advancing`: the
    /// revision moves first as writes to other resources move etcd's.
    public func compact(advancing: Int = 0) {
        store.withLock {
            $0.revision += advancing
            $0.compactedBelow = $0.revision
            $0.log = []
        }
    }

    /// RBAC: refuse every request on this resource (`pods`, `varmorpolicies`).
    public func forbid(_ plural: String) { store.withLock { _ = $0.forbidden.insert(plural) } }

    /// The next update (PUT) finds `object` written by another client after it was read: an update
    /// conditional on the version read is refused with 409 Conflict.
    public func raceNextUpdate(with object: JSONValue) { store.withLock { $0.raceNextUpdate = object } }
    /// Updates refused with 409 Conflict so far.
    public var conflicts: Int { store.withLock { $0.conflicts } }
    /// One object (`path`: the resource's cluster-wide list path; `key`: `namespace/name`).
    public func object(_ path: String, _ key: String) -> JSONValue? { store.withLock { $0.objects[path]?[key]?.0 } }

    public var events: [JSONValue] { store.withLock { $0.events } }
    public var requests: [String] { store.withLock { $0.requests } }
    public var watchers: Int { store.withLock { $0.watchers.count } }

    // MARK: HTTP

    final class Handler: ChannelInboundHandler, @unchecked Sendable {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let server: KubeTestServer
        var head: HTTPRequestHead?
        var body: [UInt8] = []
        var watcherID: Int?

        init(server: KubeTestServer) { self.server = server }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = []
            case .body(var b):
                body += b.readBytes(length: b.readableBytes) ?? []
            case .end:
                if let h = head { server.handle(h, body: body, context: context, handler: self) }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            if let id = watcherID { server.store.withLock { $0.watchers.removeAll { $0.id == id } } }
        }
    }

    static func status(_ code: Int, _ reason: String, _ message: String) -> JSONValue {
        .object(
            JSONObject([
                ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object(JSONObject())),
                ("status", .string("Failure")), ("message", .string(message)), ("reason", .string(reason)),
                ("code", .number(code)),
            ]))
    }

    func respond(_ context: ChannelHandlerContext, _ code: Int, _ body: JSONValue) {
        let bytes = body.serialized()
        var h = HTTPHeaders()
        h.add(name: "Content-Type", value: "application/json")
        h.add(name: "Content-Length", value: String(bytes.count))
        context.write(
            NIOAny(HTTPServerResponsePart.head(.init(version: .http1_1, status: .init(statusCode: code), headers: h))),
            promise: nil)
        context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: bytes)))), promise: nil)
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
    }

    func handle(_ head: HTTPRequestHead, body: [UInt8], context: ChannelHandlerContext, handler: Handler) {
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        let path = String(parts.first ?? "")
        var query: [String: String] = [:]
        for kv in (parts.count > 1 ? parts[1] : "").split(separator: "&") {
            let p = kv.split(separator: "=", maxSplits: 1)
            query[String(p[0])] = p.count > 1 ? String(p[1]).removingPercentEncoding ?? String(p[1]) : ""
        }
        store.withLock { $0.requests.append("\(head.method.rawValue) \(head.uri)") }
        guard head.headers["Authorization"].first == "Bearer \(token)" else {
            return respond(context, 401, Self.status(401, "Unauthorized", "Unauthorized"))
        }
        let object = Self.objectPath(path)
        let plural = object?.plural ?? String(path.split(separator: "/").last ?? "")
        let verb =
            switch head.method {
            case .POST: "create"
            case .PUT: "update"
            case .GET where object?.name != nil: "get"
            default: query["watch"] == "1" ? "watch" : "list"
            }
        if store.withLock({ $0.forbidden.contains(plural) }) {
            return respond(
                context, 403,
                Self.status(
                    403, "Forbidden",
                    "\(plural) is forbidden: User \"system:serviceaccount:bulwark:bulwark\" cannot \(verb) resource \"\(plural)\" at the cluster scope"
                ))
        }
        if head.method == .POST && plural == "events" {
            guard let o = try? JSONValue.parse(body) else {
                return respond(context, 400, Self.status(400, "BadRequest", "not JSON"))
            }
            store.withLock { $0.events.append(o) }
            return respond(context, 201, o)
        }
        if let object, verb == "get" || verb == "create" || verb == "update" {
            return respond(context, object: object, verb: verb, body: body)
        }
        // a namespace's collection: the cluster-wide one, filtered
        let (collection, namespace) = object.map { ($0.list, $0.namespace) } ?? (path, nil)
        if verb == "watch" { return watch(collection, namespace: namespace, query, context, handler) }
        list(collection, namespace: namespace, query, context)
    }

    /// `/apis/G/V/namespaces/NS/PLURAL[/NAME]` → the cluster-wide list path the store keys by,
    /// the namespace, the resource and the name.
    static func objectPath(_ path: String) -> (list: String, namespace: String, plural: String, name: String?)? {
        let p = path.split(separator: "/").map(String.init)
        guard let i = p.firstIndex(of: "namespaces"), p.count == i + 3 || p.count == i + 4 else { return nil }
        let list = "/" + (p[..<i] + [p[i + 2]]).joined(separator: "/")
        return (list, p[i + 1], p[i + 2], p.count == i + 4 ? p[i + 3] : nil)
    }

    /// GET, POST (create) and PUT (update) of one namespaced object, as the API server answers
    /// them: 404 NotFound, 409 AlreadyExists, and 409 Conflict for an update whose
    /// `metadata.resourceVersion` is not the object's current one.
    func respond(
        _ context: ChannelHandlerContext, object p: (list: String, namespace: String, plural: String, name: String?),
        verb: String, body: [UInt8]
    ) {
        let group = p.list.hasPrefix("/apis/") ? "." + p.list.split(separator: "/")[1] : ""
        let what = "\(p.plural)\(group)"
        if verb == "get" {
            let key = "\(p.namespace)/\(p.name ?? "")"
            guard let (o, _) = store.withLock({ $0.objects[p.list]?[key] }) else {
                return respond(context, 404, Self.status(404, "NotFound", "\(what) \"\(p.name ?? "")\" not found"))
            }
            return respond(context, 200, o)
        }
        guard case .object(var o)? = try? JSONValue.parse(body), case .object(var meta)? = o["metadata"],
            let name = meta["name"]?.string
        else {
            return respond(context, 400, Self.status(400, "BadRequest", "not an object with metadata.name"))
        }
        meta["namespace"] = .string(p.namespace)
        let key = "\(p.namespace)/\(name)"
        if verb == "update" {
            guard name == p.name else {
                return respond(context, 400, Self.status(400, "BadRequest", "the name of the object does not match"))
            }
            // another writer first, as if it had written between this client's read and write
            if let race = store.withLock({ s -> JSONValue? in
                defer { s.raceNextUpdate = nil }
                return s.raceNextUpdate
            }) {
                apply(p.list, race)
            }
        }
        let current = store.withLock { $0.objects[p.list]?[key] }
        if verb == "create" {
            if current != nil {
                return respond(context, 409, Self.status(409, "AlreadyExists", "\(what) \"\(name)\" already exists"))
            }
            meta["uid"] = .string("uid-\(name)")
            meta["resourceVersion"] = nil
        } else {
            guard let current else {
                return respond(context, 404, Self.status(404, "NotFound", "\(what) \"\(name)\" not found"))
            }
            if let rv = meta["resourceVersion"]?.string, rv != String(current.1) {
                store.withLock { $0.conflicts += 1 }
                return respond(
                    context, 409,
                    Self.status(
                        409, "Conflict",
                        "Operation cannot be fulfilled on \(what) \"\(name)\": the object has been modified; please apply your changes to the latest version and try again"
                    ))
            }
            meta["uid"] = current.0.object?["metadata"]?.object?["uid"]
        }
        o["metadata"] = .object(meta)
        apply(p.list, .object(o))
        let (stored, _) = store.withLock { $0.objects[p.list]![key]! }
        respond(context, verb == "create" ? 201 : 200, stored)
    }

    /// What a list or watch selects: its namespace, a `fieldSelector` of `a.b=v` terms
    /// (`spec.nodeName=node-a`, `metadata.name=x`) and a `labelSelector` in the API server's
    /// syntax (`a=b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, comma-separated).
    struct Selection {
        var namespace: String?
        var fields: [(path: [String], value: String)] = []
        var labels: [(key: String, op: String, values: Set<String>)] = []

        /// nil: the selector does not parse (the API server answers 400).
        init?(namespace: String?, _ query: [String: String]) {
            self.namespace = namespace
            for term in (query["fieldSelector"] ?? "").split(separator: ",") {
                let kv = term.split(separator: "=", maxSplits: 1).map(String.init)
                guard kv.count == 2 else { return nil }
                fields.append((kv[0].split(separator: ".").map(String.init), kv[1]))
            }
            var terms: [String] = []
            var depth = 0
            var term = ""
            for c in query["labelSelector"] ?? "" {
                if c == "(" { depth += 1 }
                if c == ")" { depth -= 1 }
                if c == "," && depth == 0 {
                    terms.append(term)
                    term = ""
                } else {
                    term.append(c)
                }
            }
            if !term.isEmpty { terms.append(term) }
            for t in terms.map({ $0.trimmingCharacters(in: .whitespaces) }) {
                func set(_ rest: Substring) -> Set<String>? {
                    let r = rest.trimmingCharacters(in: .whitespaces)
                    guard r.hasPrefix("("), r.hasSuffix(")") else { return nil }
                    return Set(
                        r.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                }
                let words = t.split(separator: " ", maxSplits: 2)
                if words.count == 3, words[1] == "in" || words[1] == "notin", let values = set(words[2]) {
                    labels.append((String(words[0]), String(words[1]), values))
                } else if t.hasPrefix("!"), !t.contains("=") {
                    labels.append((String(t.dropFirst()), "!", []))
                } else if let r = t.range(of: "!=") {
                    labels.append((String(t[..<r.lowerBound]), "!=", [String(t[r.upperBound...])]))
                } else if let r = t.range(of: "==") ?? t.range(of: "=") {
                    labels.append((String(t[..<r.lowerBound]), "=", [String(t[r.upperBound...])]))
                } else if !t.contains(" "), !t.isEmpty {
                    labels.append((t, "exists", []))
                } else {
                    return nil
                }
            }
        }

        func matches(_ o: JSONValue?) -> Bool {
            guard let o else { return false }
            let meta = o.object?["metadata"]?.object
            if let namespace, meta?["namespace"]?.string != namespace { return false }
            for (path, value) in fields {
                var v: JSONValue? = o
                for part in path { v = v?.object?[part] }
                if (v?.string ?? "") != value { return false }
            }
            let have = meta?["labels"]?.object
            for (key, op, values) in labels {
                let v = have?[key]?.string
                switch op {
                case "=", "in": if v == nil || !values.contains(v!) { return false }
                case "!=", "notin": if let v, values.contains(v) { return false }
                case "exists": if v == nil { return false }
                default: if v != nil { return false }
                }
            }
            return true
        }

        /// A change as a watch with this selection sees it: an object that starts matching is
        /// ADDED, one that stops matching DELETED (the object as it was, as the API server's watch
        /// cache sends it), one that matches neither before nor after is not sent.
        func event(_ type: String, _ o: JSONValue, previous: JSONValue?) -> (String, JSONValue)? {
            let now = type != "DELETED" && matches(o)
            let before = type == "DELETED" ? matches(o) : matches(previous)
            switch (before, now) {
            case (false, true): return ("ADDED", o)
            case (true, true): return ("MODIFIED", o)
            case (true, false):
                guard type != "DELETED", let previous else { return ("DELETED", o) }
                return ("DELETED", KubeTestServer.withVersion(previous, Int(KubeTestServer.version(o)) ?? 0))
            case (false, false): return nil
            }
        }
    }

    static func version(_ o: JSONValue) -> String {
        o.object?["metadata"]?.object?["resourceVersion"]?.string ?? ""
    }

    func list(_ path: String, namespace: String?, _ query: [String: String], _ context: ChannelHandlerContext) {
        let limit = Int(query["limit"] ?? "") ?? Int.max
        guard let selection = Selection(namespace: namespace, query) else {
            return respond(context, 400, Self.status(400, "BadRequest", "unable to parse requirement"))
        }
        let (items, rv, compacted) = store.withLock { s in
            (
                (s.objects[path] ?? [:]).filter { selection.matches($0.value.0) }
                    .sorted { $0.key < $1.key }, s.revision, s.compactedBelow
            )
        }
        var start = 0
        var listRV = rv
        if let token = query["continue"], !token.isEmpty {
            // the token: "RV:OFFSET"; a token from before a compaction has expired
            let p = token.split(separator: ":")
            guard p.count == 2, let trv = Int(p[0]), let off = Int(p[1]), trv >= compacted else {
                return respond(
                    context, 410,
                    Self.status(
                        410, "Expired",
                        "The provided continue parameter is too old to display a consistent list result."))
            }
            start = off
            listRV = trv
        }
        let page = Array(items.dropFirst(start).prefix(limit))
        var meta = JSONObject([("resourceVersion", .string(String(listRV)))])
        if start + page.count < items.count { meta["continue"] = .string("\(listRV):\(start + page.count)") }
        let kind = (path.split(separator: "/").last.map(String.init) ?? "") + "List"
        respond(
            context, 200,
            .object(
                JSONObject([
                    ("kind", .string(kind)), ("apiVersion", .string("v1")), ("metadata", .object(meta)),
                    ("items", .array(page.map { $0.value.0 })),
                ])))
    }

    func watch(
        _ path: String, namespace: String?, _ query: [String: String], _ context: ChannelHandlerContext,
        _ handler: Handler
    ) {
        let from = Int(query["resourceVersion"] ?? "") ?? 0
        guard let selection = Selection(namespace: namespace, query) else {
            return respond(context, 400, Self.status(400, "BadRequest", "unable to parse requirement"))
        }
        let bookmarks = query["allowWatchBookmarks"] == "true"
        let seconds = Double(query["timeoutSeconds"] ?? "") ?? 300
        var h = HTTPHeaders()
        h.add(name: "Content-Type", value: "application/json")
        h.add(name: "Transfer-Encoding", value: "chunked")
        context.writeAndFlush(
            NIOAny(HTTPServerResponsePart.head(.init(version: .http1_1, status: .ok, headers: h))), promise: nil)
        let loop = context.eventLoop
        let ctx = NIOLoopBound(context, eventLoop: loop)
        // the stream's state, touched on the event loop only: nothing is written after its end
        // (the connection may carry the client's next request then)
        final class Stream: @unchecked Sendable {
            var ended = false
            var bookmarks: RepeatedTask?
        }
        let stream = Stream()
        @Sendable func send(_ type: String, _ object: JSONValue) {
            let line =
                JSONValue.object(JSONObject([("type", .string(type)), ("object", object)])).serialized() + [0x0A]
            loop.execute {
                guard !stream.ended, ctx.value.channel.isActive else { return }
                ctx.value.writeAndFlush(
                    NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(bytes: line)))), promise: nil)
            }
        }
        let (backlog, compacted, id) = store.withLock { s -> ([(String, JSONValue)], Bool, Int) in
            s.nextWatcher += 1
            let id = s.nextWatcher
            s.watchers.append(
                Watcher(
                    id: id, path: path,
                    send: { type, o, previous in
                        if let (t, o) = selection.event(type, o, previous: previous) { send(t, o) }
                    }))
            return (
                s.log.filter { $0.path == path && $0.rv > from }.compactMap {
                    selection.event($0.type, $0.object, previous: $0.previous)
                }, from < s.compactedBelow, id
            )
        }
        handler.watcherID = id
        if compacted {
            send("ERROR", Self.status(410, "Expired", "too old resource version: \(from)"))
        } else {
            for (t, o) in backlog { send(t, o) }
        }
        loop.scheduleTask(in: .milliseconds(Int64(seconds * 1000))) { [weak self] in
            guard !stream.ended else { return }
            stream.ended = true
            stream.bookmarks?.cancel()
            self?.store.withLock { $0.watchers.removeAll { $0.id == id } }
            if ctx.value.channel.isActive {
                ctx.value.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
            }
        }
        if bookmarks {
            let every = TimeAmount.milliseconds(Int64(bookmarkSeconds * 1000))
            let kind = path.split(separator: "/").last.map(String.init) ?? ""
            stream.bookmarks = loop.scheduleRepeatedTask(initialDelay: every, delay: every) { [weak self] _ in
                guard let self else { return }
                let rv = self.store.withLock { $0.revision }
                send(
                    "BOOKMARK",
                    .object(
                        JSONObject([
                            ("kind", .string(kind)), ("apiVersion", .string("v1")),
                            ("metadata", .object(JSONObject([("resourceVersion", .string(String(rv)))]))),
                        ])))
            }
        }
    }
}

/// A task executor on a Dispatch queue of its own, outside Swift's cooperative pool: async test
/// code that must make progress while other suites' synchronous tests block the pool's threads
/// (on a 2-core machine the pool has two) runs with this preference.
public final class DedicatedExecutor: TaskExecutor, @unchecked Sendable {
    let queue: DispatchQueue

    public init(_ label: String) { queue = DispatchQueue(label: label) }

    public func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        queue.async { job.runSynchronously(on: self.asUnownedTaskExecutor()) }
    }
}
