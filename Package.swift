// swift-tools-version:6.1
import Foundation
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
let nio: Target.Dependency = .product(name: "NIOCore", package: "swift-nio")
let nioPosix: Target.Dependency = .product(name: "NIOPosix", package: "swift-nio")
let nioHTTP: Target.Dependency = .product(name: "NIOHTTP1", package: "swift-nio")
let logging: Target.Dependency = .product(name: "Logging", package: "swift-log")
let metrics: Target.Dependency = .product(name: "Metrics", package: "swift-metrics")
let prometheus: Target.Dependency = .product(name: "Prometheus", package: "swift-prometheus")
let lifecycle: Target.Dependency = .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")
let unixSignals: Target.Dependency = .product(name: "UnixSignals", package: "swift-service-lifecycle")
let protobuf: Target.Dependency = .product(name: "SwiftProtobuf", package: "swift-protobuf")
let httpClient: Target.Dependency = .product(name: "AsyncHTTPClient", package: "async-http-client")
let nioSSL: Target.Dependency = .product(name: "NIOSSL", package: "swift-nio-ssl")

let package = Package(
    name: "bulwark",
    products: [
        .executable(name: "bulwark", targets: ["bulwark"]),
        .executable(name: "bulwark-hook", targets: ["bulwark-hook"]),
        .executable(name: "bulwark-runtime", targets: ["bulwark-runtime"]),
        .executable(name: "bulwarkd", targets: ["bulwarkd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-protobuf.git", from: "1.39.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        // MARK: Pure logic
        .target(name: "BulwarkPolicy", dependencies: ["BulwarkOCI", yams]),
        .target(name: "BulwarkOCI"),
        // What the container start path decides from (the published start index) and the pure
        // spec patcher.
        .target(name: "BulwarkStart", dependencies: ["BulwarkOCI"]),
        // Behaviour models (vArmor's ArmorProfileModel data): the format, merging, path generalisation.
        .target(name: "BulwarkModel", dependencies: ["BulwarkOCI", "BulwarkPolicy"]),
        .target(name: "BulwarkProfiles", dependencies: ["BulwarkPolicy", "BulwarkModel", "BulwarkOCI", "CBulwarkABI"]),
        // Kubernetes objects and the cluster's addresses for egress rules (pure: no I/O)
        .target(
            name: "BulwarkCluster",
            dependencies: ["BulwarkPolicy", "BulwarkProfiles", "BulwarkModel", "BulwarkOCI", yams]),
        // vArmor-format violation events from BPF records and kernel audit lines (pure).
        .target(
            name: "BulwarkEvents",
            dependencies: ["BulwarkOCI", "BulwarkPolicy", "BulwarkProfiles", "CBulwarkABI", "CAppArmor"]),

        // NRI: the wire protocol (mux, ttrpc; generated protobuf in Generated/, see proto/) and the
        // plugin's decisions (pure).
        .target(
            name: "BulwarkNRI",
            dependencies: ["BulwarkModel", "BulwarkOCI", "BulwarkPolicy", "BulwarkProfiles", protobuf],
            exclude: ["Generated/README.md"]),

        // MARK: C
        .target(name: "CBulwarkABI"),
        .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
        .systemLibrary(name: "CLibBPF", pkgConfig: "libbpf", providers: [.apt(["libbpf-dev"])]),
        // libapparmor's audit-record parser (aalogparse), for AppArmor events.
        .systemLibrary(name: "CAppArmor", pkgConfig: "libapparmor", providers: [.apt(["libapparmor-dev"])]),

        // MARK: Build: the BPF object, compiled by clang -target bpf during `swift build`
        .executableTarget(name: "bulwark-bpf-embed"),
        .plugin(name: "BPFObjectPlugin", capability: .buildTool(), dependencies: ["bulwark-bpf-embed"]),
        .target(name: "BulwarkBPFObject", dependencies: ["BulwarkOCI"], plugins: ["BPFObjectPlugin"]),

        // MARK: Thin I/O
        // The syscall seam: bounded reads, atomic writes, trusted directories, spawn, typed errno.
        // No Foundation (the start-path executables link it).
        .target(name: "BulwarkSystem", dependencies: ["CBulwarkSpawn"]),
        // glibc's posix_spawn_file_actions_addclosefrom_np, which Swift's Glibc module lacks.
        .target(name: "CBulwarkSpawn"),
        // The runtime wrapper: start index + spec patcher + thin I/O (no YAML, compiler or libbpf).
        .target(name: "BulwarkRuntime", dependencies: ["BulwarkOCI", "BulwarkStart", "BulwarkSystem"]),
        // The OCI hook: binds at createRuntime, unbinds at poststop, records containers.
        .target(name: "BulwarkHook", dependencies: ["BulwarkBPFMaps", "BulwarkOCI", "BulwarkSystem"]),
        // The one way a profile reaches the kernel (compile + deliver to every enforcer), policy
        // files from disk, and the start index's publisher.
        .target(
            name: "BulwarkDelivery",
            dependencies: [
                "BulwarkBPF", "BulwarkCluster", "BulwarkModel", "CBulwarkABI", "BulwarkOCI", "BulwarkPolicy",
                "BulwarkProfiles", "BulwarkStart",
                "BulwarkSystem", logging,
            ]),
        // The pinned enforcer state: maps, bindings, profile names (what the hook needs; no loader,
        // no embedded object, no compiler).
        .target(name: "BulwarkBPFMaps", dependencies: ["CLibBPF", "CBulwarkABI", "BulwarkOCI"]),
        // Loading, upgrading and unloading the enforcer, applying compiled profiles, the ring buffer,
        // the selftest.
        .target(
            name: "BulwarkBPF",
            dependencies: [
                "BulwarkBPFMaps", "BulwarkProfiles", "BulwarkPolicy", "BulwarkBPFObject", "CLibBPF", "CBulwarkABI",
            ]
        ),

        // The Kubernetes API client: list/watch over HTTPS (async-http-client, swift-nio-ssl), the
        // in-cluster and kubeconfig credentials; the bookkeeping is BulwarkCluster's (pure).
        .target(
            name: "BulwarkKube",
            dependencies: [
                "BulwarkCluster", "BulwarkOCI", "BulwarkPolicy", "BulwarkSystem", httpClient, nioSSL, nio, nioHTTP,
                logging,
            ]),

        // The node agent: policy store, event pipeline, node socket, metrics (bulwarkd).
        .target(
            name: "BulwarkAgent",
            dependencies: [
                "BulwarkBPF", "BulwarkClient", "BulwarkCluster", "BulwarkDelivery", "BulwarkEvents", "BulwarkKube",
                "BulwarkNRI", "BulwarkNRIPlugin",
                "BulwarkOCI", "BulwarkPolicy", "BulwarkProfiles", "BulwarkHook", "BulwarkStart", "BulwarkSystem",
                "CAppArmor", "CSeccomp", nio, nioPosix, nioHTTP, logging, metrics,
                prometheus, lifecycle, unixSignals, protobuf,
            ]
        ),
        // The NRI plugin's connection to containerd/CRI-O (threads and a socket; no NIO), hosted by
        // bulwarkd and runnable alone as `bulwark nri`.
        .target(
            name: "BulwarkNRIPlugin",
            dependencies: [
                "BulwarkBPF", "BulwarkClient", "BulwarkDelivery", "BulwarkModel", "BulwarkNRI", "BulwarkOCI",
                "BulwarkPolicy", "BulwarkProfiles", "BulwarkSystem", logging, metrics, protobuf,
            ]),
        // Client side of the node socket (CLI `status`, `containers`, `events`); no NIO.
        .target(name: "BulwarkClient", dependencies: ["BulwarkOCI"]),

        // MARK: Executables
        .executableTarget(
            name: "bulwark",
            dependencies: [
                "BulwarkCluster", "BulwarkKube", "BulwarkPolicy", "BulwarkProfiles", "BulwarkOCI", "BulwarkSystem",
                "BulwarkBPF",
                "BulwarkClient",
                "BulwarkDelivery", "BulwarkModel", "BulwarkNRIPlugin", "BulwarkStart", argumentParser, logging, yams,
            ]
        ),

        .executableTarget(
            name: "bulwark-hook", dependencies: ["BulwarkHook", "BulwarkBPFMaps", "BulwarkOCI", "BulwarkSystem"]),
        .executableTarget(
            name: "bulwark-runtime", dependencies: ["BulwarkRuntime", "BulwarkOCI", "BulwarkStart", "BulwarkSystem"]),

        .executableTarget(
            name: "bulwarkd",
            dependencies: [
                "BulwarkAgent", "BulwarkDelivery", "BulwarkPolicy", "BulwarkSystem", argumentParser, logging, lifecycle,
                unixSignals,
                metrics,
                prometheus,
            ]),

        // MARK: Fuzzing (scripts/fuzz.sh): the harnesses, and a libFuzzer entry point that is a
        // corpus replayer in ordinary builds (-DFUZZING with -sanitize=fuzzer drops its main).
        .target(
            name: "BulwarkFuzz",
            dependencies: [
                "BulwarkPolicy", "BulwarkOCI", "BulwarkEvents", "BulwarkNRI", "BulwarkProfiles", "BulwarkCluster",
            ]),
        .target(name: "CFuzzDriver"),
        .executableTarget(name: "bulwark-fuzz", dependencies: ["BulwarkFuzz", "CFuzzDriver"]),

        // MARK: Benchmarks (scripts/bench-*.sh)
        .executableTarget(
            name: "bulwark-bench-bpf", dependencies: ["BulwarkBPF", "BulwarkProfiles", "BulwarkPolicy"]),
        .executableTarget(
            name: "bulwark-bench-model", dependencies: ["BulwarkBPF", "BulwarkBPFMaps", "BulwarkModel", "BulwarkOCI"]),
        .executableTarget(
            name: "bulwark-bench-nri",
            dependencies: ["BulwarkNRI", "BulwarkNRIPlugin", "BulwarkPolicy", "BulwarkSystem", "NRITestPeer", logging]),
        .executableTarget(
            name: "bulwark-bench-cluster",
            dependencies: ["BulwarkCluster", "BulwarkOCI", "BulwarkPolicy", "BulwarkProfiles", "KubeTestServer"]),
        .executableTarget(
            name: "bulwark-bench-events",
            dependencies: [
                "BulwarkAgent", "BulwarkEvents", "BulwarkClient", "BulwarkHook", "BulwarkOCI", "CBulwarkABI", logging,
            ]),

        // MARK: Tests
        .testTarget(
            name: "BulwarkPolicyTests",
            dependencies: [
                "BulwarkPolicy", "BulwarkOCI", "BulwarkProfiles", "BulwarkFuzz", "BulwarkStart", "BulwarkDelivery",
                "BulwarkModel",
            ],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "BulwarkEventsTests",
            dependencies: ["BulwarkEvents", "BulwarkOCI", "BulwarkProfiles", "CBulwarkABI", "BulwarkTestSupport"]),
        .testTarget(
            name: "BulwarkProfilesTests",
            dependencies: [
                "BulwarkProfiles", "BulwarkModel", "BulwarkPolicy", "BulwarkOCI", "CBulwarkABI", "CSeccomp",
                "BulwarkTestSupport",
            ]
        ),
        // Process helpers shared by the test targets that run the built executables.
        .target(name: "BulwarkTestSupport", dependencies: ["CBulwarkSpawn"], path: "Tests/BulwarkTestSupport"),
        // A stand-in for the Kubernetes API server on the wire (tests, benchmark).
        .target(
            name: "KubeTestServer", dependencies: ["BulwarkOCI", nio, nioPosix, nioHTTP, nioSSL],
            path: "Tests/KubeTestServer"),
        // The runtime side of NRI in Swift (tests, benchmark).
        .target(name: "NRITestPeer", dependencies: ["BulwarkNRI", protobuf], path: "Tests/NRITestPeer"),
        .testTarget(name: "BulwarkNRITests", dependencies: ["BulwarkNRI", protobuf]),
        .testTarget(
            name: "BulwarkClusterTests",
            dependencies: [
                "BulwarkCluster", "BulwarkKube", "BulwarkPolicy", "BulwarkProfiles", "BulwarkOCI", "BulwarkDelivery",
                "KubeTestServer", logging, yams,
            ]),
        .testTarget(
            name: "BulwarkModelTests", dependencies: ["BulwarkModel", "BulwarkOCI", "BulwarkDelivery"],
            exclude: ["Fixtures"]),
        .testTarget(
            name: "BulwarkCLITests",
            dependencies: ["BulwarkOCI", "BulwarkPolicy", "BulwarkStart", "BulwarkTestSupport", "KubeTestServer"]),
        .testTarget(
            name: "BulwarkAgentTests",
            dependencies: [
                "BulwarkAgent", "BulwarkClient", "BulwarkEvents", "BulwarkOCI", "BulwarkPolicy", "BulwarkProfiles",
                "BulwarkHook", "BulwarkDelivery", "BulwarkStart", "CBulwarkABI", "BulwarkTestSupport", "BulwarkNRI",
                "BulwarkNRIPlugin", "NRITestPeer", "BulwarkBPFMaps", "BulwarkModel", "KubeTestServer",
                "BulwarkSystem", logging, protobuf, prometheus,
            ]
        ),
        .testTarget(
            name: "BulwarkKernelTests",
            dependencies: [
                "BulwarkBPF", "BulwarkBPFObject", "BulwarkProfiles", "BulwarkPolicy", "CBulwarkABI", "CLibBPF",
                "BulwarkClient", "BulwarkOCI", "BulwarkTestSupport", "BulwarkNRI", "BulwarkNRIPlugin", "NRITestPeer",
                "BulwarkSystem", "KubeTestServer", logging,
            ]
        ),
    ]
)

// scripts/fuzz.sh sets BULWARK_FUZZ_BUILD=1: the harnesses and the modules they read through are
// built with libFuzzer's coverage and AddressSanitizer (only these: build tools stay plain).
if ProcessInfo.processInfo.environment["BULWARK_FUZZ_BUILD"] == "1" {
    let instrumented: Set<String> = [
        "BulwarkFuzz", "bulwark-fuzz", "BulwarkPolicy", "BulwarkOCI", "BulwarkEvents", "BulwarkNRI", "BulwarkProfiles",
        "BulwarkCluster",
    ]
    for target in package.targets where instrumented.contains(target.name) {
        target.swiftSettings =
            (target.swiftSettings ?? []) + [.unsafeFlags(["-sanitize=fuzzer,address"]), .define("FUZZING")]
        if target.name == "bulwark-fuzz" {
            target.linkerSettings = [.unsafeFlags(["-sanitize=fuzzer,address", "-use-ld=lld"])]
        }
    }
}

for target in package.targets where target.type != .system && target.type != .plugin {
    var settings = target.swiftSettings ?? []
    settings.append(.enableUpcomingFeature("ExistentialAny"))
    settings.append(.enableUpcomingFeature("MemberImportVisibility"))
    target.swiftSettings = settings
}
