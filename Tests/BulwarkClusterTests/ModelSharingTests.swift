import BulwarkCluster
import BulwarkModel
import BulwarkOCI
import Testing

/// Sharing behaviour models as ArmorProfileModel objects: set union both ways, this node's
/// recording window never leaves the node, and a write that finds the object changed merges again.
@Suite struct ModelSharingTests {
    static func model(_ syscalls: Set<String>, window: Double? = nil, lost: Int? = nil) -> BehaviorModel {
        var m = BehaviorModel(name: "varmor-cluster-varmor-web", namespace: "varmor")
        m.seccomp = SeccompBehavior(syscalls: syscalls)
        if let window { RecordingWindow(started: window).store(in: &m) }
        if let lost { m.annotations[BehaviorModel.lostRecordsAnnotation] = String(lost) }
        return m
    }

    @Test func theFirstNodeCreatesTheObjectWithoutItsWindow() throws {
        let local = Self.model(["read", "write"], window: 1_700_000_000)
        let write = ModelSharing.plan(local: local, namespace: "varmor", remote: nil)
        guard case .create(let object) = write else {
            Issue.record("\(write)")
            return
        }
        #expect(ModelSharing.hasNews(local, known: nil))
        let (created, rv) = try ModelSharing.read(object)
        #expect(rv == "")
        #expect(created.seccomp?.syscalls == ["read", "write"])
        #expect(created.namespace == "varmor")
        #expect(created.annotations[RecordingWindow.startedAnnotation] == nil, "the window is the node's")
        #expect(object.object?["metadata"]?.object?["resourceVersion"] == nil)
    }

    @Test func anUpdateIsTheUnionAndCarriesTheVersionRead() throws {
        let local = Self.model(["read", "mkdir"], window: 1_700_000_000, lost: 3)
        let remote = Self.model(["read", "execve"], lost: 7)
        let write = ModelSharing.plan(local: local, namespace: "varmor", remote: (remote, "412"))
        guard case .update(let object) = write else {
            Issue.record("\(write)")
            return
        }
        let (written, rv) = try ModelSharing.read(object)
        #expect(rv == "412")
        #expect(written.seccomp?.syscalls == ["read", "mkdir", "execve"])
        #expect(written.annotations[BehaviorModel.lostRecordsAnnotation] == "7", "the larger loss")
        #expect(written.annotations[RecordingWindow.startedAnnotation] == nil)
        // the node keeps the cluster's model, with its own window
        let keep = try #require(ModelSharing.pulled(local: local, remote: written))
        #expect(!ModelSharing.hasNews(keep, known: written))
        #expect(keep.seccomp?.syscalls == ["read", "mkdir", "execve"])
        #expect(keep.annotations[RecordingWindow.startedAnnotation] == "1700000000")
        #expect(keep.annotations[BehaviorModel.lostRecordsAnnotation] == "7")
    }

    @Test func nothingIsWrittenWhenTheObjectHoldsEverything() {
        let local = Self.model(["read"], window: 1_700_000_000)
        let remote = Self.model(["read", "execve"])
        #expect(ModelSharing.plan(local: local, namespace: "varmor", remote: (remote, "9")) == .none)
        #expect(!ModelSharing.hasNews(local, known: remote))
        let keep = ModelSharing.pulled(local: local, remote: remote)
        #expect(keep?.seccomp?.syscalls == ["read", "execve"], "what other nodes saw comes back")
    }

    /// A conflict is another writer between the read and the write: the retry reads their object
    /// and writes the union of all three.
    @Test func aRetryAfterAConflictKeepsTheOtherWritersRecords() throws {
        let local = Self.model(["mkdir"])
        let first = ModelSharing.plan(local: local, namespace: "varmor", remote: (Self.model(["read"]), "10"))
        #expect(first != .none)
        // meanwhile another node wrote version 11 with its records
        let raced = Self.model(["read", "unlink"])
        let retry = ModelSharing.plan(local: local, namespace: "varmor", remote: (raced, "11"))
        guard case .update(let object) = retry else {
            Issue.record("\(retry)")
            return
        }
        let (written, rv) = try ModelSharing.read(object)
        #expect(rv == "11")
        #expect(written.seccomp?.syscalls == ["read", "unlink", "mkdir"])
    }

    @Test func aPulledObjectJoinsTheNodesModel() {
        let remote = Self.model(["read", "execve"])
        // no model here yet: the object's, without a window (the node's own starts when its
        // profile is first loaded here)
        #expect(ModelSharing.pulled(local: nil, remote: remote)?.seccomp?.syscalls == ["read", "execve"])
        let local = Self.model(["read"], window: 1_700_000_000)
        let pulled = ModelSharing.pulled(local: local, remote: remote)
        #expect(pulled?.seccomp?.syscalls == ["read", "execve"])
        #expect(pulled?.annotations[RecordingWindow.startedAnnotation] == "1700000000")
        // nothing new: nothing to write
        #expect(ModelSharing.pulled(local: pulled, remote: remote) == nil)
        // an object carrying another node's window does not move this node's
        var foreign = remote
        RecordingWindow(started: 1, completed: 2).store(in: &foreign)
        #expect(ModelSharing.pulled(local: pulled, remote: foreign) == nil)
    }

    /// The object the API server returns (uid, managedFields, status) reads as a model.
    @Test func anObjectAsTheServerReturnsItReads() throws {
        let json = """
            {"apiVersion":"crd.varmor.org/v1beta1","kind":"ArmorProfileModel",
             "metadata":{"name":"varmor-demo-web","namespace":"demo","uid":"u-1","resourceVersion":"77",
                         "creationTimestamp":"2026-12-03T07:00:00Z","managedFields":[{"manager":"bulwarkd"}]},
             "storageType":"CRDInternal",
             "data":{"dynamicResult":{"seccomp":{"syscalls":["read"]}},"staticResult":{}},
             "status":{"desiredNumber":2,"completedNumber":1,"ready":false}}
            """
        let (m, rv) = try ModelSharing.read(try JSONValue.parse(json))
        #expect(rv == "77")
        #expect(m.name == "varmor-demo-web" && m.namespace == "demo")
        #expect(m.seccomp?.syscalls == ["read"])
        #expect(
            ModelSharing.path(namespace: "demo", name: m.name)
                == "/apis/crd.varmor.org/v1beta1/namespaces/demo/armorprofilemodels/varmor-demo-web")
    }
}
