import Foundation

/// One line from a kernel audit source, classified. `/dev/kmsg` records
/// (`6,1234,5678,-;audit: type=1326 …`) and audit/kernel log lines (`type=SECCOMP msg=audit(…)`,
/// `… kernel: [..] audit: type=1400 …`) are both accepted.
public enum KernelLogLine: Sendable, Equatable {
    case seccomp(SeccompAuditRecord)
    /// An AppArmor record in the form libapparmor's parser reads (`type=AVC msg=audit(…): …`),
    /// with vArmor's action.
    case appArmor(normalized: String, action: String)
    case other

    public init(_ raw: some StringProtocol) {
        let text = Self.message(raw)
        if text.contains("type=1326") || text.contains("type=SECCOMP") {
            if let r = SeccompAuditRecord(line: String(text)) {
                self = .seccomp(r)
                return
            }
            self = .other
            return
        }
        if text.contains("type=1400") || text.contains("type=AVC"), let action = Self.appArmorAction(text) {
            self = .appArmor(normalized: Self.normalizeAppArmor(text), action: action)
            return
        }
        self = .other
    }

    /// The message of a `/dev/kmsg` record (after the first `;` of a `PRI,SEQ,TS,FLAGS;` prefix);
    /// other lines unchanged.
    static func message(_ raw: some StringProtocol) -> Substring {
        let s = Substring(raw)
        if let semi = s.firstIndex(of: ";"),
            s[..<semi].allSatisfy({ $0.isNumber || $0 == "," || $0 == "-" || $0 == "c" }),
            s[..<semi].contains(",")
        {
            return s[s.index(after: semi)...].prefix { $0 != "\n" }
        }
        return s.prefix { $0 != "\n" }
    }

    /// `/dev/kmsg` sequence number of a record, for gap (drop) detection.
    public static func kmsgSequence(_ raw: some StringProtocol) -> UInt64? {
        let parts = raw.prefix { $0 != ";" }.split(separator: ",", maxSplits: 2)
        guard parts.count >= 2 else { return nil }
        return UInt64(parts[1])
    }

    static func appArmorAction(_ s: Substring) -> String? {
        for a in ["DENIED", "AUDIT", "ALLOWED"] where s.contains("apparmor=\"\(a)\"") { return a }
        return nil
    }

    /// vArmor's normalisation: from `type=1400 audit` on, the text becomes `type=AVC msg=audit`,
    /// which libapparmor parses whatever came before it (syslog or kmsg prefixes).
    static func normalizeAppArmor(_ s: Substring) -> String {
        var text: Substring
        if let r = s.range(of: "type=1400 audit") {
            text = Substring("type=AVC msg=audit" + s[r.upperBound...])
        } else if let r = s.range(of: "type=AVC") {
            text = s[r.lowerBound...]
        } else {
            text = s
        }
        return compatibleFields(text)
    }

    /// Kernels since 6.x write `class="file"` and, for newer mediation classes, `requested=` and
    /// `denied=`; the libapparmor of Debian 12 (3.0.8) rejects the whole record for a key it does
    /// not know. Rewritten token by token (quoted values untouched): `class` is dropped,
    /// `requested`/`denied` become `requested_mask`/`denied_mask`.
    static func compatibleFields(_ s: Substring) -> String {
        guard let header = s.range(of: "): ") else { return String(s) }
        var out = String(s[..<header.upperBound])
        var i = header.upperBound
        var first = true
        while i < s.endIndex {
            while i < s.endIndex, s[i] == " " { i = s.index(after: i) }
            guard i < s.endIndex else { break }
            // one token: key=value, the value possibly double-quoted
            var j = i
            var quoted = false
            while j < s.endIndex, quoted || s[j] != " " {
                if s[j] == "\"" { quoted.toggle() }
                j = s.index(after: j)
            }
            var token = s[i..<j]
            let key = token.prefix { $0 != "=" }
            switch key {
            case "class": token = ""
            case "requested": token = "requested_mask" + token.dropFirst(key.count)
            case "denied": token = "denied_mask" + token.dropFirst(key.count)
            default: break
            }
            if !token.isEmpty {
                out += (first ? "" : " ") + token
                first = false
            }
            i = j
        }
        return out
    }
}

/// A profile name from an AppArmor label: `varmor-x//child_0` → `varmor-x`,
/// `varmor-x (enforce)` → `varmor-x`; `unconfined`, `?` and empty → nil.
public func profileName(fromLabel label: String) -> String? {
    let first = label.split(separator: "/", omittingEmptySubsequences: false).first ?? ""
    let name = first.split(separator: " ").first.map(String.init) ?? ""
    return name.isEmpty || name == "?" || name == "unconfined" ? nil : name
}
