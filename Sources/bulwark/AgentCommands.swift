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

    /// A typed call (`NodeClient.status` …); a failure is printed and becomes the exit code.
    func call<T>(_ request: (String) throws(NodeClient.Failure) -> T) throws -> T {
        let path = try socketPath()
        do {
            return try request(path)
        } catch {
            FileHandle.standardError.write(Data("bulwark: \(error.description)\n".utf8))
            throw ExitCode(error.permissionDenied ? 77 : 1)
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
        let s = try options.call(NodeClient.status)
        if options.json {
            print(s.json.text)
            return
        }
        let e = s.enforcers
        var lines = [
            "node:          \(s.nodeName)   agent pid \(s.pid)   up \(s.uptimeSeconds)s",
            "enforcers:     \(e.configured.joined(separator: ", "))",
            "  BPF:         \(e.bpf.split(separator: "\n").first.map(String.init) ?? "")",
            "  AppArmor:    \(e.appArmor)",
            "  seccomp:     \(e.seccomp)",
            "policies:      \(s.policyFiles) files, \(s.profiles) profiles",
        ]
        for f in s.rejectedFiles {
            let kept = f.keptLastGood ? "last good version active" : "nothing active from it"
            lines.append("  REJECTED     \(f.path) (\(kept))")
            for err in f.errors { lines.append("               \(err)") }
        }
        lines.append("containers:    \(s.containers) recorded, \(s.bindings) BPF bindings")
        let byKind = s.eventsByKind.map { "\($0.name) \($0.value)" }
        lines.append(
            "events:        \(s.eventsTotal) total" + (byKind.isEmpty ? "" : " (\(byKind.joined(separator: ", ")))"))
        let drops = [("subscribers", s.subscriberDrops)] + s.sourceDrops.map { ($0.name, $0.value) }
        lines.append("drops:         \(drops.map { "\($0.0) \($0.1)" }.joined(separator: ", "))")
        lines.append("subscribers:   \(s.subscribers.count)")
        lines.append("event log:     \(s.eventLog.isEmpty ? "off" : s.eventLog)")
        print(lines.joined(separator: "\n"))
    }
}

struct ContainersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "containers", abstract: "List the containers Bulwark confines on this node and their bindings.")
    @OptionGroup var options: AgentOptions

    func run() throws {
        let list = try options.call(NodeClient.containers)
        if options.json {
            print(JSONValue.array(list.map(\.json)).text)
            return
        }
        let rows = list.map { c -> [String] in
            let pod = [c.podNamespace, c.podName].filter { !$0.isEmpty }.joined(separator: "/")
            return [
                String(c.id.prefix(16)), pod.isEmpty ? "-" : pod, c.containerName.isEmpty ? "-" : c.containerName,
                "\(c.pid)", c.profile, c.bpf, c.running ? "running" : "gone",
            ]
        }
        print(table(["CONTAINER", "POD", "NAME", "PID", "PROFILE", "BPF", "STATE"], rows))
    }
}

struct ProfilesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profiles", abstract: "List the agent's profiles and what each enforcer did with them.")
    @OptionGroup var options: AgentOptions

    func run() throws {
        let list = try options.call(NodeClient.profiles)
        if options.json {
            print(JSONValue.array(list.map(\.json)).text)
            return
        }
        print(
            table(
                ["PROFILE", "POLICY", "MODE", "SECCOMP", "APPARMOR", "BPF"],
                list.map { [$0.name, $0.policy, $0.mode, $0.seccomp, $0.appArmor, $0.bpf] }))
        // what a policy names but the kernel does not hold: never only a compile-time note
        for p in list where !p.unresolved.isEmpty {
            print("\(p.name): unresolved egress: \(p.unresolved.joined(separator: "; "))")
        }
    }
}

struct ReloadCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload", abstract: "Ask the agent to re-read the policy directories now.")
    @OptionGroup var options: AgentOptions

    func run() throws {
        let r = try options.call(NodeClient.reload)
        print(
            "reloaded: \(r.changed) profiles changed, \(r.removed) removed, \(r.rejectedFiles) files rejected "
                + "(see bulwark status)")
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
        let request = ControlRequest.events(
            EventsRequest(follow: follow, recent: recent, notices: notices, filter: filter))
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
