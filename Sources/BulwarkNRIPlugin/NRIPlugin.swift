import BulwarkBPF
import BulwarkBPFMaps
import BulwarkClient
import BulwarkDelivery
import BulwarkModel
import BulwarkNRI
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import Foundation
import Logging
import Metrics
import SwiftProtobuf
import Synchronization

/// One connection to the runtime's NRI socket: the I/O around `NRIConnectionState` (the pure
/// state machine: bytes in, actions out). A reader thread feeds it and answers requests in order;
/// a call waits for its response by stream id.
final class NRIConnection: Sendable {
    let fd: Int32

    struct State {
        /// Outstanding calls live in the machine, each with its waiter.
        var machine = NRIConnectionState<Waiter>()
        var closed = false
    }
    private let state = Mutex(State())
    /// Frames of two messages never interleave.
    private let writing = Mutex(())

    /// One pending call's outcome.
    final class Waiter: Sendable {
        let semaphore = DispatchSemaphore(value: 0)
        let result = Mutex<Result<[UInt8], TTRPC.CallFailure>?>(nil)

        func resolve(_ r: Result<[UInt8], TTRPC.CallFailure>) {
            result.withLock { $0 = r }
            semaphore.signal()
        }
    }

    init(fd: Int32) { self.fd = fd }

    func close() {
        let waiters = state.withLock { s -> [Waiter] in
            guard !s.closed else { return [] }
            s.closed = true
            shutdown(fd, Int32(SHUT_RDWR))
            return s.machine.close()
        }
        for w in waiters {
            w.resolve(.failure(.init(code: TTRPC.Code.unavailable.rawValue, message: "connection closed")))
        }
    }

    /// Writes mux-framed bytes; false when the connection is gone.
    func write(_ bytes: [UInt8]) -> Bool {
        writing.withLock { _ in
            var sent = 0
            while sent < bytes.count {
                let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return false }
                sent += n
            }
            return true
        }
    }

    /// A unary call on the runtime service; never from inside a request handler (the reader
    /// thread would be waiting on itself — and containerd holds its NRI lock meanwhile, §3.7).
    func call(method: String, payload: [UInt8], timeout: Double) -> Result<[UInt8], TTRPC.CallFailure> {
        let waiter = Waiter()
        let started = state.withLock { s -> (UInt32, [UInt8])? in
            guard !s.closed else { return nil }
            return s.machine.call(
                service: "nri.pkg.api.v1alpha1.Runtime", method: method, payload: payload,
                timeoutNanoseconds: Int64(timeout * 1e9), waiting: waiter)
        }
        guard let (stream, bytes) = started else {
            return .failure(.init(code: TTRPC.Code.unavailable.rawValue, message: "connection closed"))
        }
        func abandon() { state.withLock { $0.machine.abandon(stream: stream) } }
        guard write(bytes) else {
            abandon()
            return .failure(.init(code: TTRPC.Code.unavailable.rawValue, message: "cannot write to the runtime"))
        }
        if waiter.semaphore.wait(timeout: .now() + timeout) == .timedOut {
            abandon()
            return .failure(.init(code: TTRPC.Code.deadlineExceeded.rawValue, message: "\(method) timed out"))
        }
        return waiter.result.withLock { $0 }
            ?? .failure(.init(code: TTRPC.Code.unavailable.rawValue, message: "no answer"))
    }

    /// Reads until the runtime closes the connection or sends something malformed; returns why.
    func serve(
        handle: (_ service: String, _ method: String, _ payload: [UInt8]) -> Result<[UInt8], TTRPC.CallFailure>
    ) -> String {
        var buf = [UInt8](repeating: 0, count: 65536)
        defer { close() }
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 && errno == EINTR { continue }
            if n == 0 { return "the runtime closed the connection" }
            if n < 0 { return "read: \(String(cString: strerror(errno)))" }
            let input = buf[0..<n]
            let actions: [NRIConnectionState<Waiter>.Action]
            do {
                actions = try state.withLock { s throws(Mux.Failure) in try s.machine.receive(input) }
            } catch {
                return "malformed input from the runtime: \(error)"
            }
            for action in actions {
                switch action {
                case .send(let bytes):
                    _ = write(bytes)
                case .handle(let stream, let service, let method, let payload):
                    _ = write(nriAnswerFrame(stream: stream, result: handle(service, method, payload)))
                case .complete(let waiter, let result):
                    waiter.resolve(result)
                }
            }
        }
    }
}

