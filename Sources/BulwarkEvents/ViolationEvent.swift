import BulwarkOCI

/// Who an event belongs to: the container (from the hook's record or the NRI plugin) and the
/// policy that confines it. Empty strings where unknown, as vArmor writes them.
public struct ContainerIdentity: Sendable, Equatable {
    public var podUID = ""
    public var podName = ""
    public var podNamespace = ""
    public var containerID = ""
    public var containerName = ""
    public var image = ""
    public var profileName = ""
    /// `VarmorPolicy` or `VarmorClusterPolicy`; empty if unknown.
    public var policyKind = ""
    public var policyName = ""
    /// Empty for cluster policies.
    public var policyNamespace = ""

    public init() {}
}

/// One violation event in vArmor's JSON form (reference/varmor.md §6.2): the same fields in the
/// same order, plus `eventType` (vArmor 0.8's name for `enforcer`) right after `enforcer`, so
/// consumers of either version read it.
public struct ViolationEvent: Sendable, Equatable {
    public enum Enforcer: String, Sendable {
        case appArmor = "AppArmor"
        case bpf = "BPF"
        case seccomp = "Seccomp"
    }

    /// The node config's `auditEventMetadata` (clusterID, clusterName, region …); vArmor always
    /// adds `varmorNamespace`.
    public var metadata: JSONObject
    public var nodeName: String
    public var container: ContainerIdentity
    public var pid: UInt32
    public var mntNsID: UInt32
    /// Unix seconds.
    public var eventTimestamp: UInt64
    public var enforcer: Enforcer
    /// `DENIED`, `AUDIT`, `ALLOWED`, or `AUDIT|ALLOWED` (seccomp log records).
    public var action: String
    /// The enforcer-specific body (`BPFEvent.varmorBody`, `SeccompAuditRecord.body`).
    public var event: JSONValue

    public init(
        metadata: JSONObject, nodeName: String, container: ContainerIdentity, pid: UInt32, mntNsID: UInt32,
        eventTimestamp: UInt64, enforcer: Enforcer, action: String, event: JSONValue
    ) {
        self.metadata = metadata
        self.nodeName = nodeName
        self.container = container
        self.pid = pid
        self.mntNsID = mntNsID
        self.eventTimestamp = eventTimestamp
        self.enforcer = enforcer
        self.action = action
        self.event = event
    }

    /// The JSON object; `time` is the RFC 3339 time the event is logged at. (Read back from
    /// `line(time:)`, the one definition of the format.)
    public func json(time: String) -> JSONValue {
        // the writer's output is valid JSON by construction (FuzzSeedTests and EventsTests check it)
        (try? JSONValue.parse(line(time: time))) ?? .null
    }

    /// One line of newline-delimited JSON, vArmor's fields in vArmor's order, written straight
    /// into bytes (the event pipeline's hot path; no `JSONValue` tree).
    public func line(time: String) -> [UInt8] {
        let c = container
        var w = JSONWriter(capacity: 768)
        w.raw("{\"level\":\"warn\",\"metadata\":")
        w.object(metadata)
        for (key, value) in [
            ("nodeName", nodeName), ("podUID", c.podUID), ("podName", c.podName), ("podNamespace", c.podNamespace),
            ("containerID", c.containerID), ("containerName", c.containerName), ("image", c.image),
        ] as [(StaticString, String)] {
            w.member(key, value)
        }
        for (key, value) in [("pid", UInt64(pid)), ("mntNsID", UInt64(mntNsID)), ("eventTimestamp", eventTimestamp)]
            as [(StaticString, UInt64)]
        {
            w.member(key, value)
        }
        for (key, value) in [
            ("enforcer", enforcer.rawValue), ("eventType", enforcer.rawValue), ("action", action),
            ("profileName", c.profileName), ("policyKind", c.policyKind), ("policyName", c.policyName),
            ("policyNamespace", c.policyNamespace),
        ] as [(StaticString, String)] {
            w.member(key, value)
        }
        w.raw(",\"event\":")
        w.value(event)
        w.member("time", time)
        w.raw(",\"message\":\"violation event\"}\n")
        return w.bytes
    }
}

/// RFC 3339 UTC time (`2025-02-24T07:14:24Z`) of a Unix time, without Foundation.
public func rfc3339(unixSeconds: Int64) -> String {
    let days = unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400
    let secs = unixSeconds - days * 86400
    // civil_from_days (H. Hinnant)
    let z = days + 719_468
    let era = (z >= 0 ? z : z - 146_096) / 146_097
    let doe = z - era * 146_097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    let y = yoe + era * 400 + (m <= 2 ? 1 : 0)
    func two(_ v: Int64) -> String { v < 10 ? "0\(v)" : "\(v)" }
    let year = String(repeating: "0", count: max(0, 4 - String(y).count)) + String(y)
    return "\(year)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs % 3600 / 60)):\(two(secs % 60))Z"
}
