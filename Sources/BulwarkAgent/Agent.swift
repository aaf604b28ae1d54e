import BulwarkBPF
import BulwarkBPFMaps
import BulwarkClient
import BulwarkCluster
import BulwarkDelivery
import BulwarkEvents
import BulwarkHook
import BulwarkKube
import BulwarkNRIPlugin
import BulwarkOCI
import BulwarkPolicy
import BulwarkSystem
import Foundation
import Logging
import Metrics
import NIOCore
import NIOPosix
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

/// The node agent (`bulwarkd`). `prepare()` runs first and to the end, before anything listens:
/// the BPF enforcer (loaded or adopted; bindings survive in its pinned maps), the policy watcher's
/// watches, the first policy read (so profiles exist before a runtime or a hook asks), the
/// container records (recovered from the hook's state directory). Then its parts
/// (`AgentComponent`s: the node socket, the metrics endpoint, the event sources, the gauges, the
/// NRI plugin) run as services of one `ServiceGroup` (`services()`), or are started in order by
/// `start()` in tests. Stopping leaves the enforcer, its bindings and the records in place:
/// containers stay confined while the agent is down.
public final class Agent: Sendable {
    public let config: NodeConfig
    public let logger: Logger
    public let hub: EventHub
    public let store: PolicyStore
    public let registry: ContainerRegistry
    public let pipeline: EventPipeline
    /// Behaviour modeling (`mode: BehaviorModeling`): records containers into their profile's model.
    public let modeler: Modeler
    let metricsRegistry: PrometheusCollectorRegistry?
    let started = Date()
    /// The NRI plugin when `nri: true` (or when a runtime launched bulwarkd as a plugin).
    public let nriPlugin: NRIPlugin?

    struct Running {
        /// Started by `start()` (tests); `bulwarkd`'s ServiceGroup owns its own.
        var components: [any AgentComponent] = []
        var watcher: Worker?
        var bpf = "not requested"
        /// Process → mount namespace from the kernel (nil when its tracepoints do not load here).
        var tracker: ProcessTracker?
        /// The Kubernetes API watch, started by `prepare` (or why it could not be)
        var cluster: Result<TaskComponent, StartFailure>?
    }
    private let running = Mutex(Running())

    public struct StartFailure: Error, CustomStringConvertible {
        public var description: String
    }

    /// `configPath`: the node config file the agent runs with; its start index (what
    /// `bulwark-runtime` decides from) is published after every reload. Nil: none is published.
    public init(
        config: NodeConfig, configPath: String? = nil, logger: Logger, metrics: PrometheusCollectorRegistry? = nil
    ) throws {
        self.config = config
        self.logger = logger
        metricsRegistry = metrics
        var file: RotatingFile?
        if !config.eventLogFile.isEmpty {
            do {
                file = try RotatingFile(
                    path: config.eventLogFile, maxBytes: config.eventLogMaxBytes, backups: config.eventLogBackups)
            } catch {
                throw StartFailure(
                    description: "cannot open the violation log \(config.eventLogFile): \(error) "
                        + "(set eventLogFile to a writable path, or \"\" for none)")
            }
        }
        let hub = EventHub(queueLimit: config.subscriberQueueLimit, file: file)
        self.hub = hub
        store = PolicyStore(
            config: config, configPath: configPath, logger: logger, notice: { hub.publishNotice($0) })
        registry = ContainerRegistry(directory: config.containerStateDirectory)
        pipeline = EventPipeline(config: config, registry: registry, store: store, hub: hub)
        let modeler = Modeler(
            store: store, registry: registry, models: ModelStore(directory: config.modelDirectory), logger: logger)
        self.modeler = modeler
        store.runBeforeReload { [modeler] in modeler.harvest(now: Date().timeIntervalSince1970) }
        pipeline.use(recorder: { event in modeler.observe(event) })
        hub.observeLosses { source, n in modeler.sourceLost(source, n) }
        // where the runtime finds the hook: the node's path when the agent runs in a container
        let executables =
            config.hookDirectory.isEmpty
            ? URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent().path
            : config.hookDirectory
        let store = store
        if let launched = NRIPlugin.Settings.launched(
            environment: ProcessInfo.processInfo.environment, executableDirectory: executables)
        {
            nriPlugin = NRIPlugin(
                settings: launched, config: config, logger: logger, policies: { store.activeIndex })
        } else if config.nri {
            var settings = NRIPlugin.Settings(executableDirectory: executables)
            settings.socketPath = config.nriSocketPath
            settings.index = config.nriPluginIndex
            nriPlugin = NRIPlugin(
                settings: settings, config: config, logger: logger, policies: { store.activeIndex })
        } else {
            nriPlugin = nil
        }
    }

