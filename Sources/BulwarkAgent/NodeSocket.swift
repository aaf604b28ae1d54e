import BulwarkClient
import BulwarkEvents
import BulwarkOCI
import BulwarkSystem
import Foundation
import Logging
import NIOCore
import NIOPosix

/// The node socket (`/run/bulwark/bulwark.sock`): newline-delimited JSON. A client sends one
/// request line (`ControlRequest` in BulwarkClient, the API typed once for agent and CLI) and
/// reads the answer: one line `{"ok":true,…}` or `{"ok":false,"error":"…"}`; `events` then
/// streams one vArmor event per line (and closes after the recent ones unless `follow`).
/// The socket is 0600 (0660 with `socketGroup`); each peer is also checked with SO_PEERCRED.
public final class NodeSocket: Sendable {
    public let path: String
    let channel: any Channel

    /// SO_PEERCRED's `struct ucred`.
    struct PeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// At most 256 clients (subscribers included); a request line must arrive within 10 s.
    static let limits = ListenerLimits(maxConnections: 256, requestSeconds: 10)

    public static func start(
        path: String, group: String, group eventLoopGroup: any EventLoopGroup, logger: Logger,
        handle: @escaping @Sendable (Request, any Channel) -> Void
    ) throws -> NodeSocket {
        let gid = try resolveGroup(group)
        try prepare(path)
        let bootstrap = ServerBootstrap(group: eventLoopGroup)
            .serverChannelOption(.backlog, value: 128)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let limit = limits.handler()
                    try channel.pipeline.syncOperations.addHandler(limit)
                    try channel.pipeline.syncOperations.addHandler(
                        RequestHandler(allowedGroup: gid, logger: logger, limit: limit, handle: handle))
                }
            }
        // created 0600 from the start (no window in which others could connect)
        let old = umask(0o177)
        let channel: any Channel
        do {
            channel = try bootstrap.bind(unixDomainSocketPath: path).wait()
        } catch {
            umask(old)
            throw Failure(description: "cannot listen on \(path): \(error)")
        }
        umask(old)
        if let gid {
            guard chown(path, 0, gid) == 0, chmod(path, 0o660) == 0 else {
                try? channel.close().wait()
                throw Failure(description: "cannot give \(path) to group \(group): \(Errno.current)")
            }
        }
        return NodeSocket(path: path, channel: channel)
    }

    init(path: String, channel: any Channel) {
        self.path = path
        self.channel = channel
    }

    public func stop() {
        try? channel.close().wait()
        unlink(path)
    }

    static func resolveGroup(_ group: String) throws -> gid_t? {
        guard !group.isEmpty else { return nil }
        if let n = gid_t(group) { return n }
        guard let g = getgrnam(group) else {
            throw Failure(description: "socketGroup \"\(group)\" is not a group on this node (getent group \(group))")
        }
        return g.pointee.gr_gid
    }

    /// Creates the directory (0755) and removes a stale socket; refuses when another agent is
    /// listening or when the path is not a socket.
    static func prepare(_ path: String) throws {
        // a directory another user can write to lets that user swap the socket
        do {
            try TrustedDirectory.ensure((path as NSString).deletingLastPathComponent)
        } catch {
            throw Failure(description: "cannot listen on \(path): \(error)")
        }
        var st = stat()
        guard lstat(path, &st) == 0 else { return }
        guard (st.st_mode & S_IFMT) == S_IFSOCK else {
            throw Failure(description: "\(path) exists and is not a socket; remove it or set socketPath")
        }
        if let fd = try? UnixSocket.connect(path: path) {
            close(fd)
            throw Failure(description: "another bulwarkd is listening on \(path)")
        }
        unlink(path)
    }

    // MARK: Requests

    public struct Request: Sendable {
        public var request: ControlRequest
        public var peer: String
    }

    final class RequestHandler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer
        static let maxRequest = 65536

        let allowedGroup: gid_t?
        let logger: Logger
        let limit: ListenerLimits.Handler
        let handle: @Sendable (Request, any Channel) -> Void
        var buffer: [UInt8] = []
        var peer = "unknown"
        var authorized = false
        var done = false

        init(
            allowedGroup: gid_t?, logger: Logger, limit: ListenerLimits.Handler,
            handle: @escaping @Sendable (Request, any Channel) -> Void
        ) {
            self.allowedGroup = allowedGroup
            self.logger = logger
            self.limit = limit
            self.handle = handle
        }

        func channelActive(context: ChannelHandlerContext) {
            context.fireChannelActive()
            guard let provider = context.channel as? any SocketOptionProvider else {
                refuse(context, "cannot identify the peer")
                return
            }
            // completes at once on the channel's own event loop
            let future: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
                level: NIOBSDSocket.OptionLevel(rawValue: SOL_SOCKET),
                name: NIOBSDSocket.Option(rawValue: SO_PEERCRED))
            future.assumeIsolated().whenComplete { result in
                switch result {
                case .failure(let error):
                    self.refuse(context, "cannot identify the peer: \(error)")
                case .success(let creds):
                    self.admit(context, creds)
                }
            }
        }

        func admit(_ context: ChannelHandlerContext, _ creds: PeerCredentials) {
            peer = "uid=\(creds.uid) gid=\(creds.gid) pid=\(creds.pid)"
            if creds.uid == 0 || creds.uid == geteuid() || isMember(creds) {
                authorized = true
                process(context)
            } else {
                logger.warning("node socket: peer refused", metadata: ["peer": "\(peer)"])
                refuse(
                    context,
                    "permission denied: \(peer) may not use the node socket (root only"
                        + (allowedGroup.map { " or group \($0)" } ?? "") + ")")
            }
        }

        func isMember(_ c: PeerCredentials) -> Bool {
            guard let g = allowedGroup else { return false }
            if c.gid == g { return true }
            // supplementary groups of the connecting process
            guard let status = try? String(contentsOfFile: "/proc/\(c.pid)/status", encoding: .utf8),
                let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Groups:") })
            else { return false }
            return line.split(separator: "\t").dropFirst().joined(separator: " ").split(separator: " ")
                .contains { gid_t($0) == g }
        }

        func refuse(_ context: ChannelHandlerContext, _ message: String) {
            done = true
            let line = ControlAnswer.failure(message)
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: line)), promise: nil)
            context.close(promise: nil)
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !done else { return }
            var bytes = unwrapInboundIn(data)
            buffer += bytes.readBytes(length: bytes.readableBytes) ?? []
            process(context)
        }

        func process(_ context: ChannelHandlerContext) {
            guard authorized, !done else { return }
            guard let nl = buffer.firstIndex(of: 0x0A) else {
                if buffer.count > Self.maxRequest { refuse(context, "request longer than \(Self.maxRequest) bytes") }
                return
            }
            done = true
            limit.requestComplete()
            let line = buffer[..<nl]
            guard case .object(let body)? = try? JSONValue.parse(line) else {
                refuse(context, "a request is one JSON object with \"op\" on one line, e.g. {\"op\":\"status\"}")
                return
            }
            let request: ControlRequest
            do {
                request = try ControlRequest(json: body)
            } catch {
                refuse(context, error.description)
                return
            }
            handle(Request(request: request, peer: peer), context.channel)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
