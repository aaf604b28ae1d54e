import BulwarkBPFMaps
import BulwarkCluster
import BulwarkDelivery
import BulwarkKube
import BulwarkOCI
import BulwarkPolicy
import BulwarkSystem
import Dispatch
import Foundation
import Logging
import Synchronization

/// The agent's view of the cluster through the API server, as Cilium's and Tetragon's agents talk
/// to it themselves (Bulwark has no manager): VarmorPolicy and VarmorClusterPolicy objects into
/// the policy store beside the files; Services and EndpointSlices (and Pods, with
/// `podEgressControl`) into the inventory that `toServices`/`toPods` resolve against; an Event on
/// each policy object saying what this node did with it.
final class ClusterWatch: Sendable {
    let client: KubeClient
    let store: PolicyStore
    let config: NodeConfig
    let nodeName: String
    let logger: Logger
    /// The addresses as the reflectors last reported them, the watches running (`WatchScope`:
    /// what the active policies reference) and which of them have listed completely: the
    /// inventory's coverage is what has, so a reference to anything else is not resolved (its
    /// profile is refused, not loaded short of rules) until its list is in.
    struct Addresses {
        var inventory = ClusterInventory()
        var dirty = true
        var running: [WatchScope.Part: Task<Void, Never>] = [:]
        var listed: Set<WatchScope.Part> = []
    }
    private let cluster = Mutex(Addresses())
    private let policiesDirty = Atomic<Bool>(false)
    /// Policy kinds listed completely, and whether a reload has delivered them (`waitForPolicies`)
    private let policiesListed = Mutex<Set<KubeResource>>([])
    private let policiesDelivered = DispatchSemaphore(value: 0)
    private let deliveredOnce = Atomic<Bool>(false)
    /// Per object: the outcome last posted and when, and a token bucket (a burst of `burst`
    /// Events, then one per `refill`): deduplicated and rate-limited, a flapping object cannot
    /// flood the API server, and a new outcome after a quiet time is posted at once.
    struct Posted {
        var what: String
        var at: ContinuousClock.Instant
        var tokens: Double
    }
    private let posted = Mutex<[String: Posted]>([:])
    /// Per object: its current outcome and since when. An outcome is posted once it has held for
    /// `settle` (a policy whose addresses are being listed is refused for a moment, then loads: one
    /// Event, not a Warning and then its correction).
    private let current = Mutex<[String: (what: String, since: ContinuousClock.Instant)]>([:])
    static let settle: Duration = .seconds(1)
    /// How long the same outcome is not posted again.
    static let repeatAfter: Duration = .seconds(600)
    static let burst = 5.0
    static let refill: Duration = .seconds(10)

    /// The API endpoint of the node config (nil: no API on this node).
    static func endpoint(_ config: NodeConfig) throws(KubeAPIError) -> KubeEndpoint? {
        if !config.kubeconfig.isEmpty { return try KubeEndpoint.load(kubeconfig: config.kubeconfig) }
        return KubeEndpoint.inCluster(environment: ProcessInfo.processInfo.environment)
    }

    /// The containers the OCI hook bound (nil: pod addresses are not given to bindings).
    let registry: ContainerRegistry?
    /// This node's pods as the API server lists them (`pod-self` for hook-bound containers).
    private let nodePods = Mutex<(pods: [String: JSONValue], dirty: Bool)>(([:], false))

    init(
        client: KubeClient, store: PolicyStore, config: NodeConfig, nodeName: String, registry: ContainerRegistry?,
        logger: Logger
    ) {
        self.client = client
        self.store = store
        self.config = config
        self.nodeName = nodeName
        self.registry = registry
        self.logger = logger
    }

    static let policyResources: Set<KubeResource> = [.varmorPolicies, .varmorClusterPolicies]

    /// The address watches the active policies need (vArmor's switches decide which kinds).
    var wantedScope: WatchScope {
        WatchScope.of(
            store.clusterReferences, services: config.serviceEgressControl, pods: config.podEgressControl)
    }

