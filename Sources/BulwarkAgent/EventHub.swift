import BulwarkEvents
import BulwarkOCI
import Foundation
import Metrics
import Synchronization

/// Fans every violation event out to the node-socket subscribers, the rotating file and the
/// metrics. Publishing never blocks on a subscriber: each has a bounded number of events in
/// flight; beyond it events are dropped for that subscriber and counted.
public final class EventHub: Sendable {
    /// One node-socket subscriber. `send` hands bytes to its connection and calls `done` when they
    /// have been written (or the connection failed).
    public final class Subscription: Sendable {
        public let id: Int
        public let filter: EventFilter
        public let notices: Bool
        public let peer: String
        let limit: Int
        let send: @Sendable (_ bytes: [UInt8], _ done: @escaping @Sendable () -> Void) -> Void
        let pending = Atomic<Int>(0)
        public let delivered = Atomic<UInt64>(0)
        public let dropped = Atomic<UInt64>(0)

        init(
            id: Int, filter: EventFilter, notices: Bool, peer: String, limit: Int,
            send: @escaping @Sendable ([UInt8], @escaping @Sendable () -> Void) -> Void
        ) {
            self.id = id
            self.filter = filter
            self.notices = notices
            self.peer = peer
            self.limit = limit
            self.send = send
        }

        public var inFlight: Int { pending.load(ordering: .relaxed) }
    }

    public struct Counts: Sendable {
        public var byEnforcerAction: [String: UInt64] = [:]
        public var total: UInt64 = 0
        public var subscriberDrops: UInt64 = 0
        /// Kernel-side losses the sources saw (ring buffer full, kmsg overwritten).
        public var sourceDrops: [String: UInt64] = [:]
        public var unattributed: UInt64 = 0
    }

    struct State {
        var subscriptions: [Int: Subscription] = [:]
        var nextID = 1
        var recent: [(ViolationEvent, [UInt8])] = []
        var recentStart = 0
        var counts = Counts()
        /// swift-metrics counters by "enforcer action", made once (a factory lookup per event is not free)
        var metricCounters: [String: Counter] = [:]
    }

    public static let recentCapacity = 1000
    let queueLimit: Int
    let file: RotatingFile?
    private let state = Mutex(State())
    let metricDrops = Counter(label: "bulwark_subscriber_dropped_events_total")
    let metricSubscribers = Gauge(label: "bulwark_socket_subscribers")

    public init(queueLimit: Int, file: RotatingFile?) {
        self.queueLimit = queueLimit
        self.file = file
    }

    public func subscribe(
        filter: EventFilter, notices: Bool, peer: String,
        send: @escaping @Sendable ([UInt8], @escaping @Sendable () -> Void) -> Void
    ) -> Subscription {
        state.withLock { s in
            let sub = Subscription(
                id: s.nextID, filter: filter, notices: notices, peer: peer, limit: queueLimit, send: send)
            s.nextID += 1
            s.subscriptions[sub.id] = sub
            metricSubscribers.record(s.subscriptions.count)
            return sub
        }
    }

    public func unsubscribe(_ sub: Subscription) {
        state.withLock { s in
            s.subscriptions[sub.id] = nil
            metricSubscribers.record(s.subscriptions.count)
        }
    }

    public var subscriptions: [Subscription] { state.withLock { s in s.subscriptions.values.sorted { $0.id < $1.id } } }
    public var counts: Counts { state.withLock { $0.counts } }

    /// The last events (at most `recentCapacity`) that match a filter, oldest first.
    public func recent(matching filter: EventFilter, limit: Int) -> [[UInt8]] {
        state.withLock { s in
            let ordered = s.recent[s.recentStart...] + s.recent[..<s.recentStart]
            return Array(ordered.filter { filter.matches($0.0) }.suffix(limit).map(\.1))
        }
    }

    /// Told of every loss a source reports (the modeler: a model being recorded may miss them).
    private let lossObserver = Mutex<(@Sendable (String, UInt64) -> Void)?>(nil)
    public func observeLosses(_ observer: (@Sendable (String, UInt64) -> Void)?) {
        lossObserver.withLock { $0 = observer }
    }