    /// What must be done before anything listens (see the type's comment). Watching starts
    /// before the first read, so an edit made while the agent starts is never missed.
    func prepare(watch: Bool) {
        let bpf = prepareEnforcer()
        startTracker()
        let watcher =
            watch
            ? EventSources.policyWatcher(
                directories: config.policyDirectories + [config.modelDirectory]
                    + (config.inventoryFile.isEmpty ? [] : [Paths.directory(of: config.inventoryFile)]),
                logger: logger
            ) { [self] in
                self.reload()
            } : nil
        reload()
        startClusterWatch()
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        let pruned = registry.pruneStale(isBound: { enforcer.binding(namespace: $0) != nil })
        logger.info(
            "containers recovered",
            metadata: [
                "records": "\(registry.records.count)", "bindings": "\(enforcer.bindings().count)",
                "pruned": "\(pruned)",
            ])
        running.withLock {
            $0.watcher = watcher
            $0.bpf = bpf
        }
    }

    /// Re-reads the policy directories and delivers what changed (watcher, SIGHUP, `reload`).
    @discardableResult
    func reload() -> (applied: Int, removed: Int, rejected: Int) {
        let r = store.reload()
        pipeline.profilesChanged()
        return r
    }

    /// Stops what `prepare` started: the policy watcher and the process tracker.
    func stopWatcher() {
        let (watcher, tracker) = running.withLock { w in
            defer {
                w.watcher = nil
                w.tracker = nil
            }
            return (w.watcher, w.tracker)
        }
        watcher?.stop()
        registry.use(tracker: nil)
        modeler.use(tracker: nil)
        tracker?.stop()
    }

    /// The agent's parts in start order (stopped in reverse). Without `sources`: only the
    /// listeners (tests and benchmarks feed events themselves).
    func components(sources: Bool) -> [any AgentComponent] {
        let (config, logger) = (config, logger)
        var parts: [any AgentComponent] = [
            ListenerComponent("node socket") { [self] group in
                do {
                    let socket = try NodeSocket.start(
                        path: config.socketPath, group: config.socketGroup, group: group, logger: logger,
                        handle: { request, channel in self.handle(request, channel) })
                    return { socket.stop() }
                } catch {
                    throw StartFailure(description: "\(error)")
                }
            }
        ]
        if let registry = metricsRegistry, !config.metricsAddress.isEmpty {
            let address = config.metricsAddress
            parts.append(
                ListenerComponent("metrics") { group in
                    let failure = { (why: String) in
                        StartFailure(
                            description: "cannot serve metrics on \(address): \(why) "
                                + "(set metricsAddress to a free host:port, or \"\" for none)")
                    }
                    guard let (host, port) = NodeConfig.hostPort(address) else { throw failure("not host:port") }
                    do {
                        let endpoint = try MetricsEndpoint.start(
                            host: host, port: port, group: group, registry: registry)
                        return { endpoint.stop() }
                    } catch {
                        throw failure("\(error)")
                    }
                })
        }
        guard sources else { return parts }
        let (pipeline, hub) = (pipeline, hub)
        parts.append(
            WorkerComponent("BPF events") {
                EventSources.bpf(pipeline: pipeline, hub: hub, pinPath: config.bpfPinPath, logger: logger)
            })
        if !config.kernelLog.isEmpty {
            parts.append(
                WorkerComponent("kernel log") {
                    EventSources.kernelLog(path: config.kernelLog, pipeline: pipeline, hub: hub, logger: logger)
                })
        }
        parts.append(WorkerComponent("gauges") { [self] in self.gauges() })
        if let cluster = running.withLock({ $0.cluster }) {
            // started by `prepare`; a kubeconfig or CA that cannot be used stops the agent here
            parts.append(
                PreparedComponent(
                    "kubernetes API",
                    failure: {
                        if case .failure(let e) = cluster { return e }
                        return nil
                    }(),
                    stop: {
                        if case .success(let c) = cluster { c.stop() }
                    }))
        }
        parts.append(WorkerComponent("modeler") { [modeler] in modeler.worker() })
        if let nri = nriPlugin {
            parts.append(WorkerComponent("NRI plugin", interrupt: { nri.stop() }) { nri.worker() })
        }
        return parts
    }

