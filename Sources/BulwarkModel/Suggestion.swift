import BulwarkOCI

/// The refinement loop of DefenseInDepth's observation mode (`allowViolations: true`): what the
/// allow-list would have refused, and what was allowed and reported instead, turned into the model
/// entries that would have allowed it (`bulwark model suggest NAME`, `--merge` adds them).
extension BehaviorModel {
    /// The model entries that the events of `profile` reported as allowed violations since
    /// `since` (Unix seconds) would need — seccomp `AUDIT|ALLOWED` (its syscall), AppArmor
    /// `ALLOWED` (complain mode), BPF `ALLOWED` — generalised like a recording. Events are the
    /// violation log's lines (vArmor's event format), in any order; others are skipped.
    public static func suggestion(
        for profile: String, from events: [JSONObject], since: UInt64 = 0, generaliser: PathGeneraliser
    ) -> (model: BehaviorModel, events: Int) {
        var m = BehaviorModel(name: profile)
        var used = 0
        for e in events {
            guard e["profileName"]?.string == profile, let action = e["action"]?.string,
                action.split(separator: "|").contains("ALLOWED"), (e["eventTimestamp"]?.unsigned ?? 0) >= since,
                let body = e["event"]?.object
            else { continue }
            switch e["enforcer"]?.string {
            case "Seccomp":
                guard let call = body["syscall"]?.string, !call.isEmpty else { continue }
                m.addSyscall(call)
            case "AppArmor":
                guard m.addAppArmor(body, generaliser: generaliser) else { continue }
            case "BPF":
                m.addBPF(body, generaliser: generaliser)
            default: continue
            }
            used += 1
        }
        return (m, used)
    }
}