/// Bulwark's NRI plugin (containerd, CRI-O): registers with the runtime, subscribes to container
/// events, adjusts new containers a policy targets (hooks, decision annotations, seccomp), binds
/// running ones at Synchronize and checks bindings at start. Reconnects with backoff when the
/// runtime restarts; a pre-launched plugin (fd in NRI_PLUGIN_SOCKET) exits with its connection.
public final class NRIPlugin: Sendable {
    public struct Settings: Sendable {
        public var socketPath = "/var/run/nri/nri.sock"
        public var name = "bulwark"
        public var index = "10"
        /// fd of a pre-launched plugin's socket (NRI_PLUGIN_SOCKET); nil = connect to socketPath.
        public var inheritedFD: Int32?
        /// Bounds of one split Synchronize (§3.4): parts, and protobuf bytes over all parts. The
        /// runtime splits only above 4 MiB a message and must finish within one request timeout;
        /// even a trusted peer gets bounds.
        public var maxSyncParts = 32
        public var maxSyncBytes = 32 << 20
        public var executableDirectory: String
        public init(executableDirectory: String) { self.executableDirectory = executableDirectory }

        /// Settings of a plugin the runtime launched (`/opt/nri/plugins/NN-bulwark`), from its
        /// environment (§2.4); nil when not launched that way.
        public static func launched(
            environment: [String: String], executableDirectory: String
        ) -> Settings? {
            guard let fd = environment["NRI_PLUGIN_SOCKET"].flatMap(Int32.init) else { return nil }
            var s = Settings(executableDirectory: executableDirectory)
            s.inheritedFD = fd
            if let n = environment["NRI_PLUGIN_NAME"], !n.isEmpty { s.name = n }
            if let i = environment["NRI_PLUGIN_IDX"], !i.isEmpty { s.index = i }
            return s
        }
    }

    struct State {
        var capabilities = PluginCore.RuntimeCapabilities(nriVersion: "", runtimeName: "", runtimeVersion: "")
        var runtime = ""
        var syncPods: [NRIPod] = []
        var syncContainers: [NRIContainer] = []
        /// Parts and payload bytes of the split Synchronize in progress.
        var syncParts = 0
        var syncBytes = 0
        var registered = false
        var connection: NRIConnection?
        var connections = 0
        var lastError = ""
        /// Containers given hooks at creation (bounded), to notice a runtime that dropped them.
        var hooked: Set<String> = []

        mutating func resetSync() {
            syncPods = []
            syncContainers = []
            syncParts = 0
            syncBytes = 0
        }
    }

    let settings: Settings
    let config: NodeConfig
    let logger: Logger
    let policies: @Sendable () -> PolicyIndex
    /// The BPF side effects (loading a profile, binding, unbinding).
    let bpf: any NRIBPFSide
    private let state = Mutex(State())
    private let latency = Mutex<[UInt64]>([])
    let createTimer = Metrics.Timer(label: "bulwark_nri_create_container_seconds")

    /// `bpf`: nil = the enforcer's pinned maps (`PinnedBPF`).
    public init(
        settings: Settings, config: NodeConfig, logger: Logger, bpf: (any NRIBPFSide)? = nil,
        policies: @escaping @Sendable () -> PolicyIndex
    ) {
        self.settings = settings
        self.config = config
        self.logger = logger
        self.bpf = bpf ?? PinnedBPF(config: config, logger: logger)
        self.policies = policies
    }

    public var isRegistered: Bool { state.withLock { $0.registered } }
    public var runtimeDescription: String { state.withLock { $0.runtime } }
    public var connections: Int { state.withLock { $0.connections } }

