import BulwarkPolicy
import Foundation

/// vArmor's examples live in ../shared/reference/varmor-examples beside the clone (not copied).
enum Examples {
    static let directory: URL? = {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<4 { dir.deleteLastPathComponent() }  // Tests/BulwarkProfilesTests/Support.swift -> repo/..
        let candidate = dir.appendingPathComponent("shared/reference/varmor-examples")
        return FileManager.default.fileExists(atPath: candidate.path) ? candidate : nil
    }()

    /// Out of scope (README of the examples): NetworkProxy and the NRI/Rego enforcer.
    static func outOfScope(_ name: String) -> Bool { name.contains("networkproxy") || name.hasPrefix("PR303__") }

    /// Written for vArmor 0.8 (before raw BPF rules had `qualifiers`): accepted with 0.8's
    /// meaning and a warning at this field; `policy migrate` writes the current form.
    static let legacy: [String: String] = [
        "test__examples__5-mutiple-enforcers__vpol-enhance.yaml":
            "spec.policy.enhanceProtect.bpfRawRules.network.egress.toDestinations[0].qualifiers"
    ]

    /// Written for vArmor 0.4 (`egresses`, renamed `egress` before 0.8): rejected, as vArmor's
    /// current CRD rejects them.
    static let stale: [String: String] = [
        "test__benchmark__v0.4.0__bpf-program__policy-benchmark-1.yaml":
            "spec.policy.enhanceProtect.bpfRawRules.network.egresses: unknown field",
        "test__benchmark__v0.4.0__bpf-program__policy-benchmark-2.yaml":
            "spec.policy.enhanceProtect.bpfRawRules.network.egresses: unknown field",
        "test__benchmark__v0.4.0__bpf-program__policy-benchmark-3.yaml":
            "spec.policy.enhanceProtect.bpfRawRules.network.egresses: unknown field",
        "test__benchmark__v0.4.0__bpf-program__policy-benchmark-4.yaml":
            "spec.policy.enhanceProtect.bpfRawRules.network.egresses: unknown field",
    ]

    static func files() -> [URL] {
        guard let directory else { return [] }
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") && !outOfScope($0) }.sorted().map {
            directory.appendingPathComponent($0)
        }
    }

    static func parse(_ url: URL) -> PolicyFile {
        PolicyParser.parse((try? String(contentsOf: url, encoding: .utf8)) ?? "", file: url.lastPathComponent)
    }
}
