import Foundation
import PackagePlugin

/// Compiles `bpf/*.bpf.c` with the toolchain's clang (`-target bpf`) during `swift build` and
/// embeds the object into the target as generated Swift (no loose object file to install).
@main
struct BPFObjectPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let root = context.package.directoryURL
        let bpfDir = root.appending(path: "bpf")
        let abiDir = root.appending(path: "Sources/CBulwarkABI/include")
        let embed = try context.tool(named: "bulwark-bpf-embed").url
        let clang = try context.tool(named: "clang").url
        let objcopy = try context.tool(named: "llvm-objcopy").url
        let files = try FileManager.default.contentsOfDirectory(atPath: bpfDir.path(percentEncoded: false))
        let sources = files.filter { $0.hasSuffix(".bpf.c") }.sorted()
        let headers = files.filter { $0.hasSuffix(".h") }.sorted().map { bpfDir.appending(path: $0) }
        let abi = abiDir.appending(path: "bulwark_abi.h")
        return sources.map { name in
            let stem = String(name.dropLast(".bpf.c".count))
            let output = context.pluginWorkDirectoryURL.appending(path: "BPFObject_\(stem).swift")
            return .buildCommand(
                displayName: "Compiling BPF object \(name)",
                executable: embed,
                arguments: [
                    "--clang", clang.path(percentEncoded: false),
                    "--objcopy", objcopy.path(percentEncoded: false),
                    "--include", bpfDir.path(percentEncoded: false),
                    "--include", abiDir.path(percentEncoded: false),
                    "--source", bpfDir.appending(path: name).path(percentEncoded: false),
                    "--symbol", stem,
                    "--output", output.path(percentEncoded: false),
                ],
                inputFiles: [bpfDir.appending(path: name), abi] + headers,
                outputFiles: [output]
            )
        }
    }
}