    /// CreateContainer handling times (ns) so far, for metrics and the benchmark.
    public var createLatencies: [UInt64] { latency.withLock { $0 } }

    /// Connects (or uses the inherited fd), registers, and serves until the connection ends.
    /// Returns why it ended.
    public func runOnce() -> String {
        let fd: Int32
        if let inherited = settings.inheritedFD {
            // the runtime's socketpair end: a stream socket, used blocking, not inherited by children
            var type: Int32 = 0
            var len = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(inherited, SOL_SOCKET, SO_TYPE, &type, &len) == 0 else {
                return "NRI_PLUGIN_SOCKET=\(inherited): \(String(cString: strerror(errno)))"
            }
            guard type == Int32(SOCK_STREAM.rawValue) else {
                return "NRI_PLUGIN_SOCKET=\(inherited) is not a stream socket"
            }
            let flags = fcntl(inherited, F_GETFL)
            if flags >= 0 && flags & O_NONBLOCK != 0 { _ = fcntl(inherited, F_SETFL, flags & ~O_NONBLOCK) }
            _ = fcntl(inherited, F_SETFD, FD_CLOEXEC)
            fd = inherited
        } else {
            do {
                fd = try UnixSocket.connect(path: settings.socketPath)
            } catch {
                return "cannot connect to \(settings.socketPath): \(error)"
            }
        }
        let conn = NRIConnection(fd: fd)
        state.withLock {
            $0.connection = conn
            $0.connections += 1
            $0.registered = false
            $0.resetSync()  // a split Synchronize of an earlier connection is void
        }
        defer {
            Glibc.close(fd)
            state.withLock {
                $0.connection = nil
                $0.registered = false
            }
        }
        // serve first: Configure may arrive before RegisterPlugin's answer (§2.3)
        let ended = Mutex<String?>(nil)
        let done = DispatchSemaphore(value: 0)
        let reader = Thread { [self] in
            let why = conn.serve { service, method, payload in self.handle(service: service, method: method, payload) }
            ended.withLock { $0 = why }
            done.signal()
        }
        reader.name = "bulwark-nri"
        reader.start()
        var request = Nri_Pkg_Api_V1alpha1_RegisterPluginRequest()
        request.pluginName = settings.name
        request.pluginIdx = settings.index
        request.nriVersion = "v0.12.2"
        let payload: [UInt8] = (try? request.serializedBytes()) ?? []
        switch conn.call(method: "RegisterPlugin", payload: payload, timeout: 5) {
        case .success:
            state.withLock { $0.registered = true }
            logger.info(
                "NRI plugin registered", metadata: ["plugin": "\(settings.index)-\(settings.name)"])
        case .failure(let f):
            logger.error("NRI registration failed", metadata: ["error": "\(f)"])
            conn.close()
        }
        done.wait()
        return ended.withLock { $0 } ?? "closed"
    }

    /// Runs `runOnce` again after each disconnection (1 s doubling to 30 s) until stopped; a
    /// pre-launched plugin stops with its connection (the runtime starts a new one).
    public func worker() -> Worker {
        Worker(name: "bulwark-nri-connect") { [self] stopped in
            var backoff = 1.0
            while !stopped() {
                let started = Date()
                let why = runOnce()
                logger.warning("NRI connection ended", metadata: ["reason": "\(why)"])
                state.withLock { $0.lastError = why }
                if settings.inheritedFD != nil { return }
                if Date().timeIntervalSince(started) > 30 { backoff = 1 }
                let until = Date().addingTimeInterval(backoff)
                while !stopped() && Date() < until { Thread.sleep(forTimeInterval: 0.1) }
                backoff = min(backoff * 2, 30)
            }
        }
    }

    public func stop() { state.withLock { $0.connection }?.close() }

    // MARK: Requests

    static let pluginService = "nri.pkg.api.v1alpha1.Plugin"

