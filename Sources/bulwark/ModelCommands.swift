import ArgumentParser
import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkSystem
import Foundation

// `bulwark model list|show|export|import|merge|delete`: the node's behaviour models (modelDirectory
// of the node config), read and written as vArmor's ArmorProfileModel objects.

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "List, show, export, import and merge behaviour models (ArmorProfileModel).",
        subcommands: [List.self, Show.self, Export.self, Import.self, Merge.self, Delete.self, Suggest.self])

    struct Options: ParsableArguments {
        @OptionGroup var common: Common
        @Option(help: "Model directory (default: modelDirectory of the node config).") var directory: String?

        func store() throws -> ModelStore { ModelStore(directory: try directory ?? common.nodeConfig().modelDirectory) }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The stored models and what each holds.")
        @OptionGroup var options: Options

        func run() throws {
            let store = try options.store()
            var rows: [[String]] = []
            for name in try attempt({ () throws(ModelStore.Failure) in try store.names() }) {
                guard let m = try attempt({ () throws(ModelStore.Failure) in try store.load(name) }) else { continue }
                rows.append([name, m.summary, m.annotations[BehaviorModel.lostRecordsAnnotation] ?? "0"])
            }
            print(table(["PROFILE", "HOLDS", "LOST RECORDS"], rows))
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "What a model holds, per enforcer.")
        @OptionGroup var options: Options
        @Argument(help: "Profile name (varmor-<namespace>-<policy> or varmor-cluster-…).") var name: String

        func run() throws {
            let m = try load(options, name)
            print("profile: \(m.name)\(m.namespace.map { "   namespace: \($0)" } ?? "")")
            for (k, v) in m.annotations.sorted(by: { $0.key < $1.key }) { print("  \(k): \(v)") }
            print(m.summary)
            var dynamic = m.document.object?["data"]?.object?["dynamicResult"] ?? .object(JSONObject())
            if case .object(let o) = dynamic, o.members.isEmpty { dynamic = .null }
            print(dynamic == .null ? "(nothing recorded)" : dynamic.yamlText(), terminator: "")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a model as an ArmorProfileModel object (YAML, or JSON with --json).")
        @OptionGroup var options: Options
        @Argument(help: "Profile name.") var name: String
        @Flag(help: "JSON instead of YAML.") var json = false

        func run() throws {
            let m = try load(options, name)
            print(json ? m.document.indented() : m.document.yamlText(), terminator: "")
        }
    }

    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Store the models in a file (JSON or YAML ArmorProfileModel objects) as they are.")
        @OptionGroup var options: Options
        @Argument(help: "File with one or more ArmorProfileModel objects.") var file: String
        @Flag(help: "Replace a model that is already stored (default: refuse; see `bulwark model merge`).")
        var replace = false

        func run() throws {
            let store = try options.store()
            let models = try read(file)
            if !replace {
                for m in models where try attempt({ () throws(ModelStore.Failure) in try store.load(m.name) }) != nil {
                    throw fail(
                        "a model of \(m.name) is already stored; nothing imported (--replace to overwrite it, or `bulwark model merge \(file)` to add to it)"
                    )
                }
            }
            for m in models {
                try attempt { () throws(ModelStore.Failure) in try store.save(m) }
                print("imported \(m.name): \(m.summary)")
            }
        }
    }

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Add the models in files to the stored models of the same names (set union; a file is owner-only only if it is in both)."
        )
        @OptionGroup var options: Options
        @Argument(help: "Files with ArmorProfileModel objects.") var files: [String]

        func run() throws {
            let store = try options.store()
            // every file read and checked before anything is written
            let models = try files.flatMap(read)
            for m in models {
                let merged = try attempt { () throws(ModelStore.Failure) in try store.merge(m) }
                print("merged into \(merged.name): \(merged.summary)")
            }
        }
    }

    struct Suggest: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "The model entries that would have allowed what a DefenseInDepth profile in observation mode reported (allowViolations: true); --merge adds them to its model."
        )
        @OptionGroup var options: Options
        @Argument(help: "Profile name.") var name: String
        @Option(help: "Only events at or after this Unix time.") var since: UInt64 = 0
        @Option(help: "Violation log to read (default: eventLogFile of the node config and its rotated files).")
        var log: String?
        @Flag(help: "Merge the suggestion into the stored model.") var merge = false

        func run() throws {
            let config = try options.common.nodeConfig()
            let store = try options.store()
            let files: [String]
            if let log {
                files = [log]
            } else {
                guard !config.eventLogFile.isEmpty else {
                    throw fail("the node config has no eventLogFile; give the log with --log FILE")
                }
                // oldest first: the rotated files, then the current one
                let backups = config.eventLogBackups > 0 ? Array((1...config.eventLogBackups).reversed()) : []
                files = backups.map { "\(config.eventLogFile).\($0)" } + [config.eventLogFile]
            }
            var events: [JSONObject] = []
            for f in files {
                guard let bytes = try? RegularFile.read(f, maxBytes: 1 << 30) else {
                    if log != nil { throw fail("\(f): cannot read") }
                    continue
                }
                for line in bytes.split(separator: UInt8(ascii: "\n")) {
                    if let o = try? JSONValue.parse(Array(line)).object { events.append(o) }
                }
            }
            let mounts = (try? String(contentsOfFile: "/proc/mounts", encoding: .utf8)) ?? ""
            let (suggested, used) = BehaviorModel.suggestion(
                for: name, from: events, since: since,
                generaliser: PathGeneraliser(overlayPrefixes: PathGeneraliser.overlayPrefixes(mounts: mounts)))
            let current = try attempt { () throws(ModelStore.Failure) in try store.load(name) }
            var merged = current ?? BehaviorModel(name: name)
            merged.merge(suggested)
            guard used > 0, merged != current else {
                print(
                    "nothing to suggest for \(name): \(used) allowed violations in \(events.count) events, all already in its model"
                )
                return
            }
            print("# \(used) allowed violations of \(name) would need:")
            let dynamic = suggested.document.object?["data"]?.object?["dynamicResult"] ?? .null
            print(dynamic.yamlText(), terminator: "")
            if merge {
                _ = try attempt { () throws(ModelStore.Failure) in try store.merge(suggested) }
                print("# merged into the model of \(name)")
            }
        }
    }

    struct Delete: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a stored model.")
        @OptionGroup var options: Options
        @Argument(help: "Profile name.") var name: String

        func run() throws {
            let store = try options.store()
            guard try attempt({ () throws(ModelStore.Failure) in try store.remove(name) }) else {
                throw fail("no model of \(name) in \(store.directory)")
            }
            print("deleted \(name)")
        }
    }
}

private func attempt<T>(_ body: () throws(ModelStore.Failure) -> T) throws -> T {
    do { return try body() } catch { throw fail(error.description) }
}

private func load(_ options: ModelCommand.Options, _ name: String) throws -> BehaviorModel {
    let store = try options.store()
    guard let m = try attempt({ () throws(ModelStore.Failure) in try store.load(name) }) else {
        throw fail(
            "no model of \(name) in \(store.directory) (`bulwark model list` shows the stored ones; a policy in mode BehaviorModeling records one)"
        )
    }
    return m
}

private func read(_ file: String) throws -> [BehaviorModel] {
    let bytes: [UInt8]
    do { bytes = try RegularFile.read(file, maxBytes: BehaviorModel.maxBytes) } catch {
        throw fail("\(file): \(error)")
    }
    do {
        return try BehaviorModel.models(in: String(decoding: bytes, as: UTF8.self), file: file)
    } catch { throw fail(error.description) }
}
