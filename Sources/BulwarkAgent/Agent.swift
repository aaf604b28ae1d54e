import BulwarkBPF
import BulwarkBPFMaps
import BulwarkDelivery
import BulwarkEvents
import BulwarkHook
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

/// The node agent (`bulwarkd`). Start-up order: policies (so profiles exist before anything asks),
/// the BPF enforcer (loaded or adopted; bindings survive in its pinned maps), the container records
/// (recovered from the hook's state directory), the node socket, the metrics endpoint, then the
/// event sources and the policy watcher. Stopping leaves the enforcer, its bindings and the
/// records in place: containers stay confined while the agent is down.
public final class Agent: Service, Sendable {
    public let config: NodeConfig
    public let logger: Logger
    public let hub: EventHub
    public let store: PolicyStore
    public let registry: ContainerRegistry
    public let pipeline: EventPipeline
    let metricsRegistry: PrometheusCollectorRegistry?
    let started = Date()
    /// The NRI plugin when `nri: true` (or when a runtime launched bulwarkd as a plugin).
    public let nriPlugin: NRIPlugin?

    struct Running {
        var group: MultiThreadedEventLoopGroup?
        var metricsGroup: MultiThreadedEventLoopGroup?
        var socket: NodeSocket?
        var metrics: MetricsEndpoint?
        var workers: [Worker] = []
        var bpf = "not requested"
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
        let executables = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().path
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

