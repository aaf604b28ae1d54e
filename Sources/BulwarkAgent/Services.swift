import BulwarkSystem
import Dispatch
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Synchronization
import UnixSignals

/// One part of the agent (the node socket, the metrics endpoint, an event source …): started and
/// stopped synchronously. `bulwarkd` runs each as a swift-service-lifecycle `Service`
/// (`ComponentService`) in one `ServiceGroup`; tests and benchmarks start and stop them in order
/// with `Agent.start()`/`stop()`. The same objects either way.
protocol AgentComponent: Sendable {
    var name: String { get }
    /// Binds, opens or starts its thread; throws when it cannot (the agent does not start).
    func start() throws
    /// Closes what `start` opened and waits for its thread; safe to call when not started.
    func stop()
}

/// A component as a `Service`: started when the group runs it, stopped on graceful shutdown
/// (SIGTERM, SIGINT) or cancellation. Stopping blocks (closing channels, joining a thread), so it
/// runs off the cooperative pool.
struct ComponentService: Service, CustomStringConvertible {
    let component: any AgentComponent
    var description: String { component.name }

    func run() async throws {
        try component.start()
        try? await gracefulShutdown()
        await offThePool { [component] in component.stop() }
    }
}

/// Blocking work (joining a thread, closing channels, compiling and loading profiles) from an
/// async service, on a thread of its own instead of one of the cooperative pool's few.
func offThePool(_ work: @escaping @Sendable () -> Void) async {
    await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
        DispatchQueue.global().async {
            work()
            done.resume()
        }
    }
}

/// SIGHUP reloads the policies; on shutdown the policy watcher (started in `Agent.prepare`, before
/// the first read) is stopped.
struct PolicyService: Service, CustomStringConvertible {
    let agent: Agent
    var description: String { "policies" }

    func run() async throws {
        let agent = agent
        for await _ in await UnixSignalsSequence(trapping: .sighup).cancelOnGracefulShutdown() {
            agent.logger.info("SIGHUP: reloading policies")
            await offThePool { agent.reload() }
        }
        await offThePool { agent.stopWatcher() }
    }
}

/// A listener on an event loop of its own (the node socket; the metrics endpoint, which any
/// local user can reach, so a flood of it cannot stall the node socket). `open` binds it on the
/// loop and returns how to close it.
final class ListenerComponent: AgentComponent {
    let name: String
    let open: @Sendable (MultiThreadedEventLoopGroup) throws -> @Sendable () -> Void
    private let state = Mutex<(MultiThreadedEventLoopGroup, @Sendable () -> Void)?>(nil)

    init(_ name: String, open: @escaping @Sendable (MultiThreadedEventLoopGroup) throws -> @Sendable () -> Void) {
        self.name = name
        self.open = open
    }

    func start() throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let close = try open(group)
            state.withLock { $0 = (group, close) }
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
    }

    func stop() {
        guard
            let (group, close) = state.withLock({ s in
                defer { s = nil }
                return s
            })
        else { return }
        close()
        try? group.syncShutdownGracefully()
    }
}

/// A loop on its own thread (an event source, the gauges, the NRI connection): the kernel and
/// runtime interfaces it reads are blocking or poll-based.
final class WorkerComponent: AgentComponent {
    let name: String
    let make: @Sendable () -> Worker
    /// Called before the worker is asked to stop (e.g. close a connection it is blocked on).
    let interrupt: @Sendable () -> Void
    private let worker = Mutex<Worker?>(nil)

    init(_ name: String, interrupt: @escaping @Sendable () -> Void = {}, make: @escaping @Sendable () -> Worker) {
        self.name = name
        self.make = make
        self.interrupt = interrupt
    }

    func start() throws {
        let w = make()
        worker.withLock { $0 = w }
    }

    func stop() {
        guard
            let w = worker.withLock({ w in
                defer { w = nil }
                return w
            })
        else { return }
        interrupt()
        w.stop()
    }
}
