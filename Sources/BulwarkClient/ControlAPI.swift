import BulwarkOCI

// The node socket's control API, typed once: the agent answers with these types, the CLI (and
// tests) read them back. The wire format is newline-delimited JSON (see `NodeSocket`):
//
//     → {"op":"status"}            ← {"ok":true,"status":{…AgentStatus…}}
//     → {"op":"containers"}        ← {"ok":true,"containers":[…ContainerStatus…]}
//     → {"op":"profiles"}          ← {"ok":true,"profiles":[…ProfileStatus…]}
//     → {"op":"reload"}            ← {"ok":true,"reload":{…ReloadOutcome…}}
//     → {"op":"events",…}          ← {"ok":true,"filter":{…}} then one event per line
//     any failure                  ← {"ok":false,"error":"…"}
//
// Members are written in a fixed order; a reader ignores members it does not know (an older CLI
// reads a newer agent) and names the member it misses (a newer CLI reading an older agent).

/// A request that is not one of the API's, or an answer that does not have the API's shape.
public struct ControlAPIError: Error, Sendable, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// One request on the node socket.
public enum ControlRequest: Sendable, Equatable {
    case status
    case containers
    case profiles
    case reload
    case events(EventsRequest)

    public static let operations = ["status", "containers", "profiles", "reload", "events"]

    public var operation: String {
        switch self {
        case .status: "status"
        case .containers: "containers"
        case .profiles: "profiles"
        case .reload: "reload"
        case .events: "events"
        }
    }

    public var json: JSONValue {
        var o = JSONObject([("op", .string(operation))])
        if case .events(let e) = self {
            o["follow"] = .bool(e.follow)
            o["recent"] = .number(e.recent)
            o["notices"] = .bool(e.notices)
            o["filter"] = .object(e.filter)
        }
        return .object(o)
    }

    public init(json o: JSONObject) throws(ControlAPIError) {
        let hint = "a request is one JSON object with \"op\" on one line, e.g. {\"op\":\"status\"}"
        guard let op = o["op"]?.string else { throw ControlAPIError(hint) }
        // a misspelt member ("folow") must not quietly change what is asked
        let known = op == "events" ? ["op", "follow", "recent", "notices", "filter"] : ["op"]
        if let unknown = o.keys.first(where: { !known.contains($0) }) {
            throw ControlAPIError(
                "\(op) request: unknown member \"\(unknown)\" (known: \(known.joined(separator: ", ")))")
        }
        switch op {
        case "status": self = .status
        case "containers": self = .containers
        case "profiles": self = .profiles
        case "reload": self = .reload
        case "events":
            let r = Reader(o, "events request")
            let filter: JSONObject
            switch o["filter"] {
            case nil: filter = JSONObject()
            case .object(let f)?: filter = f
            default: throw ControlAPIError("events request: filter must be an object")
            }
            let e = EventsRequest(
                follow: try r.optionalBool("follow") ?? false, recent: try r.optionalInt("recent"),
                notices: try r.optionalBool("notices") ?? false, filter: filter)
            guard e.recent >= 0 else { throw ControlAPIError("events request: recent must be 0 or more") }
            self = .events(e)
        default:
            throw ControlAPIError(
                "unknown op \"\(op)\" (\(ControlRequest.operations.joined(separator: ", ")))")
        }
    }
}

/// `events`: recent events (from the agent's ring), then, with `follow`, new ones as they come.
public struct EventsRequest: Sendable, Equatable {
    public static let defaultRecent = 100
    public var follow = false
    /// How many recent events first (the agent caps it at its ring's size).
    public var recent = defaultRecent
    /// Also agent notices (policy file rejected, log write failed …).
    public var notices = false
    /// The event filter as JSON (`EventFilter` in BulwarkEvents reads it: action, enforcer,
    /// namespace, pod, container — each a list of strings).
    public var filter = JSONObject()
    public init(follow: Bool = false, recent: Int? = nil, notices: Bool = false, filter: JSONObject = JSONObject()) {
        self.follow = follow
        self.recent = recent ?? (follow ? 0 : Self.defaultRecent)
        self.notices = notices
        self.filter = filter
    }
}

/// The first line of every answer.
public enum ControlAnswer {
    public static func ok(_ key: String, _ value: JSONValue) -> [UInt8] {
        JSONValue.object(JSONObject([("ok", .bool(true)), (key, value)])).serialized() + [0x0A]
    }

    public static func failure(_ message: String) -> [UInt8] {
        JSONValue.object(JSONObject([("ok", .bool(false)), ("error", .string(message))])).serialized() + [0x0A]
    }
}

// MARK: Answers

