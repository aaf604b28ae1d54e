import BulwarkClient
import BulwarkOCI
import Testing

/// The control API's types (shared by the agent and the CLI): what one writes the other reads
/// back, and what it refuses.
@Suite("Control API types")
struct ControlAPITests {
    static let status = AgentStatus(
        nodeName: "node-a", pid: 42, uptimeSeconds: 7,
        enforcers: .init(
            configured: ["BPF", "Seccomp"], bpf: "loaded (adopted)", appArmor: "enabled", seccomp: "available"),
        policyFiles: 2,
        rejectedFiles: [
            PolicyFileStatus(
                path: "/etc/bulwark/policies/bad.yaml", valid: false, policies: ["shop/web"],
                errors: ["spec.target: missing"], keptLastGood: true)
        ],
        profiles: 3, containers: 4, bindings: 5, eventsTotal: 6,
        eventsByKind: [.init("BPF/DENIED", 4), .init("Seccomp/AUDIT", 2)], subscriberDrops: 1,
        sourceDrops: [.init("bpf", 9)], unattributed: 0, ignoredKernelRecords: 11,
        subscribers: [
            SubscriberStatus(
                id: 1, peer: "uid=0 gid=0 pid=9", filter: .object(JSONObject()), delivered: 10, dropped: 0, inFlight: 2)
        ],
        eventLog: "/var/log/bulwark/violations.log", eventLogWriteFailures: 0, reloads: 12)

    /// Through bytes, as over the socket.
    func wire(_ v: JSONValue) throws -> JSONValue { try JSONValue.parse(v.serialized()) }

    @Test func answersRoundTripThroughTheWire() throws {
        #expect(try AgentStatus(json: wire(Self.status.json)) == Self.status)
        let c = ContainerStatus(
            id: "abc", pid: 100, mntNsID: 4_026_532_000, profile: "varmor-shop-web", policy: "shop/web",
            podNamespace: "shop", podName: "web-1", containerName: "app", bpf: "bound (armed)", running: true,
            since: "2026-12-02T12:00:00Z")
        #expect(try ContainerStatus(json: wire(c.json)) == c)
        let p = ProfileStatus(
            name: "varmor-shop-web", policy: "shop/web", mode: "EnhanceProtect", seccomp: "stored", appArmor: "-",
            bpf: "loaded")
        #expect(try ProfileStatus(json: wire(p.json)) == p)
        let r = ReloadOutcome(changed: 1, removed: 2, rejectedFiles: 3)
        #expect(try ReloadOutcome(json: wire(r.json)) == r)
    }

    /// The field names scripts and older clients read stay as they were before the API was typed.
    @Test func statusKeepsItsWireNames() throws {
        let o = try #require(Self.status.json.object)
        #expect(
            o.keys == [
                "nodeName", "pid", "uptimeSeconds", "enforcers", "policyFiles", "rejectedFiles", "profiles",
                "containers", "bindings", "events", "drops", "unattributed", "ignoredKernelRecords", "subscribers",
                "eventLog", "eventLogWriteFailures", "reloads",
            ])
        #expect(o["events"]?.object?.keys == ["total", "BPF/DENIED", "Seccomp/AUDIT"])
        #expect(o["drops"]?.object?.keys == ["subscribers", "bpf"])
    }

    @Test func requestsRoundTripAndRefuseWhatIsNotTheAPI() throws {
        let requests: [ControlRequest] = [
            .status, .containers, .profiles, .reload,
            .events(
                EventsRequest(
                    follow: true, notices: true, filter: JSONObject([("action", .array([.string("DENIED")]))]))),
            .events(EventsRequest()),
        ]
        for r in requests {
            #expect(try ControlRequest(json: #require(wire(r.json).object)) == r)
        }
        // defaults of a minimal events request: 100 recent, or 0 when following
        #expect(
            try ControlRequest(json: JSONObject([("op", .string("events"))])) == .events(EventsRequest(recent: 100)))
        #expect(
            try ControlRequest(json: JSONObject([("op", .string("events")), ("follow", .bool(true))]))
                == .events(EventsRequest(follow: true, recent: 0)))
        func refusal(_ o: JSONObject) -> String? {
            do {
                _ = try ControlRequest(json: o)
                return nil
            } catch { return error.description }
        }
        #expect(refusal(JSONObject([("op", .string("bogus"))]))?.contains("status, containers") == true)
        #expect(refusal(JSONObject([("cmd", .string("status"))]))?.contains("\"op\"") == true)
        #expect(
            refusal(JSONObject([("op", .string("events")), ("recent", .number(-1))]))
                == "events request: recent must be 0 or more")
        #expect(
            refusal(JSONObject([("op", .string("events")), ("follow", .string("yes"))]))?.contains("\"follow\"")
                == true)
        #expect(
            refusal(JSONObject([("op", .string("events")), ("filter", .array([]))]))
                == "events request: filter must be an object")
        #expect(
            refusal(JSONObject([("op", .string("events")), ("folow", .bool(true))]))
                == "events request: unknown member \"folow\" (known: op, follow, recent, notices, filter)")
        #expect(
            refusal(JSONObject([("op", .string("status")), ("verbose", .bool(true))]))?.contains("verbose") == true)
    }

    /// An answer from an agent of another version names the member that does not fit.
    @Test func aMissingOrMistypedMemberIsNamed() throws {
        var o = try #require(Self.status.json.object)
        o["reloads"] = .string("twelve")
        do {
            _ = try AgentStatus(json: .object(o))
            Issue.record("a mistyped member was read")
        } catch {
            #expect(error.description.hasPrefix("status: \"reloads\" is missing or not an integer"))
        }
        var e = try #require(Self.status.json.object)
        e["enforcers"] = .object(JSONObject([("configured", .array([]))]))
        #expect(throws: ControlAPIError.self) { try AgentStatus(json: .object(e)) }
        #expect(throws: ControlAPIError.self) {
            try ContainerStatus(
                json: .object(JSONObject([("id", .string("x")), ("pid", .number(1)), ("mntNsID", .number(-5))])))
        }
    }
}
