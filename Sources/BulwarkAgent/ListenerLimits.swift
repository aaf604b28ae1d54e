import NIOCore
import Synchronization

/// Bounds for a listener: at most `maxConnections` at once (the excess are closed as they are
/// accepted, so one listener cannot use up the agent's descriptors), and a deadline by which a
/// connection must have finished its request (`requestSeconds`) or closes. NIO's accept back-off
/// (on EMFILE) stays in force underneath.
final class ListenerLimits: Sendable {
    let maxConnections: Int
    let requestSeconds: Int64
    private let open = Atomic<Int>(0)

    init(maxConnections: Int, requestSeconds: Int64) {
        self.maxConnections = maxConnections
        self.requestSeconds = requestSeconds
    }

    /// The first handler of every accepted connection.
    func handler() -> Handler { Handler(limits: self) }

    final class Handler: ChannelInboundHandler, RemovableChannelHandler {
        typealias InboundIn = NIOAny
        let limits: ListenerLimits
        var admitted = false
        var deadline: Scheduled<Void>?

        init(limits: ListenerLimits) { self.limits = limits }

        func channelActive(context: ChannelHandlerContext) {
            let count = limits.open.wrappingAdd(1, ordering: .relaxed).newValue
            admitted = true
            guard count <= limits.maxConnections else {
                context.close(promise: nil)
                return
            }
            let channel = context.channel
            deadline = context.eventLoop.scheduleTask(in: .seconds(limits.requestSeconds)) {
                channel.close(promise: nil)
            }
            context.fireChannelActive()
        }

        func channelInactive(context: ChannelHandlerContext) {
            deadline?.cancel()
            if admitted {
                limits.open.wrappingSubtract(1, ordering: .relaxed)
                admitted = false
            }
            context.fireChannelInactive()
        }

        /// The request is in: a long-lived answer (an event subscription) may outlive the deadline.
        func requestComplete() {
            deadline?.cancel()
            deadline = nil
        }
    }
}
