import BulwarkCluster
import BulwarkOCI
import Logging

/// Keeps one resource's objects current: performs what `ListWatch` asks for (list pages, watch,
/// back off) until the task is cancelled, and hands every change to `onChange` with the full set.
public enum Reflector {
    public static func run(
        client: KubeClient, resource: KubeResource, namespace: String? = nil, selectors: [(String, String)] = [],
        pageSize: Int = 500,
        watchSeconds: Int = 300, logger: Logger,
        onChange: @Sendable ([ListWatch.Change], [String: JSONValue]) -> Void,
        onError: @Sendable (KubeAPIError) -> Void = { _ in }
    ) async {
        var lw = ListWatch(resource: resource, pageSize: pageSize, watchSeconds: watchSeconds, selectors: selectors)
        var action = lw.start()
        let path = resource.path(namespace: namespace)
        func handle(_ o: ListWatch.Outcome) -> ListWatch.Action? {
            if !o.changes.isEmpty { onChange(o.changes, lw.objects) }
            if let e = o.error {
                logger.warning("kubernetes API", metadata: ["resource": "\(resource)", "error": "\(e)"])
                onError(e)
            }
            return o.next
        }
        func failed(_ status: Int?, _ verb: String, _ detail: String) -> ListWatch.Action? {
            handle(lw.failed(status: status, verb: verb, body: detail, jitter: Double.random(in: 0.5...1)))
        }
        while !Task.isCancelled {
            switch action {
            case .list(let query):
                var next: ListWatch.Action?
                do {
                    let (status, body) = try await client.get(path, query: query)
                    next =
                        status == 200
                        ? handle(lw.listed(body))
                        : failed(status, "list", String(decoding: body.prefix(300), as: UTF8.self))
                } catch {
                    next = failed(nil, "list", "\(error)")
                }
                action = next ?? lw.watchEnded()
            case .watch(let query):
                var next: ListWatch.Action?
                do {
                    let (status, body) = try await client.stream(
                        path, query: query, timeout: Int64(watchSeconds) + 30
                    ) { lines in
                        for line in lines {
                            if let n = handle(lw.watchLine(line)) {
                                next = n
                                return false
                            }
                        }
                        return true
                    }
                    if status != 200 {
                        next = failed(status, "watch", String(decoding: body.prefix(300), as: UTF8.self))
                    }
                } catch {
                    next = failed(nil, "watch", "\(error)")
                }
                action = next ?? lw.watchEnded()
            case .wait(let seconds):
                try? await Task.sleep(for: .milliseconds(Int(seconds * 1000)))
                action = lw.resume()
            }
        }
    }
}

extension Reflector {
    /// Every object of `resource` now, read once in pages (`bulwark policy compile --kubeconfig`).
    public static func list(client: KubeClient, resource: KubeResource, pageSize: Int = 500) async throws
        -> [String: JSONValue]
    {
        var lw = ListWatch(resource: resource, pageSize: pageSize)
        var action = lw.start()
        while case .list(let query) = action {
            let (status, body) = try await client.get(resource.path(), query: query)
            let outcome =
                status == 200
                ? lw.listed(body)
                : lw.failed(
                    status: status, verb: "list", body: String(decoding: body.prefix(300), as: UTF8.self), jitter: 1)
            if let e = outcome.error { throw e }
            guard let next = outcome.next else { break }
            action = next
        }
        return lw.objects
    }

    /// The cluster's addresses now, for a one-shot compile: services and EndpointSlices, and pods
    /// when `pods` is set.
    public static func inventory(client: KubeClient, pods: Bool) async throws -> ClusterInventory {
        var inventory = ClusterInventory()
        for r in [KubeResource.services, .endpointSlices] + (pods ? [.pods] : []) {
            inventory.apply(.replaced(try await list(client: client, resource: r)), of: r)
        }
        return inventory
    }
}
