import BulwarkNRI
import Foundation
import SwiftProtobuf

/// The runtime side of NRI, in Swift, for tests and benchmarks: listens on a unix socket like
/// containerd/CRI-O (`/var/run/nri/nri.sock`), speaks the real multiplexer and ttrpc, serves the
/// Runtime service (RegisterPlugin, UpdateContainers) on connection 2 and calls the plugin's
/// service on connection 1. It frames with the same `Mux`/`TTRPC` codecs as the plugin, so it does
/// not check them: the byte fixtures of reference/nri-oci.md §3.8 in BulwarkNRITests do.
public final class RuntimePeer: @unchecked Sendable {
    public let path: String
    let listener: Int32
    /// Delay before answering RegisterPlugin, for sessions accepted from now on.
    public var registerDelay = 0.0

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    public init(path: String) throws {
        self.path = path
        unlink(path)
        listener = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            for (i, b) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = b }
        }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(listener, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0, listen(listener, 8) == 0 else {
            close(listener)
            throw Failure(description: "cannot listen on \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(listener)
        unlink(path)
    }

    /// Waits for a plugin to connect and register.
    public func accept(timeout: Double = 10) throws -> Session {
        var p = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, Int32(timeout * 1000)) > 0 else { throw Failure(description: "no plugin connected") }
        let fd = Glibc.accept(listener, nil, nil)
        guard fd >= 0 else { throw Failure(description: "accept: \(String(cString: strerror(errno)))") }
        let s = Session(fd: fd, registerDelay: registerDelay)
        try s.waitForRegistration(timeout: timeout)
        return s
    }

    /// One plugin connection.
    public final class Session: @unchecked Sendable {
        public let fd: Int32
        let lock = NSLock()
        var client = TTRPC.Client()
        var waiting: [UInt32: (DispatchSemaphore, Box)] = [:]
        let registered = DispatchSemaphore(value: 0)
        public private(set) var pluginName = ""
        public private(set) var pluginIndex = ""
        public private(set) var pluginNRIVersion = ""
        public private(set) var updates: [Nri_Pkg_Api_V1alpha1_UpdateContainersRequest] = []
        let closed = DispatchSemaphore(value: 0)
        public private(set) var isClosed = false
        /// Delay before answering RegisterPlugin (timeout tests).
        let registerDelay: Double

        final class Box: @unchecked Sendable {
            var result: Result<[UInt8], TTRPC.CallFailure>?
        }

        init(fd: Int32, registerDelay: Double = 0) {
            self.fd = fd
            self.registerDelay = registerDelay
            let t = Thread { [self] in read() }
            t.start()
        }

        public func close() {
            lock.withLock { if !isClosed { shutdown(fd, Int32(SHUT_RDWR)) } }
        }

        func waitForRegistration(timeout: Double) throws {
            guard registered.wait(timeout: .now() + timeout) == .success else {
                throw Failure(description: "the plugin did not register")
            }
        }

        /// Waits until the plugin closes the connection.
        public func waitClosed(timeout: Double) -> Bool { closed.wait(timeout: .now() + timeout) == .success }

        /// Raw bytes onto the socket (malformed-input tests).
        public func sendRaw(_ bytes: [UInt8]) {
            lock.withLock {
                guard !isClosed else { return }
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }

        func write(connection: UInt32, _ message: [UInt8]) {
            let bytes = Mux.encode(connection: connection, message)
            lock.withLock {
                // never after close: the fd number may belong to something else by then
                guard !isClosed else { return }
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }

        /// A call on the plugin service (connection 1) with the runtime's 2 s budget.
        public func callRaw(_ method: String, _ payload: [UInt8], timeout: Double = 2) -> Result<
            [UInt8], TTRPC.CallFailure
        > {
            let sem = DispatchSemaphore(value: 0)
            let box = Box()
            let (_, bytes) = lock.withLock { () -> (UInt32, [UInt8]) in
                let r = client.request(
                    service: "nri.pkg.api.v1alpha1.Plugin", method: method, payload: payload,
                    timeoutNanoseconds: Int64(timeout * 1e9))
                waiting[r.stream] = (sem, box)
                return r
            }
            write(connection: Mux.pluginService, bytes)
            guard sem.wait(timeout: .now() + timeout) == .success else {
                return .failure(.init(code: 4, message: "\(method): deadline exceeded"))
            }
            return box.result ?? .failure(.init(code: 14, message: "closed"))
        }

        public func call<R: SwiftProtobuf.Message>(
            _ method: String, _ request: some SwiftProtobuf.Message, as: R.Type = R.self, timeout: Double = 2
        ) throws -> R {
            let payload: [UInt8] = try request.serializedBytes()
            switch callRaw(method, payload, timeout: timeout) {
            case .success(let bytes): return try R(serializedBytes: bytes)
            case .failure(let f): throw f
            }
        }

        func read() {
            var mux = Mux.Decoder()
            var pluginSide = TTRPC.Decoder()
            var runtimeSide = TTRPC.Decoder()
            var server = TTRPC.Server()
            var buf = [UInt8](repeating: 0, count: 65536)
            defer {
                lock.withLock {
                    isClosed = true
                    Glibc.close(fd)
                    for (_, w) in waiting {
                        w.1.result = .failure(.init(code: 14, message: "closed"))
                        w.0.signal()
                    }
                    waiting = [:]
                }
                closed.signal()
            }
            while true {
                let n = Glibc.read(fd, &buf, buf.count)
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { return }
                mux.feed(buf[0..<n])
                guard let frames = try? Self.drain(&mux) else { return }
                for f in frames {
                    if f.connection == Mux.runtimeService {
                        runtimeSide.feed(f.payload)
                        while let m = runtimeSide.next() {
                            guard case .call(let stream, _, let method, let payload, _) = server.receive(m) else {
                                continue
                            }
                            serve(stream: stream, method: method, payload: payload)
                        }
                    } else if f.connection == Mux.pluginService {
                        pluginSide.feed(f.payload)
                        while case .message(let m)? = pluginSide.next() {
                            let w = lock.withLock { waiting.removeValue(forKey: m.stream) }
                            if let (sem, box) = w {
                                box.result = TTRPC.Client.outcome(m)
                                sem.signal()
                            }
                        }
                    }
                }
            }
        }

        static func drain(_ mux: inout Mux.Decoder) throws -> [Mux.Frame] {
            var out: [Mux.Frame] = []
            while let f = try mux.next() { out.append(f) }
            return out
        }

        func serve(stream: UInt32, method: String, payload: [UInt8]) {
            switch method {
            case "RegisterPlugin":
                if let r = try? Nri_Pkg_Api_V1alpha1_RegisterPluginRequest(serializedBytes: payload) {
                    pluginName = r.pluginName
                    pluginIndex = r.pluginIdx
                    pluginNRIVersion = r.nriVersion
                }
                let delay = registerDelay
                // like the Go adaptation: the waiting start() is signalled before the reply is sent
                registered.signal()
                let reply = TTRPC.Server.response(stream: stream, payload: [])
                if delay > 0 {
                    DispatchQueue.global().asyncAfter(deadline: .now() + delay) { [self] in
                        write(connection: Mux.runtimeService, reply)
                    }
                } else {
                    write(connection: Mux.runtimeService, reply)
                }
            case "UpdateContainers":
                if let r = try? Nri_Pkg_Api_V1alpha1_UpdateContainersRequest(serializedBytes: payload) {
                    lock.withLock { updates.append(r) }
                }
                let out: [UInt8] = (try? Nri_Pkg_Api_V1alpha1_UpdateContainersResponse().serializedBytes()) ?? []
                write(connection: Mux.runtimeService, TTRPC.Server.response(stream: stream, payload: out))
            default:
                write(
                    connection: Mux.runtimeService,
                    TTRPC.Server.response(stream: stream, code: .unimplemented, message: "method \(method)"))
            }
        }

        // MARK: The runtime's sequence

        public func configure(runtime: String, version: String, nriVersion: String) throws
            -> Nri_Pkg_Api_V1alpha1_ConfigureResponse
        {
            var r = Nri_Pkg_Api_V1alpha1_ConfigureRequest()
            r.runtimeName = runtime
            r.runtimeVersion = version
            r.nriVersion = nriVersion
            r.registrationTimeout = 5000
            r.requestTimeout = 2000
            return try call("Configure", r)
        }

        public func synchronize(pods: [NRIPod], containers: [NRIContainer], more: Bool) throws
            -> Nri_Pkg_Api_V1alpha1_SynchronizeResponse
        {
            var r = Nri_Pkg_Api_V1alpha1_SynchronizeRequest()
            r.pods = pods
            r.containers = containers
            r.more = more
            return try call("Synchronize", r)
        }

        public func createContainer(pod: NRIPod, container: NRIContainer) throws
            -> Nri_Pkg_Api_V1alpha1_CreateContainerResponse
        {
            var r = Nri_Pkg_Api_V1alpha1_CreateContainerRequest()
            r.pod = pod
            r.container = container
            return try call("CreateContainer", r)
        }
    }
}

/// A pod as the runtime describes it.
public func nriPod(
    name: String, namespace: String, labels: [String: String] = [:], annotations: [String: String] = [:],
    ips: [String] = []
) -> NRIPod {
    var p = NRIPod()
    p.ips = ips
    p.id = "sandbox-\(namespace)-\(name)"
    p.name = name
    p.namespace = namespace
    p.uid = "uid-\(name)"
    p.labels = labels
    p.annotations = annotations
    return p
}

public func nriContainer(
    pod: NRIPod, name: String, pid: UInt32 = 0, state: Nri_Pkg_Api_V1alpha1_ContainerState = .containerCreated
) -> NRIContainer {
    var c = NRIContainer()
    c.id = "ctr-\(pod.name)-\(name)"
    c.podSandboxID = pod.id
    c.name = name
    c.pid = pid
    c.state = state
    c.args = ["/bin/sh"]
    return c
}

extension RuntimePeer.Session {
    /// A session on a socket the test made itself (a pre-launched plugin's socketpair).
    public static func adopt(fd: Int32) -> RuntimePeer.Session { RuntimePeer.Session(fd: fd) }

    public func waitRegistered(timeout: Double) throws { try waitForRegistration(timeout: timeout) }
}
