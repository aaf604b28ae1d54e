import BulwarkCluster
import BulwarkEvents
import BulwarkNRI
import BulwarkOCI
import BulwarkPolicy

/// Fuzzing harnesses: each takes arbitrary bytes, must not crash, hang or grow without bound, and
/// checks an invariant of its input's reader (a violation traps, which libFuzzer reports).
/// `scripts/fuzz.sh NAME [SECONDS]` runs one under libFuzzer; the test suite replays the seeds.
public enum Harness: String, CaseIterable, Sendable {
    /// Policy files (YAML and JSON documents), the node config and the inventory file.
    case policy
    /// The OCI spec reader/writer: a parsed document written and parsed again is byte-identical.
    case ociJSON = "oci-json"
    /// The container state a runtime gives a hook.
    case hookState = "hook-state"
    /// The runtime argv reader, both grammars (arguments separated by NUL bytes).
    case argv
    /// The NRI multiplexer and ttrpc decoders fed in arbitrary chunks.
    case nriWire = "nri-wire"
    /// Kernel audit lines and libapparmor's record parser.
    case auditLine = "audit-line"
    /// Node-socket requests (one JSON line, an event filter).
    case socketRequest = "socket-request"

    public func run(_ data: [UInt8]) {
        switch self {
        case .policy: Self.policy(data)
        case .ociJSON: Self.ociJSON(data)
        case .hookState: _ = try? OCIState.parse(data)
        case .argv: Self.argv(data)
        case .nriWire: Self.nriWire(data)
        case .auditLine: Self.auditLine(data)
        case .socketRequest: Self.socketRequest(data)
        }
    }

    static func check(_ condition: Bool, _ message: @autoclosure () -> String) {
        if !condition { fatalError("invariant: \(message())") }
    }

    static func policy(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        let r = PolicyParser.parse(text, file: "fuzz.yaml")
        // a valid document keeps validating once migrated (0.8 syntax)
        if r.isValid && !r.migrations.isEmpty {
            let again = PolicyParser.parse(TextInsertion.apply(r.migrations, to: text), file: "fuzz.yaml")
            check(again.isValid, "migrated text does not validate: \(again.errors)")
            check(again.migrations.isEmpty, "migrated text still needs migrating")
            check(
                again.policies.count == r.policies.count
                    && zip(again.policies, r.policies).allSatisfy { $0.sameMeaning(as: $1) },
                "migrated text reads as other policies")
        }
        _ = try? NodeConfig.parse(text, file: "bulwark.yaml")
        _ = try? InventoryFile.parse(text, file: "inventory.yaml")
    }

    static func ociJSON(_ data: [UInt8]) {
        guard let v = try? JSONValue.parse(data) else { return }
        let once = v.serialized()
        guard let back = try? JSONValue.parse(once) else {
            check(false, "serialized document does not parse")
            return
        }
        check(back == v, "round trip changed the value")
        check(back.serialized() == once, "second serialization differs")
        if case .object(let o) = v { _ = SpecShape.ambiguity(in: o) }
    }

    static func argv(_ data: [UInt8]) {
        let args = data.split(separator: 0, omittingEmptySubsequences: false).map {
            String(decoding: $0, as: UTF8.self)
        }
        for dialect in [RuntimeCommandLine.Dialect.runc, .crun] {
            let c = RuntimeCommandLine.parse(args, dialect: dialect)
            guard c.createsContainer, c.refusal == nil, let id = c.id else { continue }
            // the same reading written plainly reads the same way
            var plain = [c.subcommand!]
            if let b = c.bundle { plain += ["--bundle", b] }
            if let f = c.config, dialect == .crun { plain += ["--config", f] }
            plain += ["--", id]
            let again = RuntimeCommandLine.parse(plain, dialect: dialect)
            check(
                again.refusal != nil || (again.bundle == c.bundle && again.id == id),
                "\(dialect) \(args) → \(c), plain \(plain) → \(again)")
            _ = c.specPath(cwd: "/work")
        }
    }

    static func nriWire(_ data: [UInt8]) {
        var mux = Mux.Decoder()
        var ttrpc = TTRPC.Decoder()
        var i = 0
        var chunk = 1
        while i < data.count {
            let end = min(data.count, i + chunk)
            mux.feed(data[i..<end])
            ttrpc.feed(data[i..<end])
            i = end
            chunk = chunk % 7 + 1
            while let frame = try? mux.next() {
                var inner = TTRPC.Decoder()
                inner.feed(frame.payload)
                while inner.next() != nil {}
            }
            while ttrpc.next() != nil {}
            check(ttrpc.pending <= 4 << 20 + 64, "ttrpc decoder holds \(ttrpc.pending) bytes")
        }
    }

    static func auditLine(_ data: [UInt8]) {
        let line = String(decoding: data, as: UTF8.self)
        switch KernelLogLine(line) {
        case .appArmor(let normalized, _): _ = AppArmorLog(normalized: normalized)
        case .seccomp(let r): _ = r.body(syscallName: "x")
        case .other: break
        }
        _ = KernelLogLine.kmsgSequence(line)
    }

    static func socketRequest(_ data: [UInt8]) {
        guard case .object(let body)? = try? JSONValue.parse(data) else { return }
        if let f = body["filter"], let filter = try? EventFilter(json: f) {
            check((try? EventFilter(json: filter.json)) == filter, "filter round trip")
        }
    }
}
