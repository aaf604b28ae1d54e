import ArgumentParser
import BulwarkBPF
import BulwarkBPFMaps
import BulwarkDelivery
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import Foundation
import Logging

// The BPF LSM enforcer: `bulwark enforcer`, `profile`, `bind`, `unbind`, `selftest`.

func fail(_ message: String) -> Failure {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
    return Failure()
}

/// Runs `body`; any error but an already-reported `Failure` is printed and becomes one.
func reporting<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let f as Failure {
        throw f
    } catch {
        throw fail("\(error)")
    }
}

struct PinOptions: ParsableArguments {
    @OptionGroup var common: Common
    @Option(help: "BPF pin directory (default: the node config's bpfPinPath, /sys/fs/bpf/bulwark).")
    var pinPath: String?

    func enforcer() throws -> Enforcer {
        if let pinPath { return Enforcer(pinPath: pinPath) }
        return Enforcer(pinPath: try common.nodeConfig().bpfPinPath)
    }
}

struct EnforcerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "enforcer", abstract: "Load, inspect and unload the BPF LSM enforcer.",
        subcommands: [EnforcerStatus.self, EnforcerProbe.self, EnforcerLoad.self, EnforcerUnload.self])
}

struct EnforcerStatus: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status", abstract: "Kernel support, pinned state and counters.")
    @OptionGroup var pin: PinOptions
    @Flag(help: "JSON output.") var json = false

    func run() throws {
        let support = KernelSupport.probe()
        let e = try pin.enforcer()
        let st = e.status()
        if json {
            struct Out: Encodable {
                var kernel: KernelSupport
                var problems: [String]
                var state: Enforcer.Status
            }
            let enc = JSONEncoder()
            enc.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(
                String(
                    decoding: try enc.encode(Out(kernel: support, problems: support.problems, state: st)), as: UTF8.self
                ))
            return
        }
        print("kernel:    \(support.kernelRelease)")
        print("BPF LSM:   \(support.usable ? "available" : "NOT available")")
        for p in support.problems { print("           - \(p)") }
        print("pinned:    \(st.pinned ? e.pinPath : "no")")
        if st.pinned {
            print("programs:  \(st.attachedPrograms.count)/\(Enforcer.programs.count) attached")
            if !st.missingPrograms.isEmpty {
                print("           missing: \(st.missingPrograms.joined(separator: ", "))")
            }
            print(
                "ABI:       \(st.abiVersion.map(String.init) ?? "?")\(st.objectMatches == false ? " (programs from another build)" : "")"
            )
            print("profiles:  \(st.profiles)")
            print("bindings:  \(st.bindings)")
            let c = st.counters
            print(
                "counters:  " + Enforcer.counterNames.map { "\($0.0)=\(c[$0.0] ?? 0)" }.joined(separator: " "))
        }
    }
}

struct EnforcerProbe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "probe", abstract: "Exit 0 if this kernel can run the BPF enforcer; else say what is missing.")

    func run() throws {
        let support = KernelSupport.probe()
        guard support.usable else {
            throw fail(
                "BPF LSM is not usable on \(support.kernelRelease):\n  - "
                    + support.problems.joined(separator: "\n  - "))
        }
        print("BPF LSM usable on \(support.kernelRelease) (LSMs: \(support.activeLSMs?.joined(separator: ",") ?? "?"))")
    }
}

struct EnforcerLoad: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "load", abstract: "Load, attach and pin the BPF programs (idempotent; adopts pinned state).")
    @OptionGroup var pin: PinOptions

    func run() throws {
        let e = try pin.enforcer()
        let outcome = try reporting { try e.load() }
        print("enforcer \(outcome) at \(e.pinPath)")
    }
}

struct EnforcerUnload: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unload",
        abstract: "Detach the programs and remove all pinned state (bound containers lose BPF confinement).")
    @OptionGroup var pin: PinOptions

    func run() throws {
        let e = try pin.enforcer()
        try reporting { try e.unload() }
        print("enforcer unloaded from \(e.pinPath)")
    }
}

struct ProfileCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "profile", abstract: "Load BPF profiles into the enforcer (no agent needed).",
        subcommands: [ProfileApply.self, ProfileRemove.self, ProfileList.self])
}