/// `status`: the agent's state.
public struct AgentStatus: Sendable, Equatable {
    public struct Enforcers: Sendable, Equatable {
        /// From the node config, in its order.
        public var configured: [String]
        public var bpf: String
        public var appArmor: String
        public var seccomp: String
        public init(configured: [String], bpf: String, appArmor: String, seccomp: String) {
            self.configured = configured
            self.bpf = bpf
            self.appArmor = appArmor
            self.seccomp = seccomp
        }
    }

    /// A named count (events by enforcer and action, drops by source), in the agent's order.
    public struct Count: Sendable, Equatable {
        public var name: String
        public var value: Int
        public init(_ name: String, _ value: Int) {
            self.name = name
            self.value = value
        }
    }

    public var nodeName: String
    public var pid: Int
    public var uptimeSeconds: Int
    public var enforcers: Enforcers
    public var policyFiles: Int
    public var rejectedFiles: [PolicyFileStatus]
    public var profiles: Int
    public var containers: Int
    public var bindings: Int
    public var eventsTotal: Int
    public var eventsByKind: [Count]
    public var subscriberDrops: Int
    public var sourceDrops: [Count]
    public var unattributed: Int
    public var ignoredKernelRecords: Int
    public var subscribers: [SubscriberStatus]
    public var eventLog: String
    public var eventLogWriteFailures: Int
    public var reloads: Int

    public init(
        nodeName: String, pid: Int, uptimeSeconds: Int, enforcers: Enforcers, policyFiles: Int,
        rejectedFiles: [PolicyFileStatus], profiles: Int, containers: Int, bindings: Int, eventsTotal: Int,
        eventsByKind: [Count], subscriberDrops: Int, sourceDrops: [Count], unattributed: Int,
        ignoredKernelRecords: Int, subscribers: [SubscriberStatus], eventLog: String, eventLogWriteFailures: Int,
        reloads: Int
    ) {
        self.nodeName = nodeName
        self.pid = pid
        self.uptimeSeconds = uptimeSeconds
        self.enforcers = enforcers
        self.policyFiles = policyFiles
        self.rejectedFiles = rejectedFiles
        self.profiles = profiles
        self.containers = containers
        self.bindings = bindings
        self.eventsTotal = eventsTotal
        self.eventsByKind = eventsByKind
        self.subscriberDrops = subscriberDrops
        self.sourceDrops = sourceDrops
        self.unattributed = unattributed
        self.ignoredKernelRecords = ignoredKernelRecords
        self.subscribers = subscribers
        self.eventLog = eventLog
        self.eventLogWriteFailures = eventLogWriteFailures
        self.reloads = reloads
    }

    public var json: JSONValue {
        var events = JSONObject([("total", .number(eventsTotal))])
        for c in eventsByKind { events[c.name] = .number(c.value) }
        var drops = JSONObject([("subscribers", .number(subscriberDrops))])
        for c in sourceDrops { drops[c.name] = .number(c.value) }
        return .object(
            JSONObject([
                ("nodeName", .string(nodeName)), ("pid", .number(pid)), ("uptimeSeconds", .number(uptimeSeconds)),
                (
                    "enforcers",
                    .object(
                        JSONObject([
                            ("configured", .array(enforcers.configured.map(JSONValue.string))),
                            ("bpf", .string(enforcers.bpf)), ("appArmor", .string(enforcers.appArmor)),
                            ("seccomp", .string(enforcers.seccomp)),
                        ]))
                ),
                ("policyFiles", .number(policyFiles)), ("rejectedFiles", .array(rejectedFiles.map(\.json))),
                ("profiles", .number(profiles)), ("containers", .number(containers)), ("bindings", .number(bindings)),
                ("events", .object(events)), ("drops", .object(drops)), ("unattributed", .number(unattributed)),
                ("ignoredKernelRecords", .number(ignoredKernelRecords)),
                ("subscribers", .array(subscribers.map(\.json))), ("eventLog", .string(eventLog)),
                ("eventLogWriteFailures", .number(eventLogWriteFailures)), ("reloads", .number(reloads)),
            ]))
    }

    public init(json: JSONValue) throws(ControlAPIError) {
        let r = try Reader(json, "status")
        nodeName = try r.string("nodeName")
        pid = try r.int("pid")
        uptimeSeconds = try r.int("uptimeSeconds")
        let e = try r.object("enforcers")
        enforcers = Enforcers(
            configured: try e.strings("configured"), bpf: try e.string("bpf"), appArmor: try e.string("appArmor"),
            seccomp: try e.string("seccomp"))
        policyFiles = try r.int("policyFiles")
        rejectedFiles = try r.array("rejectedFiles").map { v throws(ControlAPIError) in try PolicyFileStatus(json: v) }
        profiles = try r.int("profiles")
        containers = try r.int("containers")
        bindings = try r.int("bindings")
        let events = try r.object("events")
        eventsTotal = try events.int("total")
        eventsByKind = try events.counts(except: "total")
        let drops = try r.object("drops")
        subscriberDrops = try drops.int("subscribers")
        sourceDrops = try drops.counts(except: "subscribers")
        unattributed = try r.int("unattributed")
        ignoredKernelRecords = try r.int("ignoredKernelRecords")
        subscribers = try r.array("subscribers").map { v throws(ControlAPIError) in try SubscriberStatus(json: v) }
        eventLog = try r.string("eventLog")
        eventLogWriteFailures = try r.int("eventLogWriteFailures")
        reloads = try r.int("reloads")
    }
}

