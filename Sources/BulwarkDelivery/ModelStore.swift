import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkSystem

#if canImport(Glibc)
    import Glibc
#endif

/// The node's behaviour models: one `<profile>.json` per profile in the node config's
/// `modelDirectory`, each an `ArmorProfileModel` document written atomically (a reader sees the
/// old model or the new one). The directory must belong to root (or this user) and be writable by
/// nobody else: a model becomes an allow-list.
public struct ModelStore: Sendable {
    public var directory: String

    public init(directory: String) { self.directory = directory }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The file of a profile's model.
    public func path(_ name: String) -> String { directory + "/" + name + ".json" }

    /// The names of the stored models, sorted.
    public func names() throws(Failure) -> [String] {
        guard let dir = opendir(directory) else {
            if errno == ENOENT { return [] }
            throw Failure(description: "\(directory): cannot list: \(Errno.current)")
        }
        defer { closedir(dir) }
        var out: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self)
            }
            guard name.hasSuffix(".json"), !name.hasPrefix(".") else { continue }
            let profile = String(name.dropLast(5))
            if BehaviorModel.isValidName(profile) { out.append(profile) }
        }
        return out.sorted()
    }

    /// The model of a profile; nil when there is none.
    public func load(_ name: String) throws(Failure) -> BehaviorModel? {
        guard BehaviorModel.isValidName(name) else {
            throw Failure(description: "\"\(name)\" is not a profile name (lower-case letters, digits, '-' and '.')")
        }
        var st = stat()
        if stat(directory, &st) != 0 && errno == ENOENT { return nil }
        do { try TrustedDirectory.ensure(directory, mode: 0o700) } catch { throw Failure(description: "\(error)") }
        let bytes: [UInt8]
        do {
            bytes = try RegularFile.read(path(name), maxBytes: BehaviorModel.maxBytes, followSymlinks: false)
        } catch .cannotOpen(let e) where e == ENOENT {
            return nil
        } catch {
            throw Failure(description: "\(path(name)): \(error)")
        }
        let model: BehaviorModel
        do { model = try BehaviorModel(bytes: bytes) } catch {
            throw Failure(description: "\(path(name)): \(error)")
        }
        guard model.name == name else {
            throw Failure(
                description:
                    "\(path(name)): the model inside is named \(model.name); rename the file to \(model.name).json or fix metadata.name"
            )
        }
        return model
    }

    public func save(_ model: BehaviorModel) throws(Failure) {
        do {
            try TrustedDirectory.ensure(directory, mode: 0o700)
            try AtomicFile.write(Array(model.document.indented().utf8), to: path(model.name), permissions: 0o600)
        } catch {
            throw Failure(description: "\(error)")
        }
    }

    /// Reads, changes and writes one model under the directory's lock (`.lock`, flock): the
    /// modeler's harvests, the recording window, models shared through the API server and `bulwark
    /// model merge` all change the same files, and none may lose another's records. `change` gets
    /// the stored model (nil: none) and returns what to store (nil or the same: nothing is written);
    /// returns what is stored afterwards.
    @discardableResult
    public func update(
        _ name: String, _ change: (BehaviorModel?) throws(Failure) -> BehaviorModel?
    ) throws(Failure) -> BehaviorModel? {
        guard BehaviorModel.isValidName(name) else {
            throw Failure(description: "\"\(name)\" is not a profile name (lower-case letters, digits, '-' and '.')")
        }
        do { try TrustedDirectory.ensure(directory, mode: 0o700) } catch { throw Failure(description: "\(error)") }
        let fd = open(directory + "/.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw Failure(description: "\(directory)/.lock: cannot open: \(Errno.current)") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            guard errno == EINTR else {
                throw Failure(description: "\(directory)/.lock: cannot lock: \(Errno.current)")
            }
        }
        let stored = try load(name)
        guard let next = try change(stored), next != stored else { return stored }
        guard next.name == name else {
            throw Failure(description: "a model named \(next.name) cannot be stored as \(name)")
        }
        try save(next)
        return next
    }

    /// Merges into the stored model of the same name (creating it when there is none); returns
    /// the merged model.
    @discardableResult
    public func merge(_ model: BehaviorModel) throws(Failure) -> BehaviorModel {
        try update(model.name) { stored in
            var m = stored ?? BehaviorModel(name: model.name, namespace: model.namespace)
            m.merge(model)
            return m
        } ?? model
    }

    /// The profile's behaviour-modeling window has closed (its model says so).
    public func modelingCompleted(_ name: String) -> Bool {
        guard let model = try? load(name), let window = RecordingWindow(model) else { return false }
        return window.completed != nil
    }

    public func remove(_ name: String) throws(Failure) -> Bool {
        guard BehaviorModel.isValidName(name) else { throw Failure(description: "\"\(name)\" is not a profile name") }
        if unlink(path(name)) == 0 { return true }
        if errno == ENOENT { return false }
        throw Failure(description: "\(path(name)): cannot remove: \(Errno.current)")
    }
}

extension Policy {
    /// A BehaviorModeling policy once its recording is complete: AlwaysAllow, as vArmor switches it.
    public var afterModeling: Policy {
        guard spec.policy.mode == .behaviorModeling else { return self }
        var p = self
        p.spec.policy.mode = .alwaysAllow
        return p
    }
}
