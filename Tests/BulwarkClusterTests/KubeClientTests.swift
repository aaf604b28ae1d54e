import BulwarkCluster
import BulwarkKube
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import Foundation
import KubeTestServer
import Logging
import Synchronization
import Testing

/// The API client against `KubeTestServer`, a stand-in that behaves as the real API server does on
/// the wire (no real one can run on these machines): TLS with the cluster CA and a bearer token,
/// pages, chunked watch streams with bookmarks, 410 after compaction, 401 and 403.
@Suite("Kubernetes API client (against the stand-in API server)", .serialized)
struct KubeClientTests {
    /// The client's tasks run here, off the cooperative pool (see `DedicatedExecutor`).
    static let executor = DedicatedExecutor("kube-client-tests")

    static func server() throws -> KubeTestServer {
        let dir = NSTemporaryDirectory() + "kube-tls-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return try KubeTestServer(tls: KubeTestServer.makeTLS(in: dir))
    }

    static func endpoint(_ s: KubeTestServer, token: String? = nil) -> KubeEndpoint {
        var e = KubeEndpoint(server: s.server)
        e.caPEM = Array(s.tls.caPEM.utf8)
        e.token = token ?? s.token
        return e
    }

    static func pod(_ name: String, ip: String, ns: String = "demo") -> JSONValue {
        try! JSONValue.parse(
            #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"\#(ns)","labels":{"app":"web"}},"status":{"podIP":"\#(ip)","podIPs":[{"ip":"\#(ip)"}]}}"#
        )
    }

    final class Seen: Sendable {
        let objects = Mutex<[String: JSONValue]>([:])
        let errors = Mutex<[String]>([])
        let replaced = Mutex(0)
        /// Waits without blocking a thread of the cooperative pool (the client runs on it).
        func wait(_ seconds: Double = 30, _ condition: ([String: JSONValue]) -> Bool) async -> Bool {
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if objects.withLock({ condition($0) }) { return true }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return objects.withLock { condition($0) }
        }
    }

    static func reflect(
        _ client: KubeClient, _ seen: Seen, pageSize: Int = 2, watchSeconds: Int = 300,
        namespace: String? = nil, selectors: [(String, String)] = []
    ) -> Task<Void, Never> {
        var logger = Logger(label: "kube-test")
        logger.logLevel = .critical
        return Task(executorPreference: executor) {
            await Reflector.run(
                client: client, resource: .pods, namespace: namespace, selectors: selectors, pageSize: pageSize,
                watchSeconds: watchSeconds, logger: logger,
                onChange: { changes, all in
                    seen.objects.withLock { $0 = all }
                    if changes.contains(where: { if case .replaced = $0 { true } else { false } }) {
                        seen.replaced.withLock { $0 += 1 }
                    }
                }, onError: { e in seen.errors.withLock { $0.append(e.description) } })
        }
    }