/// A policy file as the agent last read it.
public struct PolicyFileStatus: Sendable, Equatable {
    public var path: String
    public var valid: Bool
    public var policies: [String]
    public var errors: [String]
    /// Rejected, and the policies of its last valid version stay active.
    public var keptLastGood: Bool
    public init(path: String, valid: Bool, policies: [String], errors: [String], keptLastGood: Bool) {
        self.path = path
        self.valid = valid
        self.policies = policies
        self.errors = errors
        self.keptLastGood = keptLastGood
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("path", .string(path)), ("valid", .bool(valid)), ("policies", .array(policies.map(JSONValue.string))),
                ("errors", .array(errors.map(JSONValue.string))), ("keptLastGood", .bool(keptLastGood)),
            ]))
    }

    public init(json: JSONValue) throws(ControlAPIError) {
        let r = try Reader(json, "policy file")
        path = try r.string("path")
        valid = try r.bool("valid")
        policies = try r.strings("policies")
        errors = try r.strings("errors")
        keptLastGood = try r.bool("keptLastGood")
    }
}

/// A node-socket subscriber of `events --follow`.
public struct SubscriberStatus: Sendable, Equatable {
    public var id: Int
    public var peer: String
    public var filter: JSONValue
    public var delivered: Int
    public var dropped: Int
    public var inFlight: Int
    public init(id: Int, peer: String, filter: JSONValue, delivered: Int, dropped: Int, inFlight: Int) {
        self.id = id
        self.peer = peer
        self.filter = filter
        self.delivered = delivered
        self.dropped = dropped
        self.inFlight = inFlight
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("id", .number(id)), ("peer", .string(peer)), ("filter", filter), ("delivered", .number(delivered)),
                ("dropped", .number(dropped)), ("inFlight", .number(inFlight)),
            ]))
    }

    public init(json: JSONValue) throws(ControlAPIError) {
        let r = try Reader(json, "subscriber")
        id = try r.int("id")
        peer = try r.string("peer")
        filter = try r.value("filter")
        delivered = try r.int("delivered")
        dropped = try r.int("dropped")
        inFlight = try r.int("inFlight")
    }
}

/// `containers`: one confined container (or a binding without a record).
public struct ContainerStatus: Sendable, Equatable {
    public var id: String
    public var pid: Int
    public var mntNsID: UInt32
    public var profile: String
    public var policy: String
    public var podNamespace: String
    public var podName: String
    public var containerName: String
    /// "bound (armed)", "binding missing", "not used" …
    public var bpf: String
    public var running: Bool
    /// RFC 3339, or "" when unknown.
    public var since: String
    public init(
        id: String, pid: Int, mntNsID: UInt32, profile: String, policy: String, podNamespace: String,
        podName: String, containerName: String, bpf: String, running: Bool, since: String
    ) {
        self.id = id
        self.pid = pid
        self.mntNsID = mntNsID
        self.profile = profile
        self.policy = policy
        self.podNamespace = podNamespace
        self.podName = podName
        self.containerName = containerName
        self.bpf = bpf
        self.running = running
        self.since = since
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("id", .string(id)), ("pid", .number(pid)), ("mntNsID", .number(mntNsID)),
                ("profile", .string(profile)), ("policy", .string(policy)), ("podNamespace", .string(podNamespace)),
                ("podName", .string(podName)), ("containerName", .string(containerName)), ("bpf", .string(bpf)),
                ("running", .bool(running)), ("since", .string(since)),
            ]))
    }

    public init(json: JSONValue) throws(ControlAPIError) {
        let r = try Reader(json, "container")
        id = try r.string("id")
        pid = try r.int("pid")
        guard let ns = UInt32(exactly: try r.int("mntNsID")) else {
            throw ControlAPIError("container: mntNsID out of range")
        }
        mntNsID = ns
        profile = try r.string("profile")
        policy = try r.string("policy")
        podNamespace = try r.string("podNamespace")
        podName = try r.string("podName")
        containerName = try r.string("containerName")
        bpf = try r.string("bpf")
        running = try r.bool("running")
        since = try r.string("since")
    }
}