    public func countSourceDrops(_ source: String, _ n: UInt64) {
        guard n > 0 else { return }
        state.withLock { $0.counts.sourceDrops[source, default: 0] += n }
        lossObserver.withLock { $0 }?(source, n)
        Counter(label: "bulwark_source_dropped_events_total", dimensions: [("source", source)]).increment(by: Int64(n))
    }

    /// Publishes a batch of events: one `time` for the batch, one serialization per event.
    public func publish(_ events: [ViolationEvent], now: Date = Date()) {
        guard !events.isEmpty else { return }
        let time = rfc3339(unixSeconds: Int64(now.timeIntervalSince1970))
        let lines = events.map { $0.line(time: time) }
        file?.write(lines)
        // counted per (enforcer, action) run, not per event: a batch is mostly one or two kinds
        var runs: [(enforcer: ViolationEvent.Enforcer, action: String, count: Int)] = []
        for e in events {
            if let last = runs.last, last.enforcer == e.enforcer, last.action == e.action {
                runs[runs.count - 1].count += 1
            } else {
                runs.append((e.enforcer, e.action, 1))
            }
        }
        let subs = state.withLock { s -> [Subscription] in
            s.counts.total += UInt64(events.count)
            for run in runs {
                let key = "\(run.enforcer.rawValue) \(run.action)"
                s.counts.byEnforcerAction[key, default: 0] += UInt64(run.count)
                if s.metricCounters[key] == nil {
                    s.metricCounters[key] = Counter(
                        label: "bulwark_events_total",
                        dimensions: [("enforcer", run.enforcer.rawValue), ("action", run.action)])
                }
                s.metricCounters[key]?.increment(by: Int64(run.count))
            }
            for (e, line) in zip(events, lines) {
                if e.container.containerID.isEmpty { s.counts.unattributed += 1 }
                if s.recent.count < Self.recentCapacity {
                    s.recent.append((e, line))
                } else {
                    s.recent[s.recentStart] = (e, line)
                    s.recentStart = (s.recentStart + 1) % Self.recentCapacity
                }
            }
            return Array(s.subscriptions.values)
        }
        for sub in subs {
            deliver(
                sub.filter.isEmpty ? lines : zip(events, lines).filter { sub.filter.matches($0.0) }.map(\.1), to: sub)
        }
    }

    /// Agent notices (policy rejected …) for subscribers that asked for them; not vArmor events.
    public func publishNotice(_ notice: JSONValue) {
        let line = notice.serialized() + [0x0A]
        for sub in subscriptions where sub.notices { deliver([line], to: sub) }
    }

    /// Admits as many lines as the subscriber's bound allows (oldest first) and drops the rest.
    func deliver(_ lines: [[UInt8]], to sub: Subscription) {
        guard !lines.isEmpty else { return }
        var admitted = 0
        var current = sub.pending.load(ordering: .relaxed)
        while true {
            admitted = max(0, min(lines.count, sub.limit - current))
            let (exchanged, original) = sub.pending.compareExchange(
                expected: current, desired: current + admitted, ordering: .acquiringAndReleasing)
            if exchanged { break }
            current = original
        }
        let dropped = lines.count - admitted
        if dropped > 0 {
            sub.dropped.wrappingAdd(UInt64(dropped), ordering: .relaxed)
            state.withLock { $0.counts.subscriberDrops += UInt64(dropped) }
            metricDrops.increment(by: Int64(dropped))
        }
        guard admitted > 0 else { return }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(lines.prefix(admitted).reduce(0) { $0 + $1.count })
        for line in lines.prefix(admitted) { bytes.append(contentsOf: line) }
        let n = admitted
        sub.send(bytes) {
            sub.pending.wrappingSubtract(n, ordering: .acquiringAndReleasing)
            sub.delivered.wrappingAdd(UInt64(n), ordering: .relaxed)
        }
    }

}