    /// `bulwarkd`: prepares, then returns every part as a service of one `ServiceGroup` (run in
    /// order, stopped in reverse on graceful shutdown), with SIGHUP reloading the policies.
    public func services() -> [any Service] {
        prepare(watch: true)
        logger.info(
            "bulwarkd starting",
            metadata: [
                "socket": "\(config.socketPath)",
                "metrics": "\(config.metricsAddress.isEmpty ? "off" : config.metricsAddress)",
                "eventLog": "\(config.eventLogFile.isEmpty ? "off" : config.eventLogFile)",
                "kernelLog": "\(config.kernelLog.isEmpty ? "off" : config.kernelLog)",
                "bpf": "\(running.withLock { $0.bpf })",
            ])
        return [PolicyService(agent: self)] + components(sources: true).map { ComponentService(component: $0) }
    }

    /// Prepares and starts every part in order, synchronously (tests and benchmarks; `bulwarkd`
    /// uses `services()`). A part that cannot start stops the ones started before it.
    public func start(sources: Bool = true) throws {
        prepare(watch: sources)
        var started: [any AgentComponent] = []
        for part in components(sources: sources) {
            do {
                try part.start()
            } catch {
                for p in started.reversed() { p.stop() }
                stopWatcher()
                throw error as? StartFailure ?? StartFailure(description: "\(part.name): \(error)")
            }
            started.append(part)
        }
        running.withLock { $0.components = started }
        logger.info("bulwarkd started", metadata: ["parts": "\(started.map(\.name).joined(separator: ", "))"])
    }

    /// The Kubernetes API watch, started before anything listens: `prepare` waits (at most 30 s)
    /// until the API's policies are delivered, so the NRI plugin and the start index never decide
    /// a container without them while the agent starts.
    func startClusterWatch() {
        guard !config.kubeconfig.isEmpty || ProcessInfo.processInfo.environment["KUBERNETES_SERVICE_HOST"] != nil
        else { return }
        let result: Result<TaskComponent, StartFailure>
        do throws(KubeAPIError) {
            if let endpoint = try ClusterWatch.endpoint(config) {
                let watch = ClusterWatch(
                    client: try KubeClient(endpoint: endpoint), store: store, config: config,
                    nodeName: pipeline.nodeName, registry: registry, logger: logger)
                let task = TaskComponent("kubernetes API") { await watch.run() }
                try? task.start()
                if !watch.waitForPolicies(seconds: 30) {
                    logger.error(
                        "the API server's policies are not read after 30 s: containers started now are decided by the policy files alone until they are"
                    )
                }
                result = .success(task)
            } else {
                return
            }
        } catch {
            result = .failure(StartFailure(description: "kubernetes API: \(error)"))
        }
        running.withLock { $0.cluster = result }
    }

    /// Once a second: new container records (for the hook-latency metric) and the gauges.
    func gauges() -> Worker {
        let registry = registry
        let store = store
        let pinPath = config.bpfPinPath
        let hub = hub
        let logger = logger
        let logPath = config.eventLogFile
        return Worker(name: "bulwark-gauges") { stopped in
            let containers = Gauge(label: "bulwark_containers")
            let bindings = Gauge(label: "bulwark_bpf_bindings")
            let profiles = Gauge(label: "bulwark_profiles")
            // egress references (toServices, toPods, service built-ins) resolving to no address
            let unresolved = Gauge(label: "bulwark_egress_unresolved_references")
            let logFailures = Counter(label: "bulwark_event_log_write_failures_total")
            let enforcer = Enforcer(pinPath: pinPath)
            var failuresSeen = 0
            while !stopped() {
                registry.rescanIfChanged()
                containers.record(registry.records.count)
                bindings.record(enforcer.bindings().count)
                let list = store.profiles
                profiles.record(list.count)
                unresolved.record(list.reduce(0) { $0 + $1.unresolved.count })
                // the violation log cannot be written (disk full …): enforcement and the socket go
                // on; say so in the log, to notice subscribers and in the metrics
                if let failures = hub.file?.failures, failures > failuresSeen {
                    logFailures.increment(by: failures - failuresSeen)
                    logger.warning(
                        "violation log: events could not be written; they still reach the node socket",
                        metadata: ["path": "\(logPath)", "failedLines": "\(failures)"])
                    hub.publishNotice(
                        .object(
                            JSONObject([
                                ("level", .string("warning")),
                                ("message", .string("violation log write failed; events still reach the node socket")),
                                ("file", .string(logPath)), ("failedLines", .number(failures)),
                            ])))
                    failuresSeen = failures
                }
                for _ in 0..<10 where !stopped() { Thread.sleep(forTimeInterval: 0.1) }
            }
        }
    }

