import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkTestSupport
import Foundation
import Testing

@Suite("vArmor examples (conformance)")
struct ConformanceTests {
    static let needs = Needs(
        met: !Examples.files().isEmpty, reason: "../shared/reference/varmor-examples is absent (a user's clone)")

    @Test(.needs(needs)) func everyInScopeExampleValidatesAndCompiles() throws {
        guard Self.needs.check() else { return }
        let files = Examples.files()
        var policies = 0
        for url in files {
            let r = Examples.parse(url)
            let name = url.lastPathComponent
            if let expected = Examples.stale[name] {
                #expect(!r.isValid, "\(name) is stale and must be rejected")
                #expect(r.errors.contains { "\($0.path): \($0.message)" == expected }, "\(name): \(r.errors)")
                continue
            }
            #expect(r.isValid, "\(name): \(r.errors.map(\.description))")
            if let field = Examples.legacy[name] {
                // issue 12: vArmor 0.8 syntax, accepted with a warning; the migrated text is the
                // current form and compiles to the same BPF profile
                #expect(
                    r.diagnostics.contains {
                        $0.severity == .warning && $0.path == field && $0.message.contains("0.8")
                    },
                    "\(name): \(r.diagnostics)")
                let text = try String(contentsOf: url, encoding: .utf8)
                let migrated = PolicyParser.parse(TextInsertion.apply(r.migrations, to: text), file: name)
                #expect(migrated.isValid && migrated.migrations.isEmpty, "\(name): \(migrated.diagnostics)")
                #expect(!migrated.diagnostics.contains { $0.message.contains("0.8") })
                for (a, b) in zip(r.policies, migrated.policies) where a.spec.policy.enforcers.contains(.bpf) {
                    #expect(
                        try BPFCompiler().compile(a, profileName: "p")
                            == (try BPFCompiler().compile(b, profileName: "p")),
                        "\(name)")
                }
            } else {
                #expect(r.migrations.isEmpty, "\(name)")
            }
            for p in r.policies {
                policies += 1
                let profile = ProfileNaming.profileName(for: p)
                let e = p.spec.policy.enforcers
                if e.contains(.appArmor) {
                    let aa = try AppArmorCompiler(diskDevices: ["vda"]).compile(p, profileName: profile)
                    #expect(aa.text.contains("profile \(profile) "), "\(name)")
                }
                if e.contains(.seccomp) {
                    let sc = try SeccompCompiler().compile(p)
                    #expect(SeccompVocabulary.actions.contains(sc.defaultAction))
                }
                if e.contains(.bpf) {
                    let bpf = try BPFCompiler(diskDevices: ["vda"]).compile(p, profileName: profile)
                    #expect(bpf.name == profile)
                }
            }
        }
        #expect(policies >= 30, "expected the 30-odd example policies, parsed \(policies)")
    }
}
