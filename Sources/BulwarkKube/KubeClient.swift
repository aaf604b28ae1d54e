internal import AsyncHTTPClient
import BulwarkCluster
import BulwarkPolicy
import BulwarkSystem
internal import NIOCore
internal import NIOHTTP1
internal import NIOSSL
import Synchronization

/// HTTPS to the API server: the thin layer under `ListWatch` (which does the bookkeeping). Every
/// request has a deadline and every body a size bound; the bearer token is re-read from its file
/// at most a minute old (service-account tokens rotate) and at once after a 401.
public final class KubeClient: Sendable {
    public let endpoint: KubeEndpoint
    let http: HTTPClient
    let token: Mutex<(value: String?, readAt: ContinuousClock.Instant?)>
    /// A list answer larger than this is refused (the page size keeps answers far below it).
    public static let maxListBytes = 64 << 20

    public init(endpoint: KubeEndpoint) throws(KubeAPIError) {
        self.endpoint = endpoint
        var tls = TLSConfiguration.makeClientConfiguration()
        do {
            if let pem = endpoint.caPEM {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(pem))
            } else if let file = endpoint.caFile {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(try Self.read(file)))
            }
            if endpoint.insecureSkipTLSVerify { tls.certificateVerification = .none }
            let cert = try endpoint.clientCertPEM ?? endpoint.clientCertFile.map(Self.read)
            let key = try endpoint.clientKeyPEM ?? endpoint.clientKeyFile.map(Self.read)
            if let cert, let key {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(cert).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            }
        } catch let e as KubeAPIError {
            throw e
        } catch {
            throw KubeAPIError(status: nil, "the API server's CA or the client certificate is not usable: \(error)")
        }
        var config = HTTPClient.Configuration(tlsConfiguration: tls)
        config.timeout = .init(connect: .seconds(10))
        config.redirectConfiguration = .disallow
        // every watch holds an HTTP/1.1 connection (HTTP/2, when the server offers it, multiplexes
        // them): room for the watches WatchScope allows (3 address resources × its namespaces, the
        // policies, models and this node's pods) beside Events and model writes
        config.connectionPool = .init(
            idleTimeout: .seconds(60),
            concurrentHTTP1ConnectionsPerHostSoftLimit: 3 * WatchScope.maxParts + 16)
        http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: config)
        token = Mutex((endpoint.token, nil))
    }

    static func read(_ path: String) throws(KubeAPIError) -> [UInt8] {
        do { return try RegularFile.read(path, maxBytes: 1 << 20) } catch {
            throw KubeAPIError(status: nil, "cannot read \(path): \(error)")
        }
    }

    public func shutdown() async { try? await http.shutdown() }

    /// The bearer token: the fixed one, or the token file's content (cached for a minute).
    func bearer(refresh: Bool = false) -> String? {
        guard let file = endpoint.tokenFile else { return endpoint.token }
        let now = ContinuousClock.now
        if !refresh,
            let cached = token.withLock({ t in
                t.readAt.map { now - $0 < .seconds(60) } == true ? t.value : nil
            })
        {
            return cached
        }
        let value = (try? Self.read(file)).map {
            String(decoding: $0, as: UTF8.self).trimmingWhitespace()
        }
        token.withLock { $0 = (value, now) }
        return value
    }

    func request(_ path: String, _ query: [(String, String)], method: HTTPMethod = .GET) -> HTTPClientRequest {
        var url = endpoint.server + path
        if !query.isEmpty { url += "?" + query.map { "\($0.0)=\(Self.escape($0.1))" }.joined(separator: "&") }
        var r = HTTPClientRequest(url: url)
        r.method = method
        r.headers.add(name: "Accept", value: "application/json")
        r.headers.add(name: "User-Agent", value: "bulwarkd")
        if let t = bearer() { r.headers.add(name: "Authorization", value: "Bearer \(t)") }
        return r
    }

    static func escape(_ s: String) -> String {
        var out = ""
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(b))
            default:
                out += "%" + String(b, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }

    /// GET with a bounded body.
    public func get(_ path: String, query: [(String, String)] = [], timeout seconds: Int64 = 60) async throws
        -> (status: Int, body: [UInt8])
    {
        let response = try await http.execute(request(path, query), timeout: .seconds(seconds))
        if response.status.code == 401 { _ = bearer(refresh: true) }
        let body = try await response.body.collect(upTo: Self.maxListBytes)
        return (Int(response.status.code), Array(buffer: body))
    }

    /// POST a JSON object (an Event, a new object).
    public func post(_ path: String, json: [UInt8], timeout seconds: Int64 = 15) async throws
        -> (status: Int, body: [UInt8])
    {
        try await send(.POST, path, json: json, timeout: seconds)
    }

    /// PUT a JSON object (an update, conditional on its `metadata.resourceVersion`).
    public func put(_ path: String, json: [UInt8], timeout seconds: Int64 = 15) async throws
        -> (status: Int, body: [UInt8])
    {
        try await send(.PUT, path, json: json, timeout: seconds)
    }

    func send(_ method: HTTPMethod, _ path: String, json: [UInt8], timeout seconds: Int64) async throws
        -> (status: Int, body: [UInt8])
    {
        var r = request(path, [], method: method)
        r.headers.add(name: "Content-Type", value: "application/json")
        r.body = .bytes(ByteBuffer(bytes: json))
        let response = try await http.execute(r, timeout: .seconds(seconds))
        if response.status.code == 401 { _ = bearer(refresh: true) }
        // the object written comes back (a model up to etcd's 1.5 MiB)
        let body = try await response.body.collect(upTo: 4 << 20)
        return (Int(response.status.code), Array(buffer: body))
    }

    /// A watch: `onLines` gets each chunk's complete lines and returns false to stop reading.
    /// Returns the HTTP status and, for a refusal, its body.
    public func stream(
        _ path: String, query: [(String, String)], timeout seconds: Int64, onLines: ([[UInt8]]) -> Bool
    ) async throws -> (status: Int, body: [UInt8]) {
        let response = try await http.execute(request(path, query), timeout: .seconds(seconds))
        guard response.status == .ok else {
            if response.status.code == 401 { _ = bearer(refresh: true) }
            let body = (try? await response.body.collect(upTo: 1 << 20)).map { Array(buffer: $0) } ?? []
            return (Int(response.status.code), body)
        }
        var lines = WatchLines()
        for try await chunk in response.body {
            guard let complete = lines.feed(chunk.readableBytesView) else {
                throw KubeAPIError(status: nil, "a watch event is larger than \(lines.maxLine) bytes")
            }
            if !complete.isEmpty && !onLines(complete) { break }
        }
        return (200, [])
    }
}

extension String {
    fileprivate func trimmingWhitespace() -> String {
        let ws: Set<Character> = [" ", "\n", "\r", "\t"]
        return String(self.drop { ws.contains($0) }.reversed().drop { ws.contains($0) }.reversed())
    }
    fileprivate func leftPadded(to n: Int) -> String { String(repeating: "0", count: max(0, n - count)) + self }
}

extension KubeEndpoint {
    /// The endpoint of a kubeconfig file (node config `kubeconfig`, `policy compile --kubeconfig`).
    public static func load(kubeconfig path: String) throws(KubeAPIError) -> KubeEndpoint {
        let text = String(decoding: try KubeClient.read(path), as: UTF8.self)
        do { return try Kubeconfig.parse(text, file: path) } catch {
            throw KubeAPIError(status: nil, error.description)
        }
    }
}