    /// Starts the watches the scope gained and stops (forgetting their objects) those it lost.
    func reconcile(_ scope: WatchScope) {
        let (stopped, started) = cluster.withLock { c -> ([Task<Void, Never>], Int) in
            var stopped: [Task<Void, Never>] = []
            var started = 0
            for (part, task) in c.running where !scope.parts.contains(part) {
                stopped.append(task)
                c.running[part] = nil
                c.listed.remove(part)
                c.inventory.remove(part)
                c.dirty = true
            }
            for part in scope.parts where c.running[part] == nil {
                c.running[part] = Task { [self] in
                    await Reflector.run(
                        client: client, resource: part.resource, namespace: part.namespace, selectors: part.query,
                        logger: logger, onChange: { changes, all in self.changed(part, changes, all) })
                }
                started += 1
                c.dirty = true
            }
            return (stopped, started)
        }
        for t in stopped { t.cancel() }
        if !stopped.isEmpty || started > 0 {
            logger.info(
                "kubernetes API: address watches", metadata: ["watching": "\(scope.parts.map(\.description).sorted())"])
        }
    }

    /// Blocks until the API's policies have been listed and delivered once, or `seconds` passed:
    /// the parts started after this one (the NRI plugin) must not decide a container without them.
    func waitForPolicies(seconds: Double) -> Bool {
        policiesDelivered.wait(timeout: .now() + seconds) == .success
    }

    /// Runs until cancelled.
    func run() async {
        let resources = Array(Self.policyResources)
        logger.info(
            "kubernetes API",
            metadata: [
                "server": "\(client.endpoint.server)",
                "watching": "\(resources + [.armorProfileModels]) and the addresses policies name",
            ])
        await withTaskGroup(of: Void.self) { group in
            for r in resources {
                group.addTask { [self] in
                    await Reflector.run(
                        client: client, resource: r, logger: logger,
                        onChange: { changes, all in self.changed(r, changes, all) })
                }
            }
            group.addTask { [self] in await applyLoop() }
            let share = ModelShare(
                client: client, models: ModelStore(directory: config.modelDirectory),
                namespace: config.clusterProfileNamespace, logger: logger)
            group.addTask { await share.run() }
            if let registry, config.enforcers.contains(.bpf) {
                group.addTask { [self] in
                    await Reflector.run(
                        client: client, resource: .pods, selectors: [("fieldSelector", "spec.nodeName=\(nodeName)")],
                        logger: logger, onChange: { _, all in self.nodePods.withLock { $0 = (all, true) } })
                }
                group.addTask { [self] in await podAddressLoop(registry) }
            }
            await group.waitForAll()
        }
        await client.shutdown()
    }

    static func complete(_ changes: [ListWatch.Change]) -> Bool {
        changes.contains {
            if case .replaced = $0 { return true }
            return false
        }
    }

    func changed(_ r: KubeResource, _ changes: [ListWatch.Change], _ all: [String: JSONValue]) {
        store.setAPIObjects(r == .varmorPolicies ? .varmorPolicy : .varmorClusterPolicy, all)
        if Self.complete(changes) { policiesListed.withLock { _ = $0.insert(r) } }
        policiesDirty.store(true, ordering: .relaxed)
    }

    func changed(_ part: WatchScope.Part, _ changes: [ListWatch.Change], _ all: [String: JSONValue]) {
        cluster.withLock { c in
            guard c.running[part] != nil else { return }  // stopped meanwhile: its objects are gone
            for change in changes { c.inventory.apply(change, to: part) }
            if Self.complete(changes) { c.listed.insert(part) }
            c.dirty = true
        }
    }

