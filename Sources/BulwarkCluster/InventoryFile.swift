import BulwarkPolicy
import Yams

/// The node config's `inventoryFile`: Pods, Services and EndpointSlices for `toPods`,
/// `toServices` and the service built-ins on a host without an API server. The format is the
/// objects themselves, as `kubectl get pods,services,endpointslices -A -o yaml` prints them: YAML
/// documents, each a Pod, a Service, an EndpointSlice or a `List` of them (`items`); other kinds
/// are skipped. Only the fields `KubeObjects` names are read.
public enum InventoryFile {
    /// At most this many objects (a bound on work and memory for a file anyone can hand the agent).
    public static let maxObjects = 200_000

    public static func parse(_ text: String, file: String) throws(DiagnosticsError) -> ClusterInventory {
        var inventory = ClusterInventory()
        var objects = 0
        func fail(_ node: Node?, _ message: String, hint: String = "") -> DiagnosticsError {
            DiagnosticsError([
                Diagnostic(
                    .error, file: file, line: node?.mark?.line ?? 1, column: node?.mark?.column ?? 1, path: "",
                    message: message, hint: hint)
            ])
        }
        func add(_ node: Node, kind: String?) throws(DiagnosticsError) {
            objects += 1
            if objects > maxObjects {
                throw fail(node, "more than \(maxObjects) objects", hint: "list only what policies reference")
            }
            let decoder = YAMLDecoder()
            do {
                switch kind {
                case "Pod": inventory.upsert(try decoder.decode(KubeObjects.Pod.self, from: node))
                case "Service": inventory.upsert(try decoder.decode(KubeObjects.Service.self, from: node))
                case "EndpointSlice": inventory.upsert(try decoder.decode(KubeObjects.EndpointSlice.self, from: node))
                default: break
                }
            } catch {
                throw fail(
                    node, "\(kind ?? "object") is not readable: \(Self.describe(error))",
                    hint: "write it as `kubectl get \(kind?.lowercased() ?? "…") -o yaml` prints it")
            }
        }
        var documents: [Node] = []
        do {
            // the parser, not `compose_all`: its sequence ends quietly at a syntax error
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() { documents.append(node) }
        } catch {
            throw fail(nil, "invalid YAML: \(error)", hint: "check indentation and quoting")
        }
        for doc in documents {
            guard case .mapping(let m) = doc else {
                throw fail(doc, "a document is not a Kubernetes object", hint: "each document needs `kind:`")
            }
            let kind = m["kind"]?.string
            if kind == "List" || kind?.hasSuffix("List") == true {
                guard case .sequence(let items)? = m["items"] else {
                    if m["items"] == nil || m["items"]?.null != nil { continue }
                    throw fail(doc, "`items` of a \(kind!) is not a list")
                }
                for item in items {
                    guard case .mapping(let im) = item else { throw fail(item, "a list item is not an object") }
                    // a typed list (`PodList`) leaves `kind` out of its items
                    var itemKind = im["kind"]?.string
                    if itemKind == nil, let k = kind, k != "List" { itemKind = String(k.dropLast(4)) }
                    try add(item, kind: itemKind)
                }
            } else {
                try add(doc, kind: kind)
            }
        }
        return inventory
    }

    static func describe(_ error: any Error) -> String {
        switch error {
        case DecodingError.keyNotFound(let key, let c):
            return "`\((c.codingPath + [key]).map(\.stringValue).joined(separator: "."))` is missing"
        case DecodingError.typeMismatch(let type, let c), DecodingError.valueNotFound(let type, let c):
            return "`\(c.codingPath.map(\.stringValue).joined(separator: "."))` is not a \(type)"
        case DecodingError.dataCorrupted(let c):
            return "`\(c.codingPath.map(\.stringValue).joined(separator: "."))`: \(c.debugDescription)"
        default:
            return "\(error)"
        }
    }
}
