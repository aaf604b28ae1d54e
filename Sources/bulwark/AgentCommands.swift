import ArgumentParser
import BulwarkClient
import BulwarkOCI
import BulwarkPolicy
import Foundation

// `bulwark status|containers|events|reload`: clients of the agent's node socket (socketPath in the
// node config). Human tables by default, the agent's JSON with --json.

struct AgentOptions: ParsableArguments {
    @OptionGroup var common: Common
    @Option(help: "Node socket (default: socketPath of the node config).") var socket: String?
    @Flag(help: "Print the agent's JSON instead of a table.") var json = false

    func socketPath() throws -> String { try socket ?? common.nodeConfig().socketPath }

    func call(_ op: String) throws -> JSONObject {
        do {
            return try NodeClient.call(socketPath: socketPath(), .object(JSONObject([("op", .string(op))])))
        } catch let e as NodeClient.Failure {
            FileHandle.standardError.write(Data("bulwark: \(e.description)\n".utf8))
            throw ExitCode(e.permissionDenied ? 77 : 1)
        }
    }
}

/// Fixed-width columns; the last column is not padded.
func table(_ header: [String], _ rows: [[String]]) -> String {
    let all = [header] + rows
    let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
    return all.map { row in
        row.enumerated().map { i, cell in
            i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
        }.joined(separator: "  ")
    }.joined(separator: "\n")
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Show the node agent's state: enforcers, policies, containers, events.")
    @OptionGroup var options: AgentOptions

    func run() throws {
        let answer = try options.call("status")
        guard let s = answer["status"]?.object else { throw ExitCode(1) }
        if options.json {
            print(JSONValue.object(s).text)
            return
        }
        let e = s["enforcers"]?.object
        var lines = [
            "node:          \(s["nodeName"]?.string ?? "")   agent pid \(s["pid"]?.text ?? "")   up \(s["uptimeSeconds"]?.text ?? "")s",
            "enforcers:     \((e?["configured"]?.array ?? []).compactMap(\.string).joined(separator: ", "))",
            "  BPF:         \(e?["bpf"]?.string?.split(separator: "\n").first.map(String.init) ?? "")",
            "  AppArmor:    \(e?["appArmor"]?.string ?? "")",
            "  seccomp:     \(e?["seccomp"]?.string ?? "")",
            "policies:      \(s["policyFiles"]?.text ?? "0") files, \(s["profiles"]?.text ?? "0") profiles",
        ]
        for f in s["rejectedFiles"]?.array ?? [] {
            let o = f.object
            let kept = o?["keptLastGood"] == .bool(true) ? "last good version active" : "nothing active from it"
            lines.append("  REJECTED     \(o?["path"]?.string ?? "") (\(kept))")
            for err in o?["errors"]?.array ?? [] { lines.append("               \(err.string ?? "")") }
        }
        lines.append(
            "containers:    \(s["containers"]?.text ?? "0") recorded, \(s["bindings"]?.text ?? "0") BPF bindings")
        let ev = s["events"]?.object
        let byKind = (ev?.members ?? []).filter { $0.key != "total" }.map { "\($0.key) \($0.value.text)" }
        lines.append(
            "events:        \(ev?["total"]?.text ?? "0") total"
                + (byKind.isEmpty ? "" : " (\(byKind.joined(separator: ", ")))"))
        let drops = (s["drops"]?.object?.members ?? []).map { "\($0.key) \($0.value.text)" }
        lines.append("drops:         \(drops.joined(separator: ", "))")
        lines.append("subscribers:   \(s["subscribers"]?.array?.count ?? 0)")
        lines.append("event log:     \(s["eventLog"]?.string.map { $0.isEmpty ? "off" : $0 } ?? "off")")
        print(lines.joined(separator: "\n"))
    }
}

struct ContainersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "containers", abstract: "List the containers Bulwark confines on this node and their bindings.")
    @OptionGroup var options: AgentOptions

    func run() throws {
        let list = try options.call("containers")["containers"]?.array ?? []
        if options.json {
            print(JSONValue.array(list).text)
            return
        }
        let rows = list.compactMap(\.object).map { c -> [String] in
            let pod = [c["podNamespace"]?.string ?? "", c["podName"]?.string ?? ""].filter { !$0.isEmpty }
                .joined(separator: "/")
            let id = c["id"]?.string ?? ""
            return [
                String(id.prefix(16)), pod.isEmpty ? "-" : pod,
                c["containerName"]?.string.flatMap { $0.isEmpty ? nil : $0 } ?? "-",
                c["pid"]?.text ?? "", c["profile"]?.string ?? "", c["bpf"]?.string ?? "",
                c["running"] == .bool(true) ? "running" : "gone",
            ]
        }
        print(table(["CONTAINER", "POD", "NAME", "PID", "PROFILE", "BPF", "STATE"], rows))
    }
}

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload", abstract: "Ask the agent to re-read the policy directories now.")
    @OptionGroup var options: AgentOptions

    func run() throws {
        let r = try options.call("reload")["reload"]?.object
        print(
            "reloaded: \(r?["changed"]?.text ?? "0") profiles changed, \(r?["removed"]?.text ?? "0") removed, "
                + "\(r?["rejectedFiles"]?.text ?? "0") files rejected (see bulwark status)")
    }
}

