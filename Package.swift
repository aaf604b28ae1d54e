// swift-tools-version:6.1
import PackageDescription

// Bulwark: vArmor policies enforced with AppArmor, seccomp and BPF LSM, attached in the runtime path.
//
// Layers (see docs/architecture.md):
//   pure   BulwarkPolicy, BulwarkOCI, BulwarkProfiles  (no syscalls, no files, no sockets)
//   C      CBulwarkABI (the one header shared with bpf/), CSeccomp (libseccomp), CLibBPF (libbpf)
//   build  BulwarkBPFObject (bpf/*.bpf.c compiled by BPFObjectPlugin + bulwark-bpf-embed, embedded)
//   I/O    BulwarkSystem (bounded file reads, policy directories, config lookup),
//          BulwarkBPF (libbpf loader, pinned maps, bindings, events)
//   exe    bulwark (CLI: argument parsing and wiring only)

let argumentParser: Target.Dependency = .product(name: "ArgumentParser", package: "swift-argument-parser")
let yams: Target.Dependency = .product(name: "Yams", package: "Yams")

let package = Package(
    name: "bulwark",
    products: [
        .executable(name: "bulwark", targets: ["bulwark"]),
        .executable(name: "bulwark-hook", targets: ["bulwark-hook"]),
        .executable(name: "bulwark-runtime", targets: ["bulwark-runtime"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
    ],
    targets: [
        // MARK: Pure logic
        .target(name: "BulwarkPolicy", dependencies: ["BulwarkOCI", yams]),
        .target(name: "BulwarkOCI"),
        .target(name: "BulwarkProfiles", dependencies: ["BulwarkPolicy", "BulwarkOCI", "CBulwarkABI"]),
        // vArmor-format violation events from BPF records and kernel audit lines (pure).
        .target(
            name: "BulwarkEvents", dependencies: ["BulwarkOCI", "BulwarkPolicy", "BulwarkProfiles", "CBulwarkABI"]),

        // MARK: C
        .target(name: "CBulwarkABI"),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CLibBPF", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),

        // MARK: Build: the BPF object, compiled by clang -target bpf during `swift build`
        .executableTarget(name: "bulwark-bpf-embed"),
        .plugin(name: "BPFObjectPlugin", capability: .buildTool(), dependencies: ["bulwark-bpf-embed"]),
        .target(name: "BulwarkBPFObject", dependencies: ["BulwarkOCI"], plugins: ["BPFObjectPlugin"]),

        // MARK: Thin I/O
        .target(name: "BulwarkSystem", dependencies: ["BulwarkPolicy"]),
        .target(
            name: "BulwarkRuntime",
            dependencies: ["BulwarkBPF", "BulwarkOCI", "BulwarkPolicy", "BulwarkProfiles", "BulwarkSystem"]
        ),
        .target(
            name: "BulwarkBPF",
            dependencies: ["BulwarkProfiles", "BulwarkPolicy", "BulwarkBPFObject", "CLibBPF", "CBulwarkABI"]
        ),

        // MARK: Executables
        .executableTarget(
            name: "bulwark",
            dependencies: [
                "BulwarkPolicy", "BulwarkProfiles", "BulwarkOCI", "BulwarkSystem", "BulwarkBPF", argumentParser,
            ]
        ),

        .executableTarget(name: "bulwark-hook", dependencies: ["BulwarkRuntime", "BulwarkBPF", "BulwarkOCI"]),
        .executableTarget(
            name: "bulwark-runtime", dependencies: ["BulwarkRuntime", "BulwarkOCI", "BulwarkPolicy", "BulwarkSystem"]),

        // MARK: Benchmarks (scripts/bench-*.sh)
        .executableTarget(
            name: "bulwark-bench-bpf", dependencies: ["BulwarkBPF", "BulwarkProfiles", "BulwarkPolicy"]),

        // MARK: Tests
        .testTarget(name: "BulwarkPolicyTests", dependencies: ["BulwarkPolicy", "BulwarkOCI", "BulwarkProfiles"]),
        .testTarget(
            name: "BulwarkEventsTests", dependencies: ["BulwarkEvents", "BulwarkOCI", "BulwarkProfiles", "CBulwarkABI"]),
        .testTarget(
            name: "BulwarkProfilesTests",
            dependencies: ["BulwarkProfiles", "BulwarkPolicy", "BulwarkOCI", "CBulwarkABI", "CSeccomp"]
        ),
        // Process helpers shared by the test targets that run the built executables.
        .target(name: "BulwarkTestSupport", path: "Tests/BulwarkTestSupport"),
        .testTarget(name: "BulwarkCLITests", dependencies: ["BulwarkPolicy", "BulwarkTestSupport"]),
        .testTarget(
            name: "BulwarkKernelTests",
            dependencies: [
                "BulwarkBPF", "BulwarkBPFObject", "BulwarkProfiles", "BulwarkPolicy", "CBulwarkABI", "CLibBPF",
                "BulwarkTestSupport",
            ]
        ),
    ]
)

for target in package.targets where target.type != .system && target.type != .plugin {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
