import BulwarkCluster
import BulwarkDelivery
import BulwarkKube
import BulwarkModel
import BulwarkOCI
import BulwarkSystem
import Foundation
import Logging
import Synchronization

/// The node's behaviour models in the cluster (`ModelSharing`): every `ArmorProfileModel` object
/// the API server holds is merged into the node's model file of the same name (the model
/// directory's watcher then recompiles a DefenseInDepth profile that uses it), and what this node
/// recorded is merged into the object — read, union, update conditional on the version read, and
/// on 409 Conflict read again. Deleting an object does not delete what a node recorded.
final class ModelShare: Sendable {
    let client: KubeClient
    let models: ModelStore
    /// The namespace of a model without one (a cluster policy's: `clusterProfileNamespace`).
    let namespace: String
    let logger: Logger
    struct State {
        /// Model file → its identity when last looked at: only a changed file is read.
        var stamps: [String: [Int64]] = [:]
        /// What the cluster's object of each model is known to hold (as read or written).
        var known: [String: BehaviorModel] = [:]
        /// Models whose write failed, and when to try again.
        var retryAt: [String: ContinuousClock.Instant] = [:]
    }
    private let state = Mutex(State())

    init(client: KubeClient, models: ModelStore, namespace: String, logger: Logger) {
        self.client = client
        self.models = models
        self.namespace = namespace
        self.logger = logger
    }

    /// Runs until cancelled: the objects' watch, and a look at the model files every second.
    func run() async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [self] in
                await Reflector.run(
                    client: client, resource: .armorProfileModels, logger: logger,
                    onChange: { changes, _ in self.pull(changes) })
            }
            group.addTask { [self] in
                while !Task.isCancelled {
                    await pushChanged()
                    try? await Task.sleep(for: .seconds(1))
                }
            }
            await group.waitForAll()
        }
    }

    /// Objects that appeared or changed join the node's models.
    func pull(_ changes: [ListWatch.Change]) {
        var objects: [JSONValue] = []
        for change in changes {
            switch change {
            case .replaced(let all): objects += all.values
            case .upserted(_, let o): objects.append(o)
            case .deleted: break
            }
        }
        for object in objects {
            do {
                let remote = try ModelSharing.read(object).model
                state.withLock { $0.known[remote.name] = remote }
                let stored = try models.update(remote.name) { local in ModelSharing.pulled(local: local, remote: remote)
                }
                if stored != nil {
                    logger.debug("behaviour model from the cluster", metadata: ["model": "\(remote.name)"])
                }
            } catch {
                let name = object.object?["metadata"]?.object?["name"]?.string ?? "?"
                logger.warning(
                    "cannot use a behaviour model from the cluster",
                    metadata: ["model": "\(name)", "error": "\(error)"])
            }
        }
    }

    /// Pushes every model file that changed and holds something its object lacks.
    func pushChanged() async {
        let names = (try? models.names()) ?? []
        let now = ContinuousClock.now
        for name in names {
            let stamp = Paths.identity(models.path(name)) ?? []
            let due = state.withLock { s -> Bool in
                if let at = s.retryAt[name] { return now >= at }
                return s.stamps[name] != stamp
            }
            guard due, let local = try? models.load(name) else { continue }
            let known = state.withLock { $0.known[name] }
            if ModelSharing.hasNews(local, known: known) {
                let ok = await push(local)
                state.withLock { s in
                    if ok {
                        s.retryAt[name] = nil
                    } else {
                        let backoff = s.retryAt[name] == nil ? 5 : 30
                        s.retryAt[name] = now + .seconds(backoff)
                    }
                }
            }
            state.withLock { $0.stamps[name] = stamp }
        }
    }

    /// Read, merge, write — again after a conflict. True when the object holds the model.
    func push(_ local: BehaviorModel) async -> Bool {
        let ns = local.namespace ?? namespace
        let path = ModelSharing.path(namespace: ns, name: local.name)
        let resource = KubeResource.armorProfileModels
        func refused(_ verb: String, _ status: Int, _ body: [UInt8]) -> Bool {
            logger.error(
                "cannot share a behaviour model",
                metadata: [
                    "model": "\(ns)/\(local.name)",
                    "error":
                        "\(KubeAPIError.http(status, verb: verb, resource: resource, body: String(decoding: body.prefix(300), as: UTF8.self)))",
                ])
            return false
        }
        do {
            for _ in 0..<ModelSharing.attempts {
                let (status, body) = try await client.get(path, timeout: 15)
                var remote: (model: BehaviorModel, resourceVersion: String)?
                switch status {
                case 200: remote = try ModelSharing.read(try JSONValue.parse(body))
                case 404: remote = nil
                default: return refused("get", status, body)
                }
                let written: JSONValue
                switch ModelSharing.plan(local: local, namespace: ns, remote: remote) {
                case .none:
                    if let remote { keep(remote.model) }
                    return true
                case .create(let object), .update(let object):
                    let bytes = object.serialized()
                    guard bytes.count <= ModelSharing.maxObjectBytes else {
                        logger.error(
                            "behaviour model too large to share: it stays on this node",
                            metadata: [
                                "model": "\(ns)/\(local.name)", "bytes": "\(bytes.count)",
                                "limit": "\(ModelSharing.maxObjectBytes)",
                            ])
                        state.withLock { $0.known[local.name] = local }
                        return true
                    }
                    written = object
                    let (status, body) =
                        remote == nil
                        ? try await client.post(resource.path(namespace: ns), json: bytes)
                        : try await client.put(path, json: bytes)
                    if status == 409 {
                        logger.debug(
                            "behaviour model changed meanwhile: merging again", metadata: ["model": "\(local.name)"])
                        continue
                    }
                    guard status == 200 || status == 201 else {
                        return refused(remote == nil ? "create" : "update", status, body)
                    }
                }
                keep(try ModelSharing.read(written).model)
                logger.info("behaviour model shared", metadata: ["model": "\(ns)/\(local.name)"])
                return true
            }
            logger.warning(
                "behaviour model not shared: it kept changing; trying again",
                metadata: ["model": "\(ns)/\(local.name)", "attempts": "\(ModelSharing.attempts)"])
        } catch {
            logger.warning(
                "cannot share a behaviour model", metadata: ["model": "\(ns)/\(local.name)", "error": "\(error)"])
        }
        return false
    }

    /// The cluster's object holds `remote`: remembered, and merged into the node's file.
    func keep(_ remote: BehaviorModel) {
        state.withLock { $0.known[remote.name] = remote }
        do {
            try models.update(remote.name) { local in ModelSharing.pulled(local: local, remote: remote) }
        } catch {
            logger.warning(
                "cannot store a behaviour model", metadata: ["model": "\(remote.name)", "error": "\(error)"])
        }
    }
}