    func handle(service: String, method: String, _ payload: [UInt8]) -> Result<[UInt8], TTRPC.CallFailure> {
        guard service == Self.pluginService else {
            return .failure(.init(code: TTRPC.Code.unimplemented.rawValue, message: "service \(service)"))
        }
        do {
            switch method {
            case "Configure": return .success(try configure(.init(serializedBytes: payload)).serializedBytes())
            case "Synchronize":
                return try synchronize(.init(serializedBytes: payload), wireBytes: payload.count).map {
                    try! $0.serializedBytes()
                }
            case "CreateContainer":
                let start = DispatchTime.now().uptimeNanoseconds
                defer {
                    let ns = DispatchTime.now().uptimeNanoseconds - start
                    latency.withLock { if $0.count < 1_000_000 { $0.append(ns) } }
                    createTimer.recordNanoseconds(Int64(ns))
                }
                return try createContainer(.init(serializedBytes: payload)).map { try! $0.serializedBytes() }
            case "StartContainer":
                let r = try Nri_Pkg_Api_V1alpha1_StartContainerRequest(serializedBytes: payload)
                started(pod: r.pod, container: r.container)
                return .success(try Nri_Pkg_Api_V1alpha1_StartContainerResponse().serializedBytes())
            case "StopContainer":
                let r = try Nri_Pkg_Api_V1alpha1_StopContainerRequest(serializedBytes: payload)
                gone(r.container)
                return .success(try Nri_Pkg_Api_V1alpha1_StopContainerResponse().serializedBytes())
            case "RemoveContainer":
                let r = try Nri_Pkg_Api_V1alpha1_RemoveContainerRequest(serializedBytes: payload)
                gone(r.container)
                return .success(try Nri_Pkg_Api_V1alpha1_RemoveContainerResponse().serializedBytes())
            case "StateChange":
                // runtimes before NRI v0.12 deliver these events only this way (§3.5)
                let e = try Nri_Pkg_Api_V1alpha1_StateChangeEvent(serializedBytes: payload)
                switch e.event {
                case .startContainer: started(pod: e.pod, container: e.container)
                case .stopContainer, .removeContainer: gone(e.container)
                default: break
                }
                return .success(try Nri_Pkg_Api_V1alpha1_Empty().serializedBytes())
            case "Shutdown":
                return .success([])
            case "UpdateContainer":
                return .success(try Nri_Pkg_Api_V1alpha1_UpdateContainerResponse().serializedBytes())
            default:
                return .failure(.init(code: TTRPC.Code.unimplemented.rawValue, message: "method \(method)"))
            }
        } catch {
            return .failure(.init(code: TTRPC.Code.internal.rawValue, message: "cannot decode \(method): \(error)"))
        }
    }

    func configure(_ r: Nri_Pkg_Api_V1alpha1_ConfigureRequest) -> Nri_Pkg_Api_V1alpha1_ConfigureResponse {
        let caps = PluginCore.RuntimeCapabilities(
            nriVersion: r.nriVersion, runtimeName: r.runtimeName, runtimeVersion: r.runtimeVersion)
        let runtime = "\(r.runtimeName) \(r.runtimeVersion) (NRI v\(caps.nriVersion.major).\(caps.nriVersion.minor))"
        state.withLock {
            $0.capabilities = caps
            $0.runtime = runtime
        }
        logger.info(
            "NRI configured",
            metadata: [
                "runtime": "\(runtime)", "seccompAdjustment": "\(caps.seccompAdjustment)",
                "perEventCalls": "\(caps.perEventCalls)",
            ])
        if !caps.seccompAdjustment && config.enforcers.contains(.seccomp) {
            logger.warning(
                "this runtime's NRI cannot set seccomp (needs NRI v0.10: containerd 2.2, CRI-O 1.34); use bulwark-runtime as its runtime binary for seccomp and AppArmor"
            )
        }
        var out = Nri_Pkg_Api_V1alpha1_ConfigureResponse()
        out.events = PluginCore.eventMask
        return out
    }

