import BulwarkOCI

/// A Kubernetes resource Bulwark reads, and the RBAC words that name it.
public struct KubeResource: Sendable, Hashable, CustomStringConvertible {
    /// API group ("" = core).
    public var group: String
    public var version: String
    public var plural: String
    public var kind: String

    public init(group: String, version: String, plural: String, kind: String) {
        self.group = group
        self.version = version
        self.plural = plural
        self.kind = kind
    }

    public static let pods = KubeResource(group: "", version: "v1", plural: "pods", kind: "Pod")
    public static let services = KubeResource(group: "", version: "v1", plural: "services", kind: "Service")
    public static let endpointSlices = KubeResource(
        group: "discovery.k8s.io", version: "v1", plural: "endpointslices", kind: "EndpointSlice")
    public static let varmorPolicies = KubeResource(
        group: "crd.varmor.org", version: "v1beta1", plural: "varmorpolicies", kind: "VarmorPolicy")
    public static let varmorClusterPolicies = KubeResource(
        group: "crd.varmor.org", version: "v1beta1", plural: "varmorclusterpolicies", kind: "VarmorClusterPolicy")
    public static let events = KubeResource(group: "", version: "v1", plural: "events", kind: "Event")
    public static let armorProfileModels = KubeResource(
        group: "crd.varmor.org", version: "v1beta1", plural: "armorprofilemodels", kind: "ArmorProfileModel")

    /// `/api/v1/pods`, `/apis/discovery.k8s.io/v1/namespaces/NS/endpointslices`.
    public func path(namespace: String? = nil) -> String {
        (group.isEmpty ? "/api/\(version)" : "/apis/\(group)/\(version)")
            + (namespace.map { "/namespaces/\($0)" } ?? "") + "/\(plural)"
    }

    public var description: String { group.isEmpty ? plural : "\(plural).\(group)" }
}

/// What the API server answered that is not an object: the message names what to fix.
public struct KubeAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var status: Int?
    public var description: String

    public init(status: Int?, _ description: String) {
        self.status = status
        self.description = description
    }

    /// A refused request, in RBAC's words (`verb` on `resource`).
    public static func http(_ status: Int, verb: String, resource: KubeResource, body: String = "") -> KubeAPIError {
        let detail = body.isEmpty ? "" : ": " + String(body.prefix(300))
        switch status {
        case 401:
            return KubeAPIError(
                status: 401,
                "the API server did not accept the agent's credentials to \(verb) \(resource) (401 Unauthorized\(detail)); check the service-account token or the kubeconfig user"
            )
        case 403:
            return KubeAPIError(
                status: 403,
                "the API server refused to \(verb) \(resource) (403 Forbidden\(detail)); grant the agent's service account the verb `\(verb)` on resource `\(resource.plural)` in API group \"\(resource.group)\" (packaging/kubernetes/rbac.yaml)"
            )
        case 404:
            return KubeAPIError(
                status: 404,
                "the API server does not serve \(resource) (404 Not Found\(detail)); \(resource.group == "crd.varmor.org" ? "install the vArmor CRDs (packaging/kubernetes/crds.yaml)" : "is this a Kubernetes API server?")"
            )
        default:
            return KubeAPIError(status: status, "\(verb) \(resource): HTTP \(status)\(detail)")
        }
    }
}

/// The list-then-watch bookkeeping of one resource, as client-go's reflector does it, without I/O:
/// the caller performs the requests it asks for and feeds back what came. List in pages (`limit`,
/// `continue`), then watch from the list's `resourceVersion` with bookmarks; a watch that ends is
/// resumed from the last version seen; `410 Gone` (the version is too old, or a `continue` token
/// expired) lists again; other failures wait with exponential backoff and jitter, then resume.
public struct ListWatch: Sendable {
    /// The next thing to do.
    public enum Action: Sendable, Equatable {
        /// GET `resource.path()` with these query parameters; a watch streams lines (`watchLine`).
        case list([(String, String)])
        case watch([(String, String)])
        /// Sleep, then call `resume()`.
        case wait(seconds: Double)

        public static func == (a: Action, b: Action) -> Bool {
            switch (a, b) {
            case (.list(let x), .list(let y)), (.watch(let x), .watch(let y)):
                return x.map { "\($0.0)=\($0.1)" } == y.map { "\($0.0)=\($0.1)" }
            case (.wait(let x), .wait(let y)): return x == y
            default: return false
            }
        }
    }

    /// How the cached objects changed.
    public enum Change: Sendable, Equatable {
        /// A complete list: these are all the objects now (`namespace/name` → object).
        case replaced([String: JSONValue])
        case upserted(String, JSONValue)
        case deleted(String)
    }

    public struct Outcome: Sendable, Equatable {
        public var changes: [Change] = []
        /// Set when the caller must do something else than go on reading the current watch.
        public var next: Action?
        public var error: KubeAPIError?
    }

    public let resource: KubeResource
    public let pageSize: Int
    /// How long the server keeps a watch open before the client watches again.
    public let watchSeconds: Int
    public private(set) var objects: [String: JSONValue] = [:]
    public private(set) var resourceVersion: String?
    /// A complete list has been read since the start (the cache is the cluster's state).
    public private(set) var synced = false
    private var page: [String: JSONValue]?
    private var continueToken: String?
    private var failures = 0
    private var afterWait: Action = .list([])

    /// Selectors every list and watch carries (`fieldSelector=spec.nodeName=N`: this node's pods).
    public let selectors: [(String, String)]

    public init(
        resource: KubeResource, pageSize: Int = 500, watchSeconds: Int = 300, selectors: [(String, String)] = []
    ) {
        self.resource = resource
        self.pageSize = pageSize
        self.watchSeconds = watchSeconds
        self.selectors = selectors
    }

