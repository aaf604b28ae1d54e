import BulwarkOCI
import Foundation

/// A seccomp audit record (`type=1326` / `type=SECCOMP`) from the kernel log (`/dev/kmsg`,
/// `kern.log`) or the audit log, parsed as vArmor does (reference/varmor.md §6.3).
public struct SeccompAuditRecord: Sendable, Equatable {
    /// `1740621808.346:683`
    public var auditID: String
    public var epoch: UInt64
    /// The AppArmor label of the task (`subj=`), empty when absent.
    public var subject: String
    public var pid: UInt32
    public var comm: String
    public var exe: String
    public var syscall: Int

    /// Nil when the line is not a seccomp record or lacks the audit id, pid or syscall.
    public init?(line: String) {
        guard line.contains("type=1326") || line.contains("type=SECCOMP") else { return nil }
        guard let open = line.range(of: "audit("), let close = line[open.upperBound...].firstIndex(of: ")") else {
            return nil
        }
        auditID = String(line[open.upperBound..<close])
        guard let epoch = UInt64(auditID.prefix { $0 != "." }) else { return nil }
        self.epoch = epoch
        let fields = Self.fields(String(line[close...]))
        guard let pid = fields["pid"].flatMap(UInt32.init), let syscall = fields["syscall"].flatMap(Int.init) else {
            return nil
        }
        self.pid = pid
        self.syscall = syscall
        comm = fields["comm"] ?? ""
        exe = fields["exe"] ?? ""
        subject = fields["subj"] ?? ""
    }

    /// `key=value` pairs; values may be double-quoted (and then contain spaces). `subj` runs to
    /// ` pid=` because an AppArmor label contains a space (`name (enforce)`).
    static func fields(_ s: String) -> [String: String] {
        var out: [String: String] = [:]
        var rest = Substring(s)
        if let subj = rest.range(of: " subj=") {
            let after = rest[subj.upperBound...]
            let end = after.range(of: " pid=")?.lowerBound ?? after.firstIndex(of: " ") ?? after.endIndex
            var value = after[..<end]
            while value.first == "=" { value = value.dropFirst() }  // `subj==` in some logs
            out["subj"] = String(value).trimmingQuotes
            rest = rest[..<subj.lowerBound] + after[end...]
        }
        var i = rest.startIndex
        while i < rest.endIndex {
            while i < rest.endIndex, rest[i] == " " { i = rest.index(after: i) }
            guard let eq = rest[i...].firstIndex(of: "=") else { break }
            if let space = rest[i..<eq].firstIndex(of: " ") {  // a word without `=`: skip it
                i = space
                continue
            }
            let key = String(rest[i..<eq])
            var j = rest.index(after: eq)
            let value: String
            if j < rest.endIndex, rest[j] == "\"" {
                let start = rest.index(after: j)
                let end = rest[start...].firstIndex(of: "\"") ?? rest.endIndex
                value = String(rest[start..<end])
                j = end < rest.endIndex ? rest.index(after: end) : end
            } else {
                let end = rest[j...].firstIndex(of: " ") ?? rest.endIndex
                value = String(rest[j..<end])
                j = end
            }
            if out[key] == nil { out[key] = value }
            i = j
        }
        return out
    }

    /// The profile named by the subject label: `varmor-x//child (enforce)` → `varmor-x`; nil for
    /// none, `?` or `unconfined`.
    public var profileName: String? { BulwarkEvents.profileName(fromLabel: subject) }

    /// vArmor's body; `syscallName` resolves the native-architecture number (libseccomp, in the caller).
    public func body(syscallName: String) -> JSONValue {
        .object(
            JSONObject([
                ("auditID", .string(auditID)), ("epoch", .number(epoch)), ("subj", .string(subject)),
                ("pid", .number(pid)), ("comm", .string(comm)), ("exe", .string(exe)),
                ("syscall", .string(syscallName)),
            ]))
    }
}

extension StringProtocol {
    var trimmingQuotes: String {
        var s = Substring(self)
        while s.first == "\"" { s = s.dropFirst() }
        while s.last == "\"" { s = s.dropLast() }
        return String(s)
    }
}