    /// Starts everything; `run()` calls it and waits for shutdown. Tests and benchmarks may call
    /// `start()`/`stop()` directly.
    public func start(sources: Bool = true) throws {
        let bpf = prepareEnforcer()
        // watching before the first read: an edit made while the agent starts is never missed
        let watcher =
            sources
            ? EventSources.policyWatcher(directories: config.policyDirectories, logger: logger) { [self] in
                self.store.reload()
                self.pipeline.profilesChanged()
            } : nil
        store.reload()
        pipeline.profilesChanged()
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        let pruned = registry.pruneStale(isBound: { enforcer.binding(namespace: $0) != nil })
        let records = registry.records
        logger.info(
            "containers recovered",
            metadata: [
                "records": "\(records.count)", "bindings": "\(enforcer.bindings().count)", "pruned": "\(pruned)",
            ])

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let socket: NodeSocket
        do {
            socket = try NodeSocket.start(
                path: config.socketPath, group: config.socketGroup, group: group, logger: logger,
                handle: { [self] request, channel in self.handle(request, channel) })
        } catch {
            watcher?.stop()
            try? group.syncShutdownGracefully()
            throw StartFailure(description: "\(error)")
        }
        var metrics: MetricsEndpoint?
        // its own thread: any local user can reach the metrics port
        let metricsGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        if let registry = metricsRegistry, !config.metricsAddress.isEmpty,
            let (host, port) = NodeConfig.hostPort(config.metricsAddress)
        {
            do {
                metrics = try MetricsEndpoint.start(host: host, port: port, group: metricsGroup, registry: registry)
            } catch {
                watcher?.stop()
                socket.stop()
                try? group.syncShutdownGracefully()
                try? metricsGroup.syncShutdownGracefully()
                throw StartFailure(
                    description: "cannot serve metrics on \(config.metricsAddress): \(error) "
                        + "(set metricsAddress to a free host:port, or \"\" for none)")
            }
        }
        var workers: [Worker] = []
        if sources {
            workers.append(EventSources.bpf(pipeline: pipeline, hub: hub, pinPath: config.bpfPinPath, logger: logger))
            if !config.kernelLog.isEmpty {
                workers.append(
                    EventSources.kernelLog(path: config.kernelLog, pipeline: pipeline, hub: hub, logger: logger))
            }
            workers.append(gauges())
            if let nri = nriPlugin { workers.append(nri.worker()) }
        }
        if let watcher { workers.append(watcher) }
        running.withLock {
            $0 = Running(
                group: group, metricsGroup: metricsGroup, socket: socket, metrics: metrics, workers: workers, bpf: bpf)
        }
        logger.info(
            "bulwarkd started",
            metadata: [
                "socket": "\(config.socketPath)", "metrics": "\(metrics == nil ? "off" : config.metricsAddress)",
                "eventLog": "\(config.eventLogFile.isEmpty ? "off" : config.eventLogFile)",
                "kernelLog": "\(config.kernelLog.isEmpty ? "off" : config.kernelLog)", "bpf": "\(bpf)",
            ])
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
            let logFailures = Counter(label: "bulwark_event_log_write_failures_total")
            let enforcer = Enforcer(pinPath: pinPath)
            var failuresSeen = 0
            while !stopped() {
                registry.rescanIfChanged()
                containers.record(registry.records.count)
                bindings.record(enforcer.bindings().count)
                profiles.record(store.profiles.count)
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
        let r = running.withLock { r in
            defer { r = Running() }
            return r
        }
        nriPlugin?.stop()
        for w in r.workers { w.stop() }
        r.socket?.stop()
        r.metrics?.stop()
        try? r.group?.syncShutdownGracefully()
        try? r.metricsGroup?.syncShutdownGracefully()
        logger.info("bulwarkd stopped; bindings and container records stay in place")
    }

    public func run() async throws {
        try start()
        let reloads = Task { [self] in
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                logger.info("SIGHUP: reloading policies")
                self.store.reload()
                self.pipeline.profilesChanged()
            }
        }
        try? await gracefulShutdown()
        reloads.cancel()
        stop()
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

    // MARK: Control API

    func handle(_ request: NodeSocket.Request, _ channel: any Channel) {
        switch request.op {
        case "status": reply(channel, ok: ["status": status()])
        case "containers": reply(channel, ok: ["containers": containers()])
        case "profiles": reply(channel, ok: ["profiles": profiles()])
        case "reload":
            // off the event loop: parsing, compiling and loading must never stall the socket
            DispatchQueue.global().async { [self] in
                let r = store.reload()
                pipeline.profilesChanged()
                reply(
                    channel,
                    ok: [
                        "reload": .object(
                            JSONObject([
                                ("changed", .number(r.applied)), ("removed", .number(r.removed)),
                                ("rejectedFiles", .number(r.rejected)),
                            ]))
                    ])
            }
        case "events": subscribe(request, channel)
        default:
            fail(channel, "unknown op \"\(request.op)\" (status, containers, profiles, reload, events)")
        }
    }

    func reply(_ channel: any Channel, ok fields: [String: JSONValue]) {
        var o = JSONObject([("ok", .bool(true))])
        for (k, v) in fields.sorted(by: { $0.key < $1.key }) { o[k] = v }
        let bytes = JSONValue.object(o).serialized() + [0x0A]
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { _ in channel.close(promise: nil) }
    }

    func fail(_ channel: any Channel, _ message: String) {
        let bytes =
            JSONValue.object(JSONObject([("ok", .bool(false)), ("error", .string(message))])).serialized() + [0x0A]
        channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { _ in channel.close(promise: nil) }
    }

    func subscribe(_ request: NodeSocket.Request, _ channel: any Channel) {
        let filter: EventFilter
        do {
            filter =
                try request.body["filter"].map { v throws(EventFilter.Invalid) in try EventFilter(json: v) }
                ?? EventFilter()
        } catch {
            fail(channel, error.description)
            return
        }
        let follow = request.body["follow"] == .bool(true)
        let notices = request.body["notices"] == .bool(true)
        let recentCount = request.body["recent"].flatMap { Int($0.text) } ?? (follow ? 0 : 100)
        var head = JSONValue.object(JSONObject([("ok", .bool(true)), ("filter", filter.json)])).serialized() + [0x0A]
        for line in hub.recent(matching: filter, limit: max(0, min(recentCount, EventHub.recentCapacity))) {
            head += line
        }
        guard follow else {
            channel.writeAndFlush(channel.allocator.buffer(bytes: head)).whenComplete { _ in
                channel.close(promise: nil)
            }
            return
        }
        channel.writeAndFlush(channel.allocator.buffer(bytes: head), promise: nil)
        let sub = hub.subscribe(filter: filter, notices: notices, peer: request.peer) { bytes, done in
            channel.eventLoop.execute {
                channel.writeAndFlush(channel.allocator.buffer(bytes: bytes)).whenComplete { _ in done() }
            }
        }
        logger.info("subscriber attached", metadata: ["peer": "\(request.peer)", "filter": "\(filter.json.text)"])
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

    func status() -> JSONValue {
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        let counts = hub.counts
        let bpf = running.withLock { $0.bpf }
        var events = JSONObject([("total", .number(counts.total))])
        for (k, v) in counts.byEnforcerAction.sorted(by: { $0.key < $1.key }) { events[k] = .number(v) }
        var drops = JSONObject([("subscribers", .number(counts.subscriberDrops))])
        for (k, v) in counts.sourceDrops.sorted(by: { $0.key < $1.key }) { drops[k] = .number(v) }
        let files = store.files
        return .object(
            JSONObject([
                ("nodeName", .string(pipeline.nodeName)), ("pid", .number(Int64(getpid()))),
                ("uptimeSeconds", .number(Int64(Date().timeIntervalSince(started)))),
                (
                    "enforcers",
                    .object(
                        JSONObject([
                            ("configured", .array(config.enforcers.names.map(JSONValue.string))),
                            ("bpf", .string(enforcer.isLoaded ? "loaded (\(bpf))" : bpf)),
                            (
                                "appArmor",
                                .string(
                                    AppArmorFacts.enabled ? "enabled" : "unavailable: not enabled in this kernel")
                            ),
                            ("seccomp", .string("available")),
                        ]))
                ),
                ("policyFiles", .number(files.count)),
                ("rejectedFiles", .array(files.filter { !$0.valid }.map(Self.fileJSON))),
                ("profiles", .number(store.profiles.count)), ("containers", .number(registry.records.count)),
                ("bindings", .number(enforcer.bindings().count)), ("events", .object(events)),
                ("drops", .object(drops)), ("unattributed", .number(counts.unattributed)),
                ("ignoredKernelRecords", .number(pipeline.ignoredRecords)),
                ("subscribers", .array(hub.subscriptions.map(Self.subscriberJSON))),
                ("eventLog", .string(config.eventLogFile)),
                ("eventLogWriteFailures", .number(hub.file?.failures ?? 0)), ("reloads", .number(store.reloads)),
            ]))
    }

    static func fileJSON(_ f: PolicyStore.FileStatus) -> JSONValue {
        .object(
            JSONObject([
                ("path", .string(f.path)), ("valid", .bool(f.valid)),
                ("policies", .array(f.policies.map(JSONValue.string))),
                ("errors", .array(f.errors.map(JSONValue.string))), ("keptLastGood", .bool(f.keptLastGood)),
            ]))
    }

    static func subscriberJSON(_ s: EventHub.Subscription) -> JSONValue {
        .object(
            JSONObject([
                ("id", .number(s.id)), ("peer", .string(s.peer)), ("filter", s.filter.json),
                ("delivered", .number(s.delivered.load(ordering: .relaxed))),
                ("dropped", .number(s.dropped.load(ordering: .relaxed))), ("inFlight", .number(s.inFlight)),
            ]))
    }

    func containers() -> JSONValue {
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        let bindings = Dictionary(enforcer.bindings().map { ($0.namespace, $0) }, uniquingKeysWith: { a, _ in a })
        var seen = Set<UInt32>()
        var out: [JSONValue] = []
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
            let running = kill(r.pid, 0) == 0 || errno == EPERM
            out.append(
                .object(
                    JSONObject([
                        ("id", .string(r.id)), ("pid", .number(Int64(r.pid))), ("mntNsID", .number(r.namespace)),
                        ("profile", .string(r.profile)), ("policy", .string(r.policy ?? "")),
                        ("podNamespace", .string(r.podNamespace ?? "")), ("podName", .string(r.podName ?? "")),
                        ("containerName", .string(r.containerName ?? "")), ("bpf", .string(bpf)),
                        ("running", .bool(running)), ("since", .string(rfc3339(unixSeconds: Int64(r.boundAt)))),
                    ])))
        }
        // bindings without a record (bound by hand with `bulwark bind`, or a record lost)
        for b in bindings.values.sorted(by: { $0.namespace < $1.namespace }) where !seen.contains(b.namespace) {
            out.append(
                .object(
                    JSONObject([
                        ("id", .string("")), ("pid", .number(b.pid)), ("mntNsID", .number(b.namespace)),
                        ("profile", .string(b.profileName ?? "#\(b.profileID)")), ("policy", .string("")),
                        ("podNamespace", .string("")), ("podName", .string("")), ("containerName", .string("")),
                        ("bpf", .string(b.armed ? "bound (armed), no record" : "bound, no record")),
                        ("running", .bool(kill(Int32(bitPattern: b.pid), 0) == 0)), ("since", .string("")),
                    ])))
        }
        return .array(out)
    }

    func profiles() -> JSONValue {
        .array(
            store.profiles.map { p in
                .object(
                    JSONObject([
                        ("name", .string(p.name)), ("policy", .string(p.policy)), ("mode", .string(p.mode)),
                        ("seccomp", .string(p.seccomp)), ("appArmor", .string(p.appArmor)), ("bpf", .string(p.bpf)),
                    ]))
            })
    }
}