/// `profiles`: one loaded profile and its state in each enforcer.
public struct ProfileStatus: Sendable, Equatable {
    public var name: String
    public var policy: String
    public var mode: String
    public var seccomp: String
    public var appArmor: String
    public var bpf: String
    /// Egress references to cluster addresses not resolved (`reference: reason`).
    public var unresolved: [String]
    public init(
        name: String, policy: String, mode: String, seccomp: String, appArmor: String, bpf: String,
        unresolved: [String] = []
    ) {
        self.name = name
        self.policy = policy
        self.mode = mode
        self.seccomp = seccomp
        self.appArmor = appArmor
        self.bpf = bpf
        self.unresolved = unresolved
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("name", .string(name)), ("policy", .string(policy)), ("mode", .string(mode)),
                ("seccomp", .string(seccomp)), ("appArmor", .string(appArmor)), ("bpf", .string(bpf)),
                ("unresolved", .array(unresolved.map(JSONValue.string))),
            ]))
    }

    public init(json: JSONValue) throws(ControlAPIError) {
        let r = try Reader(json, "profile")
        name = try r.string("name")
        policy = try r.string("policy")
        mode = try r.string("mode")
        seccomp = try r.string("seccomp")
        appArmor = try r.string("appArmor")
        bpf = try r.string("bpf")
        unresolved = try r.strings("unresolved")
    }
}

/// `reload`: what one re-read of the policy directories changed.
public struct ReloadOutcome: Sendable, Equatable {
    public var changed: Int
    public var removed: Int
    public var rejectedFiles: Int
    public init(changed: Int, removed: Int, rejectedFiles: Int) {
        self.changed = changed
        self.removed = removed
        self.rejectedFiles = rejectedFiles
    }

    public var json: JSONValue {
        .object(
            JSONObject([
                ("changed", .number(changed)), ("removed", .number(removed)),
                ("rejectedFiles", .number(rejectedFiles)),
            ]))
    }

    public init(json: JSONValue) throws(ControlAPIError) {
        let r = try Reader(json, "reload")
        changed = try r.int("changed")
        removed = try r.int("removed")
        rejectedFiles = try r.int("rejectedFiles")
    }
}

// MARK: Reading members with errors that name them

struct Reader {
    let o: JSONObject
    let context: String

    init(_ o: JSONObject, _ context: String) {
        self.o = o
        self.context = context
    }

    init(_ v: JSONValue, _ context: String) throws(ControlAPIError) {
        guard case .object(let o) = v else { throw ControlAPIError("\(context): expected an object") }
        self.init(o, context)
    }

    func missing(_ key: String, _ kind: String) -> ControlAPIError {
        ControlAPIError(
            "\(context): \"\(key)\" is missing or not \(kind) (are the agent and this client the same version?)")
    }

    func value(_ key: String) throws(ControlAPIError) -> JSONValue {
        guard let v = o[key] else { throw missing(key, "present") }
        return v
    }

    func string(_ key: String) throws(ControlAPIError) -> String {
        guard let s = o[key]?.string else { throw missing(key, "a string") }
        return s
    }

    func int(_ key: String) throws(ControlAPIError) -> Int {
        guard let n = o[key]?.integer, let i = Int(exactly: n) else { throw missing(key, "an integer") }
        return i
    }

    func bool(_ key: String) throws(ControlAPIError) -> Bool {
        guard let b = o[key]?.bool else { throw missing(key, "true or false") }
        return b
    }

    func optionalBool(_ key: String) throws(ControlAPIError) -> Bool? {
        guard let v = o[key] else { return nil }
        guard let b = v.bool else { throw missing(key, "true or false") }
        return b
    }

    func optionalInt(_ key: String) throws(ControlAPIError) -> Int? {
        guard let v = o[key] else { return nil }
        guard let n = v.integer, let i = Int(exactly: n) else { throw missing(key, "an integer") }
        return i
    }

    func array(_ key: String) throws(ControlAPIError) -> [JSONValue] {
        guard let a = o[key]?.array else { throw missing(key, "an array") }
        return a
    }

    func strings(_ key: String) throws(ControlAPIError) -> [String] {
        var out: [String] = []
        for v in try array(key) {
            guard let s = v.string else { throw missing(key, "an array of strings") }
            out.append(s)
        }
        return out
    }

    func object(_ key: String) throws(ControlAPIError) -> Reader {
        guard let x = o[key]?.object else { throw missing(key, "an object") }
        return Reader(x, "\(context).\(key)")
    }

    /// Every member but `except`, each an integer, in order.
    func counts(except: String) throws(ControlAPIError) -> [AgentStatus.Count] {
        var out: [AgentStatus.Count] = []
        for (k, v) in o.members where k != except {
            guard let n = v.integer, let i = Int(exactly: n) else { throw missing(k, "an integer") }
            out.append(.init(k, i))
        }
        return out
    }
}