    public func stop() {
        let parts = running.withLock { r in
            defer { r.components = [] }
            return r.components
        }
        for p in parts.reversed() { p.stop() }
        stopWatcher()
        logger.info("bulwarkd stopped; bindings and container records stay in place")
    }

    /// The process tracker attributes audit records of processes that already exited; without it
    /// (a kernel without BTF tracepoints) attribution reads /proc, and such records are lost.
    func startTracker() {
        do {
            let tracker = try ProcessTracker.start(pinPath: config.bpfPinPath)
            running.withLock { $0.tracker = tracker }
            registry.use { pid in tracker.task(pid: pid)?.namespace }
            modeler.use(tracker: tracker)
            logger.info(
                "process tracker loaded (sched_process_fork/exec/exit)",
                metadata: [
                    "recordingMap":
                        "\(tracker.pinned ? "pinned in \(config.bpfPinPath)/tracker" : "not pinned (no bpffs)")"
                ])
        } catch {
            logger.warning(
                "process tracker unavailable: records of processes that exited before they are read cannot be attributed",
                metadata: ["reason": "\(error.message)"])
        }
    }

    /// Loads (or adopts) the BPF enforcer when this node enforces BPF; reports why not otherwise.
    func prepareEnforcer() -> String {
        guard config.enforcers.contains(.bpf) else { return "not enabled in the node config" }
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        do {
            return "\(try enforcer.load())"
        } catch {
            logger.warning("BPF enforcer unavailable", metadata: ["reason": "\(error.message)"])
            return "unavailable: \(error.message.split(separator: "\n").joined(separator: " "))"
        }
    }

    // MARK: Control API (typed in BulwarkClient's ControlAPI)

    func handle(_ request: NodeSocket.Request, _ channel: any Channel) {
        switch request.request {
        case .status: send(channel, ControlAnswer.ok("status", status().json), close: true)
        case .containers: send(channel, ControlAnswer.ok("containers", .array(containers().map(\.json))), close: true)
        case .profiles: send(channel, ControlAnswer.ok("profiles", .array(profiles().map(\.json))), close: true)
        case .reload:
            // off the event loop: parsing, compiling and loading must never stall the socket
            DispatchQueue.global().async { [self] in
                let r = reload()
                let outcome = ReloadOutcome(changed: r.applied, removed: r.removed, rejectedFiles: r.rejected)
                send(channel, ControlAnswer.ok("reload", outcome.json), close: true)
            }
        case .events(let events): subscribe(events, peer: request.peer, channel)
        }
    }

    func send(_ channel: any Channel, _ bytes: [UInt8], close: Bool) {
        let written = channel.writeAndFlush(channel.allocator.buffer(bytes: bytes))
        if close { written.whenComplete { _ in channel.close(promise: nil) } }
    }

    func subscribe(_ request: EventsRequest, peer: String, _ channel: any Channel) {
        let filter: EventFilter
        do {
            filter = try EventFilter(json: .object(request.filter))
        } catch {
            send(channel, ControlAnswer.failure(error.description), close: true)
            return
        }
        var head = ControlAnswer.ok("filter", filter.json)
        for line in hub.recent(matching: filter, limit: min(request.recent, EventHub.recentCapacity)) {
            head += line
        }
        send(channel, head, close: !request.follow)
        guard request.follow else { return }
        let sub = hub.subscribe(filter: filter, notices: request.notices, peer: peer) { bytes, done in
            channel.eventLoop.execute {
                channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { _ in done() }
            }
        }
        logger.info("subscriber attached", metadata: ["peer": "\(peer)", "filter": "\(filter.json.text)"])
        let hub = self.hub
        let logger = self.logger
        channel.closeFuture.whenComplete { _ in
            hub.unsubscribe(sub)
            logger.info(
                "subscriber left",
                metadata: [
                    "peer": "\(sub.peer)", "delivered": "\(sub.delivered.load(ordering: .relaxed))",
                    "dropped": "\(sub.dropped.load(ordering: .relaxed))",
                ])
        }
    }