struct ProfileApply: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply", abstract: "Compile the policies' BPF profiles and load them (live update if loaded).")
    @OptionGroup var pin: PinOptions
    @Option(help: "Disk devices for the disk-device rules, comma-separated.") var diskDevices: String?
    @Argument(help: "Policy files.") var files: [String]

    func run() throws {
        let config = try pin.common.nodeConfig()
        let policies = try loadPolicies(
            files, ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace), quiet: true)
        let devices = (diskDevices ?? "").split(separator: ",").map(String.init)
        let e = try pin.enforcer()
        var applied = 0
        for (_, p) in policies where p.spec.policy.enforcers.contains(.bpf) {
            let name = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
            let profile: BPFProfile
            do {
                let model =
                    p.spec.policy.defenseInDepth?.needsModel == true
                    ? try ModelStore(directory: config.modelDirectory).load(name) : nil
                // as the agent compiles it (inventory, egress switches, refusal of unresolvable rules)
                profile = try ProfileDelivery(
                    config: config, facts: NodeFacts(diskDevices: devices), logger: Logger(label: "bulwark")
                ).compileBPF(p, profile: name, model: model)
            } catch {
                throw fail("\(name): \(error)")
            }
            for n in profile.notes { FileHandle.standardError.write(Data("note: \(name): \(n)\n".utf8)) }
            for u in profile.unresolved { FileHandle.standardError.write(Data("unresolved: \(name): \(u)\n".utf8)) }
            do {
                let r = try e.apply(profile)
                for s in r.skipped { FileHandle.standardError.write(Data("warning: \(name): \(s)\n".utf8)) }
                print("\(r.replaced ? "updated" : "loaded") \(name) (id \(r.id), \(r.rows) rows)")
                applied += 1
            } catch {
                throw fail("\(name): \(error)")
            }
        }
        if applied == 0 { throw fail("no policy in \(files.joined(separator: ", ")) uses the BPF enforcer") }
    }
}

struct ProfileRemove: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "remove", abstract: "Unload a BPF profile (its bound containers are unbound).")
    @OptionGroup var pin: PinOptions
    @Argument(help: "Profile name.") var name: String

    func run() throws {
        try reporting { try pin.enforcer().remove(profile: name) }
        print("removed \(name)")
    }
}

struct ProfileList: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "Loaded BPF profiles.")
    @OptionGroup var pin: PinOptions

    func run() throws {
        for p in try pin.enforcer().loadedProfiles() { print("\(p.name)\tid=\(p.id)\t\(p.mode)") }
    }
}

struct BindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bind", abstract: "Bind the mount namespace of a running process to a loaded profile.")
    @OptionGroup var pin: PinOptions
    @Option(help: "A process in the namespace.") var pid: Int32
    @Option(help: "vArmor-style profile name (see `bulwark profile list`).") var profile: String
    @Flag(help: "Arm at the process's next execve (as the OCI hook does before the entrypoint runs).")
    var atExec = false

    func run() throws {
        let b = try reporting {
            try pin.enforcer().bind(pid: pid, profile: profile, arming: atExec ? .exec : .firstUse)
        }
        let when = atExec ? "at its next execve" : "at its next checked operation"
        print("bound mnt:[\(b.namespace)] to \(profile) (armed \(when))")
    }
}

struct UnbindCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unbind", abstract: "Remove the binding of a process's mount namespace.")
    @OptionGroup var pin: PinOptions
    @Option(help: "A process in the namespace.") var pid: Int32

    func run() throws {
        try reporting {
            if try pin.enforcer().unbind(pid: pid) { print("unbound") } else { throw fail("no binding for pid \(pid)") }
        }
    }
}

struct SelftestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Prove deny, audit and complain for every BPF rule type on this kernel (root).")
    @OptionGroup var pin: PinOptions

    func run() throws {
        let support = KernelSupport.probe()
        guard support.usable else {
            throw fail(
                "this kernel (\(support.kernelRelease)) cannot run the BPF enforcer:\n  - "
                    + support.problems.joined(separator: "\n  - "))
        }
        let e = try pin.enforcer()
        let results = try reporting {
            let outcome = try e.load(support: support)
            print("enforcer: \(outcome) at \(e.pinPath)")
            let me =
                (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
                ?? CommandLine.arguments[0]
            return try Selftest(enforcer: e, probe: [me, "selftest-probe"]).run()
        }
        printTable(results)
        if results.contains(where: { !$0.passed }) { throw Failure() }
    }

    func printTable(_ results: [Selftest.Result]) {
        let width = results.map(\.name.count).max() ?? 10
        print("rule".padding(toLength: width, withPad: " ", startingAt: 0) + "  mode      result  detail")
        for r in results {
            print(
                r.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                    + r.mode.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0) + "  "
                    + (r.passed ? "pass  " : "FAIL  ") + "  " + r.detail)
        }
        let failed = results.filter { !$0.passed }.count
        print("\(results.count - failed)/\(results.count) passed")
    }
}

struct SelftestProbeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest-probe", abstract: "Internal: the selftest's probe process.", shouldDisplay: false)
    func run() throws {
        Foundation.exit(SelftestProbe.run())
    }
}