    /// Delivers what changed (at most every 100 ms: a burst of address changes is one reload) and
    /// reports outcomes as Events.
    func applyLoop() async {
        var lastPost = ContinuousClock.now
        defer {
            let tasks = cluster.withLock { c in
                defer { c.running = [:] }
                return Array(c.running.values)
            }
            for t in tasks { t.cancel() }
        }
        // the scope moves only with a reload (the references are the loaded policies')
        var scope: (reloads: Int, scope: WatchScope)?
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let reloads = store.reloads
            if scope?.reloads != reloads { scope = (reloads, wantedScope) }
            reconcile(scope!.scope)
            let inventory = cluster.withLock { c -> ClusterInventory? in
                guard c.dirty else { return nil }
                c.dirty = false
                var snapshot = c.inventory
                snapshot.coverage = c.listed
                return snapshot
            }
            let policies = policiesDirty.exchange(false, ordering: .relaxed)
            if inventory != nil || policies {
                if let inventory { store.setClusterInventory(inventory) }
                let store = store
                await offThePool { store.reload() }
                if policiesListed.withLock({ $0.isSuperset(of: Self.policyResources) }),
                    !deliveredOnce.exchange(true, ordering: .relaxed)
                {
                    policiesDelivered.signal()
                }
            }
            // after a change, and each second (an outcome held back by the rate limit, a reload
            // from a policy file)
            if inventory != nil || policies || ContinuousClock.now - lastPost >= .seconds(1) {
                lastPost = ContinuousClock.now
                await postEvents()
            }
        }
    }

    /// Gives hook-bound containers their pod's addresses (`pod-self`) as the API reports them, and
    /// again when they change: a binding is rewritten once it is armed (`Enforcer.setPodAddresses`),
    /// so a container is looked at every 250 ms until then. Until it is done, `pod-self` matches
    /// nothing for that container (logged when it takes longer than 5 s).
    func podAddressLoop(_ registry: ContainerRegistry) async {
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        var done: [UInt32: [String]] = [:]
        var waiting: [UInt32: ContinuousClock.Instant] = [:]
        var addresses: [String: (uid: String?, ips: [String])] = [:]
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(250))
            if let pods = nodePods.withLock({ p -> [String: JSONValue]? in
                defer { p.dirty = false }
                return p.dirty ? p.pods : nil
            }) {
                addresses = PodSelf.addresses(of: pods)
            }
            let records = registry.records
            let live = Set(records.map(\.namespace))
            done = done.filter { live.contains($0.key) }
            waiting = waiting.filter { live.contains($0.key) }
            for (ns, ips) in PodSelf.wanted(records: records, addresses: addresses) where done[ns] != ips {
                do {
                    switch try enforcer.setPodAddresses(namespace: ns, podIPs: ips) {
                    case .updated:
                        done[ns] = ips
                        waiting[ns] = nil
                        logger.info(
                            "pod addresses bound (pod-self)",
                            metadata: ["mntns": "\(ns)", "addresses": "\(ips.joined(separator: ","))"])
                    case .unchanged:
                        done[ns] = ips
                        waiting[ns] = nil
                    case .notArmed:
                        let since = waiting[ns] ?? ContinuousClock.now
                        waiting[ns] = since
                        if ContinuousClock.now - since > .seconds(5) {
                            logger.warning(
                                "a container's binding is not armed after 5 s: pod-self waits for it",
                                metadata: ["mntns": "\(ns)"])
                            waiting[ns] = ContinuousClock.now
                        }
                    case .noBinding:
                        done[ns] = ips
                    }
                } catch {
                    logger.error(
                        "cannot give a binding its pod's addresses", metadata: ["mntns": "\(ns)", "error": "\(error)"])
                }
            }
        }
    }

    /// One Event per object and outcome once it has held for `settle`, not repeated within
    /// `repeatAfter`, within each object's token bucket (a later change waits for the next round).
    func postEvents() async {
        let now = ContinuousClock.now
        let outcomes = store.objectOutcomes
        // objects that are gone are forgotten (the maps would otherwise keep every object ever seen)
        let keys = Set(outcomes.map { "\($0.kind)/\($0.namespace ?? "")/\($0.name)" })
        current.withLock { c in c = c.filter { keys.contains($0.key) } }
        posted.withLock { p in p = p.filter { keys.contains($0.key) } }
        for o in outcomes {
            let key = "\(o.kind)/\(o.namespace ?? "")/\(o.name)"
            let what = o.reason + "|" + o.message
            let settled = current.withLock { c -> Bool in
                if c[key]?.what != what { c[key] = (what, now) }
                return now - c[key]!.since >= Self.settle
            }
            guard settled else { continue }
            let due = posted.withLock { p -> Bool in
                guard var last = p[key] else { return true }
                last.tokens = min(Self.burst, last.tokens + (now - last.at) / Self.refill)
                if last.what == what && now - last.at < Self.repeatAfter { return false }
                return last.tokens >= 1
            }
            guard due else { continue }
            let event = Self.event(o, node: nodeName, at: Date())
            // cluster-scoped objects' Events go to `default`, as kubectl describe looks for them
            let ns = o.namespace ?? "default"
            do {
                let (status, body) = try await client.post(
                    KubeResource.events.path(namespace: ns), json: event.serialized())
                if status == 201 || status == 200 {
                    posted.withLock { p in
                        let tokens =
                            p[key].map { min(Self.burst, $0.tokens + (now - $0.at) / Self.refill) } ?? Self.burst
                        p[key] = Posted(what: what, at: now, tokens: tokens - 1)
                    }
                } else {
                    logger.warning(
                        "cannot post an Event",
                        metadata: [
                            "object": "\(key)",
                            "error":
                                "\(KubeAPIError.http(status, verb: "create", resource: .events, body: String(decoding: body.prefix(200), as: UTF8.self)))",
                        ])
                }
            } catch {
                logger.warning("cannot post an Event", metadata: ["object": "\(key)", "error": "\(error)"])
            }
        }
    }

    static func event(_ o: PolicyStore.ObjectOutcome, node: String, at: Date) -> JSONValue {
        let stamp = ISO8601DateFormatter().string(from: at)
        var involved = JSONObject([
            ("apiVersion", .string("crd.varmor.org/v1beta1")), ("kind", .string(o.kind)), ("name", .string(o.name)),
        ])
        if let ns = o.namespace { involved["namespace"] = .string(ns) }
        if let uid = o.uid { involved["uid"] = .string(uid) }
        return .object(
            JSONObject([
                ("apiVersion", .string("v1")), ("kind", .string("Event")),
                (
                    "metadata",
                    .object(
                        JSONObject([
                            ("generateName", .string("\(o.name).")),
                            ("namespace", .string(o.namespace ?? "default")),
                        ]))
                ),
                ("involvedObject", .object(involved)), ("reason", .string(o.reason)),
                ("message", .string("node \(node): \(o.message)")), ("type", .string(o.warning ? "Warning" : "Normal")),
                ("source", .object(JSONObject([("component", .string("bulwarkd")), ("host", .string(node))]))),
                ("reportingComponent", .string("bulwarkd")), ("reportingInstance", .string(node)),
                ("firstTimestamp", .string(stamp)), ("lastTimestamp", .string(stamp)), ("count", .number(1)),
            ]))
    }
}

/// An async part (the API watch) as a component: started as a task, cancelled and awaited (a
/// bounded wait) when stopped.
final class TaskComponent: AgentComponent {
    let name: String
    let work: @Sendable () async -> Void
    private let task = Mutex<Task<Void, Never>?>(nil)

    init(_ name: String, _ work: @escaping @Sendable () async -> Void) {
        self.name = name
        self.work = work
    }

    func start() throws {
        let work = work
        task.withLock { $0 = Task.detached { await work() } }
    }

    func stop() {
        guard
            let t = task.withLock({ t in
                defer { t = nil }
                return t
            })
        else { return }
        t.cancel()
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            await t.value
            done.signal()
        }
        _ = done.wait(timeout: .now() + 5)
    }
}

/// A part `Agent.prepare` started: starting it reports whether that worked, stopping stops it.
final class PreparedComponent: AgentComponent {
    let name: String
    let failure: (any Error)?
    let stopWork: @Sendable () -> Void

    init(_ name: String, failure: (any Error)?, stop: @escaping @Sendable () -> Void) {
        self.name = name
        self.failure = failure
        self.stopWork = stop
    }

    func start() throws { if let failure { throw failure } }
    func stop() { stopWork() }
}
