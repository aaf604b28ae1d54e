import BulwarkModel
import BulwarkOCI

/// Behaviour models shared through the API server as `ArmorProfileModel` objects
/// (`crd.varmor.org/v1beta1`, named after the profile, in the profile's namespace — a cluster
/// policy's in `clusterProfileNamespace`, as vArmor keeps them): every node's agent merges what it
/// recorded into the object by set union (vArmor's manager merges node results the same way), and
/// every node merges the object into its own model file, so a DefenseInDepth policy finds the
/// cluster-wide model on any node. Writes are optimistic: an update carries the resourceVersion
/// it read; a conflict (another node wrote meanwhile) reads again, merges again and retries.
///
/// What is shared is the model's data. A recording window is this node's (when the profile was
/// first loaded here), so its annotations stay in the node's file.
public enum ModelSharing {
    /// Annotations that describe this node's recording, not the model.
    public static let nodeAnnotations: Set<String> = [
        RecordingWindow.startedAnnotation, RecordingWindow.completedAnnotation,
    ]
    /// The largest object written: etcd refuses requests over 1.5 MiB. vArmor moves a larger model
    /// to its manager's disk; here it stays in the node's file and is not shared (logged).
    public static let maxObjectBytes = 1_400_000
    /// Attempts of one write before it waits for the next change (each conflict reads again).
    public static let attempts = 5

    /// The object's path for one model (`.../namespaces/NS/armorprofilemodels/NAME`).
    public static func path(namespace: String, name: String) -> String {
        KubeResource.armorProfileModels.path(namespace: namespace) + "/" + name
    }

    /// The shared part of a model: its data, and annotations other than this node's window.
    public static func shared(_ model: BehaviorModel) -> BehaviorModel {
        var m = model
        for key in nodeAnnotations { m.annotations[key] = nil }
        return m
    }

    /// What a write must do to put `local` into the cluster's object.
    public enum Write: Equatable, Sendable {
        /// The object already holds everything.
        case none
        /// POST the object (there is none yet).
        case create(JSONValue)
        /// PUT the object, conditional on the resourceVersion read.
        case update(JSONValue)
    }

    /// One attempt: `remote` is the object as read (nil: 404) with its resourceVersion. What is
    /// written is the union of both; the node then keeps `pulled(local:remote:)` of what was written.
    public static func plan(
        local: BehaviorModel, namespace: String, remote: (model: BehaviorModel, resourceVersion: String)?
    ) -> Write {
        let mine = shared(local)
        guard let remote else { return .create(object(mine, namespace: namespace, resourceVersion: nil)) }
        var theirs = shared(remote.model)
        theirs.namespace = namespace
        let both = union(theirs, mine)
        if both == theirs { return .none }
        return .update(object(both, namespace: namespace, resourceVersion: remote.resourceVersion))
    }

    /// Whether `local` holds something the cluster's object (as last known: `known`) lacks.
    public static func hasNews(_ local: BehaviorModel, known: BehaviorModel?) -> Bool {
        guard let known = known.map(shared) else { return !shared(local).isEmpty || local.profile != nil }
        return union(known, shared(local)) != known
    }

    /// The node's model after the object changed (nil: nothing new for this node).
    public static func pulled(local: BehaviorModel?, remote: BehaviorModel) -> BehaviorModel? {
        let theirs = shared(remote)
        guard let local else { return theirs.isEmpty && theirs.profile == nil ? nil : theirs }
        let keep = union(local, theirs)
        return keep == local ? nil : keep
    }

    /// Two models' union: their data, and their annotations (`a`'s where both have one) with the
    /// larger lost-records count (a node that lost records leaves the model incomplete for every
    /// node).
    static func union(_ a: BehaviorModel, _ b: BehaviorModel) -> BehaviorModel {
        var u = a
        u.merge(b)
        u.annotations = merged(a.annotations, b.annotations)
        return u
    }

    static func merged(_ a: [String: String], _ b: [String: String]) -> [String: String] {
        var out = a.merging(b) { old, _ in old }
        let lost = BehaviorModel.lostRecordsAnnotation
        let n = max(a[lost].flatMap(UInt64.init) ?? 0, b[lost].flatMap(UInt64.init) ?? 0)
        if n > 0 { out[lost] = String(n) }
        return out
    }

    /// The object as written: the model's document with the resourceVersion read (an update is
    /// refused with 409 Conflict if the object changed since).
    public static func object(_ model: BehaviorModel, namespace: String, resourceVersion: String?) -> JSONValue {
        var m = model
        m.namespace = namespace
        guard case .object(var doc) = m.document, case .object(var meta)? = doc["metadata"] else {
            return m.document
        }
        if let resourceVersion { meta["resourceVersion"] = .string(resourceVersion) }
        doc["metadata"] = .object(meta)
        return .object(doc)
    }

    /// The model and resourceVersion of an object as the API server returns it (server-set
    /// metadata such as uid, managedFields and status are ignored).
    public static func read(_ object: JSONValue) throws(ModelError) -> (model: BehaviorModel, resourceVersion: String) {
        guard case .object(var doc) = object, case .object(let meta)? = doc["metadata"] else {
            throw ModelError("metadata", "missing")
        }
        var kept = JSONObject()
        for key in ["name", "namespace", "annotations"] { if let v = meta[key] { kept[key] = v } }
        doc["metadata"] = .object(kept)
        doc["status"] = nil
        let model = try BehaviorModel(document: .object(doc))
        return (model, meta["resourceVersion"]?.string ?? "")
    }
}
