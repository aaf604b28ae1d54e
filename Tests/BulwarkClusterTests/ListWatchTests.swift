import BulwarkCluster
import BulwarkOCI
import Testing

@Suite("List and watch bookkeeping")
struct ListWatchTests {
    static func pod(_ name: String, rv: String, ip: String = "10.0.0.1") -> String {
        #"{"kind":"Pod","apiVersion":"v1","metadata":{"name":"\#(name)","namespace":"demo","resourceVersion":"\#(rv)"},"status":{"podIP":"\#(ip)"}}"#
    }
    static func list(_ items: [String], rv: String, continue token: String? = nil) -> [UInt8] {
        let meta =
            token.map { #"{"resourceVersion":"\#(rv)","continue":"\#($0)"}"# } ?? #"{"resourceVersion":"\#(rv)"}"#
        return Array(
            #"{"kind":"PodList","apiVersion":"v1","metadata":\#(meta),"items":[\#(items.joined(separator: ","))]}"#.utf8
        )
    }
    static func event(_ type: String, _ object: String) -> [UInt8] {
        Array(#"{"type":"\#(type)","object":\#(object)}"#.utf8)
    }

    /// Pages with `limit`/`continue`, one complete replacement, then a watch from the list's version.
    @Test func listsInPagesThenWatchesFromTheListsVersion() {
        var lw = ListWatch(resource: .pods, pageSize: 2)
        #expect(lw.start() == .list([("limit", "2")]))
        let first = lw.listed(Self.list([Self.pod("a", rv: "10"), Self.pod("b", rv: "11")], rv: "12", continue: "tok"))
        #expect(first.changes.isEmpty && first.next == .list([("limit", "2"), ("continue", "tok")]))
        #expect(!lw.synced)
        let last = lw.listed(Self.list([Self.pod("c", rv: "12")], rv: "12"))
        guard case .replaced(let all)? = last.changes.first else {
            Issue.record("no replacement")
            return
        }
        #expect(all.keys.sorted() == ["demo/a", "demo/b", "demo/c"])
        #expect(
            last.next
                == .watch([
                    ("watch", "1"), ("resourceVersion", "12"), ("allowWatchBookmarks", "true"),
                    ("timeoutSeconds", "300"),
                ]))
        #expect(lw.synced && lw.resourceVersion == "12")
    }

    /// Events change the cache; a bookmark moves the version only; a watch that ends resumes from
    /// the last version seen.
    @Test func watchEventsAndBookmarksMoveTheVersion() {
        var lw = ListWatch(resource: .pods)
        _ = lw.start()
        _ = lw.listed(Self.list([Self.pod("a", rv: "1")], rv: "5"))
        #expect(lw.watchLine(Self.event("ADDED", Self.pod("b", rv: "6"))).changes.map(\.key) == ["+demo/b"])
        #expect(lw.watchLine(Self.event("MODIFIED", Self.pod("a", rv: "7", ip: "10.0.0.9"))).changes.count == 1)
        #expect(lw.objects["demo/a"]?.object?["status"]?.object?["podIP"] == .string("10.0.0.9"))
        #expect(lw.watchLine(Self.event("DELETED", Self.pod("b", rv: "8"))).changes.map(\.key) == ["-demo/b"])
        let bookmark = #"{"kind":"Pod","apiVersion":"v1","metadata":{"resourceVersion":"42"}}"#
        #expect(lw.watchLine(Self.event("BOOKMARK", bookmark)).changes.isEmpty)
        #expect(lw.resourceVersion == "42")
        guard case .watch(let q) = lw.watchEnded() else {
            Issue.record("not a watch")
            return
        }
        #expect(q.first { $0.0 == "resourceVersion" }?.1 == "42")
        #expect(lw.objects.keys.sorted() == ["demo/a"])
    }

    /// 410 Gone — as an HTTP status or a watch ERROR event, or an expired continue token — lists
    /// again from the start.
    @Test func goneListsAgain() {
        var lw = ListWatch(resource: .pods, pageSize: 1)
        _ = lw.start()
        _ = lw.listed(Self.list([Self.pod("a", rv: "1")], rv: "1", continue: "t1"))
        #expect(lw.failed(status: 410, verb: "list", jitter: 1).next == .list([("limit", "1")]))
        _ = lw.listed(Self.list([Self.pod("a", rv: "1")], rv: "3"))
        let status =
            #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version: 3 (9)","reason":"Expired","code":410}"#
        #expect(lw.watchLine(Self.event("ERROR", status)).next == .list([("limit", "1")]))
        #expect(lw.failed(status: 410, verb: "watch", jitter: 1).next == .list([("limit", "1")]))
    }

    /// 401/403 name the RBAC verb and resource; failures wait with growing, jittered, capped
    /// backoff and then resume the watch (or the list, before the first complete one).
    @Test func refusalsAreNamedAndRetriedWithBackoff() {
        var lw = ListWatch(resource: .varmorPolicies)
        _ = lw.start()
        let denied = lw.failed(status: 403, verb: "list", body: "forbidden", jitter: 1)
        #expect(
            denied.error?.description.contains(
                "grant the agent's service account the verb `list` on resource `varmorpolicies` in API group \"crd.varmor.org\""
            )
                == true, "\(String(describing: denied.error))")
        #expect(denied.next == .wait(seconds: 0.5))
        #expect(lw.resume() == .list([("limit", "500")]))
        let unauthorized = lw.failed(status: 401, verb: "list", jitter: 0.5)
        #expect(unauthorized.error?.description.contains("401 Unauthorized") == true)
        #expect(unauthorized.next == .wait(seconds: 0.5))  // 1 s × 0.5
        _ = lw.listed(Array(#"{"kind":"VarmorPolicyList","metadata":{"resourceVersion":"9"},"items":null}"#.utf8))
        #expect(lw.synced && lw.objects.isEmpty)
        _ = lw.failed(status: nil, verb: "watch", body: "connection reset", jitter: 1)
        guard case .watch(let q) = lw.resume() else {
            Issue.record("a synced resource resumes its watch")
            return
        }
        #expect(q.contains { $0 == ("resourceVersion", "9") })
        #expect(ListWatch.backoff(failures: 1, jitter: 1) == 0.5)
        #expect(ListWatch.backoff(failures: 4, jitter: 1) == 4)
        #expect(ListWatch.backoff(failures: 30, jitter: 1) == 30)
        #expect(ListWatch.backoff(failures: 30, jitter: 0) == 15)
    }

    @Test func garbageIsAFailureNotACrash() {
        var lw = ListWatch(resource: .pods)
        _ = lw.start()
        #expect(lw.listed(Array("<html>".utf8)).error != nil)
        #expect(lw.watchLine(Array("{\"type\":1}".utf8)).error != nil)
    }

    @Test func watchLinesAreSplitAndBounded() {
        var w = WatchLines(maxLine: 16)
        #expect(w.feed(Array("{\"a\":1}\n{\"b\"".utf8))?.map { String(decoding: $0, as: UTF8.self) } == ["{\"a\":1}"])
        #expect(w.feed(Array(":2}\n\n".utf8))?.map { String(decoding: $0, as: UTF8.self) } == ["{\"b\":2}"])
        #expect(w.pending == 0)
        #expect(w.feed(Array(repeating: UInt8(ascii: "x"), count: 17)) == nil)
    }
}

extension ListWatch.Change {
    var key: String {
        switch self {
        case .replaced: "*"
        case .upserted(let k, _): "+" + k
        case .deleted(let k): "-" + k
        }
    }
}