    func status() -> AgentStatus {
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        let counts = hub.counts
        let bpf = running.withLock { $0.bpf }
        let files = store.files
        return AgentStatus(
            nodeName: pipeline.nodeName, pid: Int(getpid()), uptimeSeconds: Int(Date().timeIntervalSince(started)),
            enforcers: .init(
                configured: config.enforcers.names, bpf: enforcer.isLoaded ? "loaded (\(bpf))" : bpf,
                appArmor: AppArmorFacts.enabled ? "enabled" : "unavailable: not enabled in this kernel",
                seccomp: "available"),
            policyFiles: files.count,
            rejectedFiles: files.filter { !$0.valid }.map {
                PolicyFileStatus(
                    path: $0.path, valid: $0.valid, policies: $0.policies, errors: $0.errors,
                    keptLastGood: $0.keptLastGood)
            },
            profiles: store.profiles.count, containers: registry.records.count, bindings: enforcer.bindings().count,
            eventsTotal: Int(counts.total),
            eventsByKind: counts.byEnforcerAction.sorted { $0.key < $1.key }.map { .init($0.key, Int($0.value)) },
            subscriberDrops: Int(counts.subscriberDrops),
            sourceDrops: counts.sourceDrops.sorted { $0.key < $1.key }.map { .init($0.key, Int($0.value)) },
            unattributed: Int(counts.unattributed), ignoredKernelRecords: Int(pipeline.ignoredRecords),
            subscribers: hub.subscriptions.map {
                SubscriberStatus(
                    id: Int($0.id), peer: $0.peer, filter: $0.filter.json,
                    delivered: Int($0.delivered.load(ordering: .relaxed)),
                    dropped: Int($0.dropped.load(ordering: .relaxed)), inFlight: Int($0.inFlight))
            },
            eventLog: config.eventLogFile, eventLogWriteFailures: hub.file?.failures ?? 0, reloads: store.reloads)
    }

    func containers() -> [ContainerStatus] {
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        let bindings = Dictionary(enforcer.bindings().map { ($0.namespace, $0) }, uniquingKeysWith: { a, _ in a })
        var seen = Set<UInt32>()
        var out: [ContainerStatus] = []
        for r in registry.records {
            seen.insert(r.namespace)
            let b = bindings[r.namespace]
            let bpf: String
            if r.bpf == false {
                bpf = "not used"
            } else if let b, b.pid == UInt32(bitPattern: r.pid) {
                bpf = b.armed ? "bound (armed)" : "bound (armed at exec)"
            } else {
                bpf = "binding missing"
            }
            out.append(
                ContainerStatus(
                    id: r.id, pid: Int(r.pid), mntNsID: r.namespace, profile: r.profile, policy: r.policy ?? "",
                    podNamespace: r.podNamespace ?? "", podName: r.podName ?? "", containerName: r.containerName ?? "",
                    bpf: bpf, running: kill(r.pid, 0) == 0 || errno == EPERM,
                    since: rfc3339(unixSeconds: Int64(r.boundAt))))
        }
        // bindings without a record (bound by hand with `bulwark bind`, or a record lost)
        for b in bindings.values.sorted(by: { $0.namespace < $1.namespace }) where !seen.contains(b.namespace) {
            out.append(
                ContainerStatus(
                    id: "", pid: Int(b.pid), mntNsID: b.namespace, profile: b.profileName ?? "#\(b.profileID)",
                    policy: "", podNamespace: "", podName: "", containerName: "",
                    bpf: b.armed ? "bound (armed), no record" : "bound, no record",
                    running: kill(Int32(bitPattern: b.pid), 0) == 0, since: ""))
        }
        return out
    }

    func profiles() -> [ProfileStatus] {
        store.profiles.map {
            ProfileStatus(
                name: $0.name, policy: $0.policy, mode: $0.mode, seccomp: $0.seccomp, appArmor: $0.appArmor,
                bpf: $0.bpf,
                unresolved: $0.unresolved)
        }
    }
}