    /// A list in pages, then a watch: objects added, changed and deleted after the list arrive; a
    /// watch the server ends is resumed from the last version (nothing missed, nothing twice).
    @Test func listsInPagesAndFollowsTheWatch() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await listsInPagesAndFollowsTheWatchBody() }
    }

    func listsInPagesAndFollowsTheWatchBody() async throws {
        let s = try Self.server()
        defer { s.stop() }
        for i in 0..<5 { s.apply("/api/v1/pods", Self.pod("p\(i)", ip: "10.0.0.\(i)")) }
        let client = try KubeClient(endpoint: Self.endpoint(s))
        let seen = Seen()
        let task = Self.reflect(client, seen, pageSize: 2, watchSeconds: 1)
        #expect(await seen.wait { $0.count == 5 })
        #expect(s.requests.filter { $0.contains("limit=2") }.count == 3, "\(s.requests)")
        #expect(s.requests.contains { $0.contains("continue=") })
        s.apply("/api/v1/pods", Self.pod("p5", ip: "10.0.0.5"))
        s.apply("/api/v1/pods", Self.pod("p0", ip: "10.0.1.0"))
        s.delete("/api/v1/pods", Self.pod("p1", ip: ""))
        #expect(
            await seen.wait {
                $0.count == 5 && $0["demo/p5"] != nil && $0["demo/p1"] == nil
                    && $0["demo/p0"]?.object?["status"]?.object?["podIP"] == .string("10.0.1.0")
            })
        // the server ends each watch after a second: resumed from the last version, no relist
        try await Task.sleep(for: .milliseconds(2500))
        s.apply("/api/v1/pods", Self.pod("p6", ip: "10.0.0.6"))
        #expect(await seen.wait { $0["demo/p6"] != nil })
        #expect(seen.replaced.withLock { $0 } == 1, "a resumed watch must not list again")
        #expect(s.requests.filter { $0.contains("watch=1") }.count >= 2)
        #expect(s.requests.contains { $0.contains("allowWatchBookmarks=true") })
        task.cancel()
        await client.shutdown()
    }

    /// A watch with a label selector in a namespace (as the agent asks for a policy's `toPods`):
    /// the list holds the matching pods only; a pod whose labels stop matching is DELETED from
    /// the watch and one that starts matching ADDED, as the API server's watch cache sends them.
    @Test func aSelectorsWatchFollowsObjectsInAndOut() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await aSelectorsWatchFollowsObjectsInAndOutBody() }
    }

    func aSelectorsWatchFollowsObjectsInAndOutBody() async throws {
        let s = try Self.server()
        defer { s.stop() }
        func pod(_ name: String, app: String, ns: String = "demo") -> JSONValue {
            try! JSONValue.parse(
                #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"\#(ns)","labels":{"app":"\#(app)"}},"status":{"podIP":"10.0.0.1"}}"#
            )
        }
        s.apply("/api/v1/pods", pod("a", app: "db"))
        s.apply("/api/v1/pods", pod("b", app: "web"))
        s.apply("/api/v1/pods", pod("c", app: "db", ns: "other"))
        let client = try KubeClient(endpoint: Self.endpoint(s))
        let seen = Seen()
        let part = WatchScope.parts(.pods(namespace: "demo", selector: LabelSelector(matchLabels: ["app": "db"])))[0]
        let task = Self.reflect(client, seen, namespace: part.namespace, selectors: part.query)
        #expect(await seen.wait { Set($0.keys) == ["demo/a"] })
        s.apply("/api/v1/pods", pod("a", app: "web"))
        #expect(await seen.wait { $0.isEmpty }, "a left the selector")
        s.apply("/api/v1/pods", pod("b", app: "db"))
        s.apply("/api/v1/pods", pod("c", app: "db", ns: "other"))
        #expect(await seen.wait { Set($0.keys) == ["demo/b"] }, "b joined it")
        #expect(seen.replaced.withLock { $0 } == 1, "followed by the watch, not by listing again")
        #expect(s.requests.contains { $0.hasPrefix("GET /api/v1/namespaces/demo/pods?labelSelector=app%3Ddb&watch=1") })
        // a selector the API server cannot parse is a 400, reported
        let bad = Seen()
        let badTask = Self.reflect(client, bad, selectors: [("labelSelector", "app in db")])
        #expect(await bad.wait { _ in !bad.errors.withLock { $0 }.isEmpty })
        #expect(bad.errors.withLock { $0 }.first?.contains("400") == true, "\(bad.errors.withLock { $0 })")
        badTask.cancel()
        task.cancel()
        await client.shutdown()
    }

    /// A watch from a compacted version gets 410 Gone: the client lists again and catches up.
    @Test func goneAfterCompactionListsAgain() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await goneAfterCompactionListsAgainBody() }
    }

    func goneAfterCompactionListsAgainBody() async throws {
        let s = try Self.server()
        defer { s.stop() }
        s.bookmarkSeconds = 30  // no bookmark moves the client's version meanwhile
        s.apply("/api/v1/pods", Self.pod("a", ip: "10.0.0.1"))
        let client = try KubeClient(endpoint: Self.endpoint(s))
        let seen = Seen()
        let task = Self.reflect(client, seen, watchSeconds: 1)
        #expect(await seen.wait { $0.count == 1 })
        // other resources' writes move the revision past the client's, and history is compacted:
        // the client's next watch (the server ends each after a second) gets 410 Gone
        s.compact(advancing: 50)
        #expect(await seen.wait { _ in seen.replaced.withLock { $0 } >= 2 })
        #expect(seen.objects.withLock { $0.count } == 1)
        s.apply("/api/v1/pods", Self.pod("b", ip: "10.0.0.2"))
        #expect(await seen.wait { $0.count == 2 })
        #expect(seen.replaced.withLock { $0 } >= 2, "the 410 made it list again")
        task.cancel()
        await client.shutdown()
    }

    /// A wrong token (401) and a missing RBAC grant (403) are errors that say what to fix; the
    /// client keeps retrying (with backoff) and recovers when the grant appears.
    @Test func refusalsSayWhatToFix() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await refusalsSayWhatToFixBody() }
    }

    func refusalsSayWhatToFixBody() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let bad = try KubeClient(endpoint: Self.endpoint(s, token: "wrong"))
        let seenBad = Seen()
        let t1 = Self.reflect(bad, seenBad)
        let unauthorized = await Self.until { seenBad.errors.withLock { $0.first { $0.contains("401") } } }
        #expect(unauthorized?.contains("did not accept the agent's credentials to list pods") == true)
        t1.cancel()
        await bad.shutdown()

        s.forbid("pods")
        let client = try KubeClient(endpoint: Self.endpoint(s))
        let seen = Seen()
        let t2 = Self.reflect(client, seen)
        let forbidden = await Self.until { seen.errors.withLock { $0.first { $0.contains("403") } } }
        #expect(
            forbidden?.contains(
                "grant the agent's service account the verb `list` on resource `pods` in API group \"\"")
                == true, "\(String(describing: forbidden))")
        t2.cancel()
        await client.shutdown()
    }

    /// TLS is verified: a client that trusts another CA gets no answer (and says so).
    @Test func anotherCAIsNotTrusted() async throws {
        try await withTaskExecutorPreference(Self.executor) { try await anotherCAIsNotTrustedBody() }
    }

    func anotherCAIsNotTrustedBody() async throws {
        let s = try Self.server()
        defer { s.stop() }
        let other = try Self.server()
        defer { other.stop() }
        var e = Self.endpoint(s)
        e.caPEM = Array(other.tls.caPEM.utf8)
        let client = try KubeClient(endpoint: e)
        await #expect(throws: (any Error).self) { _ = try await client.get("/api/v1/pods", timeout: 3) }
        await client.shutdown()
    }

    static func until<T>(_ seconds: Double = 30, _ f: () -> T?) async -> T? {
        let end = Date().addingTimeInterval(seconds)
        while Date() < end {
            if let v = f() { return v }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return f()
    }
}