    /// Split synchronization (§3.4): every `more` part is answered `more` with no updates; the
    /// last part binds what runs. A sequence over `maxSyncParts`/`maxSyncBytes` keeps nothing more
    /// and binds nothing at its end, but is answered normally: pod labels and annotations are
    /// tenants' data, and a refusal would keep the plugin from registering at all (new
    /// containers then unadjusted). Containers already running were bound at their creation.
    func synchronize(
        _ r: Nri_Pkg_Api_V1alpha1_SynchronizeRequest, wireBytes: Int
    ) -> Result<Nri_Pkg_Api_V1alpha1_SynchronizeResponse, TTRPC.CallFailure> {
        enum Step {
            case more
            case overflow(parts: Int, bytes: Int)
            case last([NRIPod], [NRIContainer])
        }
        let (maxParts, maxBytes) = (settings.maxSyncParts, settings.maxSyncBytes)
        let step = state.withLock { s -> Step in
            s.syncParts += 1
            s.syncBytes += wireBytes
            if s.syncParts > maxParts || s.syncBytes > maxBytes {
                s.syncPods = []
                s.syncContainers = []
                let (parts, bytes) = (s.syncParts, s.syncBytes)
                if r.more { return .more }
                s.resetSync()
                return .overflow(parts: parts, bytes: bytes)
            }
            s.syncPods += r.pods
            // only running containers are ever bound
            s.syncContainers += r.containers.filter { $0.state == .containerRunning && $0.pid > 0 }
            guard !r.more else { return .more }
            defer { s.resetSync() }
            return .last(s.syncPods, s.syncContainers)
        }
        let pods: [NRIPod]
        let containers: [NRIContainer]
        switch step {
        case .overflow(let parts, let bytes):
            logger.error(
                "NRI Synchronize over its bounds: running containers not re-bound (new ones are handled)",
                metadata: [
                    "parts": "\(parts)", "bytes": "\(bytes)", "maxParts": "\(maxParts)", "maxBytes": "\(maxBytes)",
                ])
            state.withLock { $0.lastError = "Synchronize over its bounds (\(parts) parts, \(bytes) bytes)" }
            return .success(Nri_Pkg_Api_V1alpha1_SynchronizeResponse())
        case .more:
            var out = Nri_Pkg_Api_V1alpha1_SynchronizeResponse()
            out.more = true
            return .success(out)
        case .last(let p, let c):
            (pods, containers) = (p, c)
        }
        let byID = Dictionary(pods.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var bound = 0
        for c in containers where c.state == .containerRunning && c.pid > 0 {
            guard let pod = byID[c.podSandboxID] else { continue }
            if ensureBound(pod: pod, container: c) { bound += 1 }
        }
        logger.info(
            "NRI synchronized",
            metadata: ["pods": "\(pods.count)", "containers": "\(containers.count)", "bound": "\(bound)"])
        return .success(Nri_Pkg_Api_V1alpha1_SynchronizeResponse())
    }

    func core() -> PluginCore {
        var core = PluginCore(config: config, policies: policies(), executableDirectory: settings.executableDirectory)
        core.kernelRecordsSyscalls = NodeFacts.syscallRecorder(pinPath: config.bpfPinPath)
        return core
    }

    func createContainer(
        _ r: Nri_Pkg_Api_V1alpha1_CreateContainerRequest
    ) -> Result<Nri_Pkg_Api_V1alpha1_CreateContainerResponse, TTRPC.CallFailure> {
        let caps = state.withLock { $0.capabilities }
        let dir = config.seccompProfileDirectory
        let outcome = core().createContainer(
            pod: r.pod, container: r.container, capabilities: caps,
            storedSeccomp: { name in
                guard let data = FileManager.default.contents(atPath: dir + "/" + name + ".json"),
                    let json = try? JSONValue.parse(data)
                else { return nil }
                return try? LinuxSeccomp(json: json)
            },
            model: { name in try? ModelStore(directory: self.config.modelDirectory).load(name) })
        guard let profile = outcome.response.adjust.annotations[DecisionAnnotations.profile] else {
            return .success(outcome.response)
        }
        let who = "\(r.pod.namespace)/\(r.pod.name)/\(r.container.name)"
        /// A container that cannot be confined as its policy asks: refused (failure policy Fail), or
        /// run and reported (Ignore).
        func cannotConfine(_ what: String, _ problem: String) -> TTRPC.CallFailure? {
            let message = "bulwark: container \(who) cannot be confined with \(what): \(problem)"
            if config.failurePolicy(for: outcome.decision.policy) == .fail {
                logger.error("refusing container", metadata: ["reason": "\(message)"])
                return .init(code: TTRPC.Code.failedPrecondition.rawValue, message: message)
            }
            logger.warning("container runs without the confinement it asks for", metadata: ["reason": "\(message)"])
            return nil
        }
        if let problem = outcome.unavailable, let failure = cannotConfine("profile \(profile)", problem) {
            return .failure(failure)
        }
        for n in outcome.notes {
            logger.notice("\(n)", metadata: ["container": "\(who)"])
        }
        // the hook binds at createRuntime; the profile must be in the kernel by then
        if outcome.response.adjust.annotations[DecisionAnnotations.bpfProfile] != nil,
            let problem = bpf.ensure(policy: outcome.decision.policy, profile: profile),
            let failure = cannotConfine("BPF profile \(profile)", problem)
        {
            return .failure(failure)
        }
        if outcome.response.adjust.hasHooks {
            state.withLock { s in
                if s.hooked.count > 10000 { s.hooked.removeAll() }
                s.hooked.insert(r.container.id)
            }
        }
        logger.info(
            "NRI container adjusted",
            metadata: [
                "pod": "\(r.pod.namespace)/\(r.pod.name)", "container": "\(r.container.name)", "profile": "\(profile)",
            ])
        return .success(outcome.response)
    }

    /// At start (pid known): the hook should have bound the container; bind it if not.
    func started(pod: NRIPod, container: NRIContainer) {
        let expected = state.withLock { $0.hooked.remove(container.id) != nil }
        if expected && container.hasHooks
            && !container.hooks.createRuntime.contains(where: { $0.path.hasSuffix("/bulwark-hook") })
        {
            logger.error(
                "the runtime dropped Bulwark's OCI hooks: BPF confinement relies on the plugin's binding at start; allow hook adjustments (containerd: reject_oci_hook_adjustment = false; CRI-O: nri_validator_reject_oci_hook_adjustment = false)",
                metadata: ["container": "\(pod.namespace)/\(pod.name)/\(container.name)"])
        }
        guard container.pid > 0 else { return }
        _ = ensureBound(pod: pod, container: container)
    }

    /// Binds a running container a policy targets with BPF, if it is not bound yet. True when it
    /// is bound afterwards.
    @discardableResult
    func ensureBound(pod: NRIPod, container: NRIContainer) -> Bool {
        let decision = core().decide(pod: pod, container: container)
        guard let profile = decision.profileName ?? PluginCore.explicitProfile(pod: pod, container: container.name),
            decision.policy == nil || decision.enforcers.intersection(config.enforcers).contains(.bpf)
        else { return false }
        let pid = container.pid
        guard let bound = bpf.isBound(pid: pid) else { return false }
        if bound { return true }
        do {
            if let problem = bpf.ensure(policy: decision.policy, profile: profile) {
                throw EnforcerError(problem)
            }
            try bpf.bind(pid: pid, profile: profile, podIPs: pod.ips)
            logger.info(
                "NRI: bound a running container",
                metadata: ["container": "\(pod.namespace)/\(pod.name)/\(container.name)", "profile": "\(profile)"])
            return true
        } catch {
            logger.error(
                "NRI: cannot bind a running container",
                metadata: ["container": "\(pod.namespace)/\(pod.name)/\(container.name)", "error": "\(error)"])
            return false
        }
    }

    /// A stopped or removed container: its binding goes if it is still this container's.
    func gone(_ container: NRIContainer) {
        guard container.pid > 0 else { return }
        bpf.unbind(pid: container.pid)
    }
}
