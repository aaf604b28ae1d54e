import Foundation
import Testing

/// What a test needs from the machine (root, executables, files, a kernel feature).
///
/// Unmet needs skip the test through the framework — `@Test(.needs(x))` is an `.enabled(if:)`
/// trait carrying the reason, so the run lists it as skipped, never as passed. Where every tier
/// must run (CI as root: `BULWARK_REQUIRE_TOOLS=1`; the VM's kernel tier: `BULWARK_REQUIRE_KERNEL=1`)
/// the trait lets the test run and `check()` at its start fails it, naming what is missing.
public struct Needs: Sendable {
    public let met: Bool
    public let reason: String
    /// True when an unmet need is a failure here.
    public let required: Bool

    public init(met: Bool, reason: String, requiredBy variable: String = "BULWARK_REQUIRE_TOOLS") {
        self.init(
            met: met, reason: reason, required: ProcessInfo.processInfo.environment[variable] == "1" && getuid() == 0)
    }

    private init(met: Bool, reason: String, required: Bool) {
        self.met = met
        self.reason = reason
        self.required = required
    }

    /// Both needs (required where either is).
    public func and(_ other: Needs) -> Needs {
        Needs(
            met: met && other.met, reason: [self, other].filter { !$0.met }.map(\.reason).joined(separator: "; "),
            required: required || other.required)
    }

    /// Root and these executables or files (nil: a tool that was not found).
    public init(root: Bool = false, _ paths: [String?] = [], _ reason: String) {
        let present = paths.allSatisfy { $0.map { FileManager.default.fileExists(atPath: $0) } ?? false }
        self.init(met: (!root || getuid() == 0) && present, reason: reason)
    }

    /// In the test body: true when the test can go on; false after recording a failure (only
    /// reachable where the need is required — elsewhere the trait skipped the test).
    public func check(sourceLocation: SourceLocation = #_sourceLocation) -> Bool {
        if met { return true }
        Issue.record("required here but unmet: \(reason)", sourceLocation: sourceLocation)
        return false
    }

    /// The first executable found among `candidates`.
    public static func tool(_ candidates: String...) -> String? {
        candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

extension Trait where Self == ConditionTrait {
    /// Runs the test only when `needs` is met (or required); otherwise a skip with the reason.
    public static func needs(_ needs: Needs) -> Self {
        .enabled(if: needs.met || needs.required, Comment(rawValue: needs.reason))
    }
}