@Suite("kubeconfig")
struct KubeconfigTests {
    @Test func theCurrentContextsClusterAndUserAreRead() throws {
        let text = """
            apiVersion: v1
            kind: Config
            current-context: dev
            clusters:
            - name: other
              cluster: {server: "https://10.0.0.1:6443"}
            - name: dev-cluster
              cluster:
                server: https://127.0.0.1:6443/
                certificate-authority-data: \(Data("CA".utf8).base64EncodedString())
            contexts:
            - name: dev
              context: {cluster: dev-cluster, user: agent}
            users:
            - name: agent
              user: {tokenFile: token, client-certificate: /etc/cert.pem}
            """
        let e = try Kubeconfig.parse(text, file: "/etc/bulwark/kubeconfig")
        #expect(e.server == "https://127.0.0.1:6443")
        #expect(e.caPEM == Array("CA".utf8))
        #expect(e.tokenFile == "/etc/bulwark/token")
        #expect(e.clientCertFile == "/etc/cert.pem")
        #expect(throws: DiagnosticsError.self) { try Kubeconfig.parse(text, file: "k", context: "nope") }
        let exec = text.replacingOccurrences(
            of: "user: {tokenFile: token, client-certificate: /etc/cert.pem}", with: "user: {exec: {command: aws}}")
        do {
            _ = try Kubeconfig.parse(exec, file: "k")
            Issue.record("an exec plugin user was accepted")
        } catch { #expect(error.description.contains("exec or auth-provider plugin")) }
        let inCluster = KubeEndpoint.inCluster(environment: [
            "KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443",
        ])
        #expect(inCluster?.server == "https://10.96.0.1:443")
        #expect(inCluster?.tokenFile == "/var/run/secrets/kubernetes.io/serviceaccount/token")
        #expect(KubeEndpoint.inCluster(environment: [:]) == nil)
    }
}
