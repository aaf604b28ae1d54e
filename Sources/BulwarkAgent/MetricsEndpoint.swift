import NIOCore
import NIOHTTP1
import NIOPosix
import Prometheus

/// `GET /metrics` in Prometheus text format (swift-prometheus registry); anything else is 404.
///
/// Any local user can reach this port, so it is bounded like a public listener: its own event
/// loop (a flood cannot stall the node socket or the event pipeline), at most 16 connections,
/// one request per connection (answered, then closed: pipelined requests are never read, so an
/// unread answer cannot pile up), and 10 s for the whole exchange.
final class MetricsEndpoint: Sendable {
    let channel: any Channel
    static let limits = ListenerLimits(maxConnections: 16, requestSeconds: 10)

    static func start(host: String, port: Int, group: any EventLoopGroup, registry: PrometheusCollectorRegistry)
        throws -> MetricsEndpoint
    {
        let channel = try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 64)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(limits.handler())
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(
                        withPipeliningAssistance: false, withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(Handler(registry: registry))
                }
            }
            .bind(host: host, port: port).wait()
        return MetricsEndpoint(channel: channel)
    }

    init(channel: any Channel) { self.channel = channel }

    func stop() { try? channel.close().wait() }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let registry: PrometheusCollectorRegistry
        var head: HTTPRequestHead?

        init(registry: PrometheusCollectorRegistry) { self.registry = registry }

        var answered = false

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !answered else { return }  // one request per connection
            switch unwrapInboundIn(data) {
            case .head(let h): head = h
            case .body: break
            case .end:
                guard let h = head else { return }
                answered = true
                context.channel.setOption(.autoRead, value: false).whenComplete { _ in }
                var body: [UInt8] = []
                let status: HTTPResponseStatus
                if h.method == .GET && (h.uri == "/metrics" || h.uri.hasPrefix("/metrics?")) {
                    registry.emit(into: &body)
                    status = .ok
                } else {
                    body = Array("not found: try /metrics\n".utf8)
                    status = .notFound
                }
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "text/plain; version=0.0.4; charset=utf-8")
                headers.add(name: "Content-Length", value: "\(body.count)")
                headers.add(name: "Connection", value: "close")
                context.write(
                    wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: status, headers: headers))),
                    promise: nil)
                context.write(
                    wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
                context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
                    context.close(promise: nil)
                }
            }
        }
    }
}