struct EventsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "Show violation events from the node socket (recent ones, or --follow for new ones).")
    @OptionGroup var options: AgentOptions
    @Flag(name: .shortAndLong, help: "Keep streaming new events.") var follow = false
    @Option(help: "How many recent events to show first (default 100, or 0 with --follow).") var recent: Int?
    @Option(help: "Only these actions (DENIED, AUDIT, ALLOWED); repeatable.") var action: [String] = []
    @Option(help: "Only these enforcers (BPF, AppArmor, Seccomp); repeatable.") var enforcer: [String] = []
    @Option(help: "Only pods in these namespaces; repeatable.") var namespace: [String] = []
    @Option(help: "Only these pods; repeatable.") var pod: [String] = []
    @Option(help: "Only these containers (name or id); repeatable.") var container: [String] = []
    @Flag(help: "Also show agent notices (policy file rejected …).") var notices = false

    func run() throws {
        var filter = JSONObject()
        for (k, v) in [
            ("action", action), ("enforcer", enforcer), ("namespace", namespace), ("pod", pod),
            ("container", container),
        ] where !v.isEmpty {
            filter[k] = .array(v.map(JSONValue.string))
        }
        let request = JSONValue.object(
            JSONObject([
                ("op", .string("events")), ("follow", .bool(follow)), ("recent", .number(recent ?? (follow ? 0 : 100))),
                ("notices", .bool(notices)), ("filter", .object(filter)),
            ]))
        do {
            let client = try NodeClient(socketPath: options.socketPath(), request: request)
            _ = try client.answer()
            // unbuffered: a follower's output goes to a pipe or file as each event arrives
            let out = FileHandle.standardOutput
            if !options.json {
                out.write(Data("TIME  ACTION  ENFORCER  POD  CONTAINER  PROFILE  EVENT\n".utf8))
            }
            while let line = try client.nextLine() {
                if options.json {
                    out.write(Data(line + [0x0A]))
                } else if case .object(let e)? = try? JSONValue.parse(line) {
                    out.write(Data((Self.human(e) + "\n").utf8))
                }
            }
        } catch let e as NodeClient.Failure {
            FileHandle.standardError.write(Data("bulwark: \(e.description)\n".utf8))
            throw ExitCode(e.permissionDenied ? 77 : 1)
        }
    }

    static func human(_ e: JSONObject) -> String {
        if e["message"]?.string != "violation event" {
            return "notice: " + JSONValue.object(e).text
        }
        let pod = [e["podNamespace"]?.string ?? "", e["podName"]?.string ?? ""].filter { !$0.isEmpty }
            .joined(separator: "/")
        let container =
            e["containerName"]?.string.flatMap { $0.isEmpty ? nil : $0 }
            ?? e["containerID"]?.string.map { String($0.prefix(12)) } ?? ""
        return [
            e["time"]?.string ?? "", e["action"]?.string ?? "", e["enforcer"]?.string ?? "", pod.isEmpty ? "-" : pod,
            container.isEmpty ? "-" : container, e["profileName"]?.string ?? "-", summary(e["event"]?.object),
        ].joined(separator: "  ")
    }

    /// One phrase for the event body of each enforcer.
    static func summary(_ b: JSONObject?) -> String {
        guard let b else { return "" }
        if let syscall = b["syscall"]?.string {
            return "syscall \(syscall) by \(b["comm"]?.string ?? "?") (pid \(b["pid"]?.text ?? "?"))"
        }
        if let op = b["operation"]?.string {
            switch op {
            case "File", "Bprm":
                let perms = (b["permissions"]?.array ?? []).compactMap(\.string).joined(separator: ",")
                return "\(op == "Bprm" ? "exec" : "file") \(perms) \(b["path"]?.string ?? "")"
            case "Capability": return "capability \(b["capability"]?.string ?? "")"
            case "Network":
                let a = b["address"]?.object
                let s = b["socket"]?.object
                let type = b["type"]?.string ?? ""
                return type == "socket"
                    ? "socket \(s?["domain"]?.string ?? "") \(s?["type"]?.string ?? "")"
                    : "\(type) \(a?["ip"]?.string ?? ""):\(a?["port"]?.text ?? "")"
            case "Ptrace": return "ptrace \(b["permission"]?.string ?? "")"
            case "Mount": return "mount \(b["path"]?.string ?? "") type \(b["type"]?.string ?? "")"
            default:
                // AppArmor: operation plus the object and what was asked
                let name = b["name"]?.string ?? ""
                let mask = b["requestedMask"]?.string ?? ""
                return [op, name, mask.isEmpty ? "" : "(\(mask))"].filter { !$0.isEmpty }.joined(separator: " ")
            }
        }
        return JSONValue.object(b).text
    }
}
