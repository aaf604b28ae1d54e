import BulwarkEvents
import BulwarkFuzz
import BulwarkOCI
import Foundation
import Testing

/// The fuzzing harnesses (scripts/fuzz.sh) over their seeds in an ordinary build: every harness
/// runs in every test run, and the inputs the fuzzers found stay regression inputs.
@Suite("Fuzzing harnesses replay their seeds")
struct FuzzSeedTests {
    static let repository: URL = {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }
        return dir
    }()

    @Test(arguments: Harness.allCases)
    func seedsReplay(harness: Harness) throws {
        let dir = Self.repository.appendingPathComponent("fuzz/seeds/\(harness.rawValue)")
        let names = try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted()
        #expect(!names.isEmpty)
        for name in names {
            harness.run(Array(try Data(contentsOf: dir.appendingPathComponent(name))))
        }
    }

    /// What the audit-line fuzzer found: libapparmor 3.0.8 leaks on records the kernel never
    /// writes (unknown or repeated keys, two keys for one field, malformed numbers). Such records
    /// never reach it; a kernel-shaped record still does.
    @Test func recordsLibapparmorWouldLeakOnNeverReachIt() throws {
        let dir = Self.repository.appendingPathComponent("fuzz/seeds/audit-line")
        for name in try FileManager.default.contentsOfDirectory(atPath: dir.path) where name.hasPrefix("leak-") {
            let line = try String(contentsOf: dir.appendingPathComponent(name), encoding: .utf8)
            if case .appArmor(let normalized, _) = KernelLogLine(line) {
                // an unknown key is dropped, the rest of the record is kernel-shaped
                #expect(!normalized.contains("protocil") && name == "leak-unknown-key.txt", "\(name): \(normalized)")
            }
        }
        let good =
            "audit: type=1400 audit(1.2:3): apparmor=\"DENIED\" operation=\"open\" class=\"file\" "
            + "profile=\"varmor-shop-web\" name=2F6574632F736861646F77 pid=1 comm=\"cat\" requested_mask=\"r\" "
            + "denied_mask=\"r\" fsuid=0 ouid=0"
        guard case .appArmor(let normalized, "DENIED") = KernelLogLine(good) else {
            Issue.record("a kernel-shaped record was refused")
            return
        }
        #expect(AppArmorLog(normalized: normalized)?.body.object?["name"] == .string("/etc/shadow"))
    }
}