    public static func key(_ object: JSONValue) -> String? {
        guard let meta = object.object?["metadata"]?.object, let name = meta["name"]?.string else { return nil }
        return (meta["namespace"]?.string).map { "\($0)/\(name)" } ?? name
    }

    public mutating func start() -> Action { listAction(continue: nil) }

    private mutating func listAction(continue token: String?) -> Action {
        if token == nil { page = [:] }
        continueToken = token
        var q = selectors + [("limit", String(pageSize))]
        if let token { q.append(("continue", token)) }
        return .list(q)
    }

    private var watchAction: Action {
        .watch(
            selectors + [
                ("watch", "1"), ("resourceVersion", resourceVersion ?? ""), ("allowWatchBookmarks", "true"),
                ("timeoutSeconds", String(watchSeconds)),
            ])
    }

    /// A list page's body (a `…List` object).
    public mutating func listed(_ body: [UInt8]) -> Outcome {
        guard case .object(let list)? = try? JSONValue.parse(body), let items = list["items"]?.array ?? nilIfNull(list)
        else {
            return fail(KubeAPIError(status: nil, "list \(resource): the answer is not a list"))
        }
        var p = page ?? [:]
        for item in items {
            if let k = Self.key(item) { p[k] = item }
        }
        let meta = list["metadata"]?.object
        if let token = meta?["continue"]?.string, !token.isEmpty {
            page = p
            return Outcome(next: listAction(continue: token))
        }
        page = nil
        failures = 0
        objects = p
        resourceVersion = meta?["resourceVersion"]?.string
        synced = true
        return Outcome(changes: [.replaced(p)], next: watchAction)
    }

    private func nilIfNull(_ list: JSONObject) -> [JSONValue]? {
        // `items: null` is an empty list as the API server writes it
        list["items"] == .null ? [] : nil
    }

    /// One line of a watch stream (`{"type": …, "object": …}`).
    public mutating func watchLine(_ line: [UInt8]) -> Outcome {
        guard case .object(let event)? = try? JSONValue.parse(line), let type = event["type"]?.string,
            let object = event["object"]
        else {
            return fail(KubeAPIError(status: nil, "watch \(resource): a line is not a watch event"))
        }
        if type == "ERROR" {
            // a Status object: 410 = the version is gone, list again
            let code = object.object?["code"]?.integer.map(Int.init)
            if code == 410 {
                return Outcome(next: listAction(continue: nil))
            }
            let message = object.object?["message"]?.string ?? ""
            return fail(KubeAPIError(status: code, "watch \(resource): \(message)"))
        }
        failures = 0
        if let rv = object.object?["metadata"]?.object?["resourceVersion"]?.string, !rv.isEmpty {
            resourceVersion = rv
        }
        switch type {
        case "BOOKMARK":
            return Outcome()
        case "ADDED", "MODIFIED":
            guard let k = Self.key(object) else { return Outcome() }
            objects[k] = object
            return Outcome(changes: [.upserted(k, object)])
        case "DELETED":
            guard let k = Self.key(object) else { return Outcome() }
            objects[k] = nil
            return Outcome(changes: [.deleted(k)])
        default:
            return Outcome()
        }
    }

    /// The watch stream ended without an error (the server's timeout): watch again.
    public mutating func watchEnded() -> Action { watchAction }

    /// A request failed: an HTTP status (`verb`: `list` or `watch`), or no answer (`status` nil).
    public mutating func failed(status: Int?, verb: String, body: String = "", jitter: Double) -> Outcome {
        if status == 410 {
            // too old a resourceVersion, or an expired continue token
            return Outcome(next: listAction(continue: nil))
        }
        let error =
            status.map { KubeAPIError.http($0, verb: verb, resource: resource, body: body) }
            ?? KubeAPIError(status: nil, "\(verb) \(resource): \(body.isEmpty ? "no answer" : body)")
        return fail(error, jitter: jitter)
    }

    private mutating func fail(_ error: KubeAPIError, jitter: Double = 1) -> Outcome {
        failures += 1
        // resume where it was: the watch if a version is known, else the list from the start
        afterWait = synced && resourceVersion != nil ? watchAction : listAction(continue: nil)
        return Outcome(next: .wait(seconds: Self.backoff(failures: failures, jitter: jitter)), error: error)
    }

    /// 0.5 s doubling to 30 s, times a jitter in [0.5, 1] (many agents must not retry in step).
    public static func backoff(failures: Int, jitter: Double) -> Double {
        let base = min(30, 0.5 * Double(1 << min(max(failures - 1, 0), 10)))
        return base * min(1, max(0.5, jitter))
    }

    /// After a `.wait`.
    public mutating func resume() -> Action { afterWait }
}

/// Splits a watch stream into lines (one JSON event each), bounded: a line longer than `maxLine`
/// is an error (the caller watches again).
public struct WatchLines: Sendable {
    public let maxLine: Int
    private var buffer: [UInt8] = []

    public init(maxLine: Int = 16 << 20) { self.maxLine = maxLine }

    public var pending: Int { buffer.count }

    /// Complete lines in `bytes` (with what was left before); nil when a line is too long.
    public mutating func feed<C: Collection>(_ bytes: C) -> [[UInt8]]? where C.Element == UInt8 {
        buffer.append(contentsOf: bytes)
        var lines: [[UInt8]] = []
        var start = 0
        while let nl = buffer[start...].firstIndex(of: 0x0A) {
            let line = Array(buffer[start..<nl])
            if !line.allSatisfy({ $0 == 0x20 || $0 == 0x0D }) { lines.append(line) }
            start = nl + 1
        }
        buffer.removeFirst(start)
        if buffer.count > maxLine { return nil }
        return lines
    }
}
