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
        if text.contains("type=1400") || text.contains("type=AVC"), let action = Self.appArmorAction(text),
            let normalized = Self.normalizeAppArmor(text)
        {
            self = .appArmor(normalized: normalized, action: action)
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
    /// which libapparmor parses whatever came before it (syslog or kmsg prefixes). Nil when the
    /// record is not shaped as the kernel writes one (see `compatibleFields`).
    static func normalizeAppArmor(_ s: Substring) -> String? {
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
    /// not know. Rewritten token by token (quoted values untouched): keys it does not know (such
    /// as `class`) are dropped, `requested`/`denied` become `requested_mask`/`denied_mask`.
    ///
    /// Only records shaped as the kernel writes them reach libapparmor: `type=AVC msg=audit(N.N:N): `
    /// then `key=value` tokens, each value in one of the forms `form` knows (a double-quoted string
    /// without inner quotes, hex, digits, an address). libapparmor 3.0.8
    /// leaks memory on some malformed records (found by the audit-line fuzzer), so they are
    /// refused here.
    static func compatibleFields(_ s: Substring) -> String? {
        // bytes, not characters: the kernel hex-encodes every byte outside printable ASCII, and a
        // quote or space followed by a combining mark is one Character but the bytes libapparmor reads
        guard s.utf8.allSatisfy({ (0x20...0x7E).contains($0) }) else { return nil }
        guard let header = s.range(of: "): "), isAuditHeader(s[..<header.lowerBound]) else { return nil }
        var out = String(s[..<header.upperBound])
        var i = header.upperBound
        var first = true
        var seen: Set<Substring> = []
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
            // every token is key=value in a form the kernel writes; a repeated key (or two keys for
            // one field) would make libapparmor overwrite the field without freeing it
            guard isKey(key), key.count < token.count, let form = Self.form(token.dropFirst(key.count + 1)),
                seen.insert(Self.fieldOf[key] ?? key).inserted
            else { return nil }
            switch key {
            case "requested": token = "requested_mask" + token.dropFirst(key.count)
            case "denied": token = "denied_mask" + token.dropFirst(key.count)
            default: break
            }
            let field = String(token.prefix { $0 != "=" })
            if let forms = Self.libapparmorKeys[field] {
                guard forms.contains(form) else { return nil }
            } else {
                // a key libapparmor 3.0.8 does not know (`class`, newer kernels' fields, noise)
                // would fail the record and leak in its error path: dropped
                token = ""
            }
            if !token.isEmpty {
                out += (first ? "" : " ") + token
                first = false
            }
            i = j
        }
        return out
    }

    /// How a value is written (the shapes libapparmor 3.0.8's grammar reads for a key).
    enum ValueForm {
        case quoted, hex, digits, negative, ipAddress
    }

    /// The record keys libapparmor 3.0.8 parses and the value forms it reads for each (probed
    /// against it: any other key or form fails the record, and a failed record can leak in its
    /// error path).
    static let libapparmorKeys: [String: Set<ValueForm>] = {
        var k: [String: Set<ValueForm>] = [:]
        for n in [
            "apparmor", "operation", "info", "requested_mask", "denied_mask", "target", "family", "sock_type", "addr",
            "peer", "attribute", "capname", "srcname", "fstype", "flags", "bus", "path", "interface", "member", "mask",
            "hostname", "terminal",
        ] { k[n] = [.quoted] }
        for n in ["profile", "label", "name", "name2", "comm", "peer_label", "peer_profile", "namespace", "exe"] {
            k[n] = [.quoted, .hex, .digits]
        }
        for n in ["pid", "peer_pid", "fsuid", "ouid", "lport", "fport", "parent", "capability", "task", "magic_token"] {
            k[n] = [.digits]
        }
        k["error"] = [.digits, .negative]
        k["protocol"] = [.quoted, .digits]
        k["signal"] = [.hex, .digits]
        k["laddr"] = [.ipAddress]
        k["faddr"] = [.ipAddress]
        return k
    }()

    /// Keys libapparmor stores in the same record field (the first key names the field).
    static let fieldOf: [Substring: Substring] = [
        "label": "profile", "mask": "denied_mask", "requested": "requested_mask", "denied": "denied_mask",
        "peer_label": "peer_profile", "capname": "name", "target": "name2",
    ]

    static func form(_ v: Substring) -> ValueForm? {
        if v.count >= 2 && v.first == "\"" && v.last == "\"" && !v.dropFirst().dropLast().contains("\"") {
            // an odd run of backslashes before the closing quote escapes it for libapparmor's lexer
            // (the kernel does not escape backslashes): an unterminated string, and a leak
            return v.dropFirst().dropLast().reversed().prefix { $0 == "\\" }.count % 2 == 0 ? .quoted : nil
        }
        guard !v.isEmpty, v.count <= 64 else { return nil }
        if v.count <= 10 && v.allSatisfy(\.isASCIIDigit) { return .digits }
        if v.first == "-", v.count >= 2, v.count <= 11, v.dropFirst().allSatisfy(\.isASCIIDigit) { return .negative }
        if v.allSatisfy({ $0.isASCIIDigit || ("A"..."F").contains($0) }) && v.count % 2 == 0 { return .hex }
        if v.allSatisfy({ $0.isASCIIDigit || $0 == "." }) && v.split(separator: ".").count == 4 { return .ipAddress }
        if v.contains(":") && v.allSatisfy({ $0.isHexDigit || $0 == ":" }) { return .ipAddress }
        return nil
    }

    static func isAuditHeader(_ h: Substring) -> Bool {
        guard h.hasPrefix("type=AVC msg=audit(") else { return false }
        let stamp = h.dropFirst("type=AVC msg=audit(".count)
        let parts = stamp.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let time = parts.first else { return false }
        let secs = time.split(separator: ".", omittingEmptySubsequences: false)
        return secs.count == 2 && (secs + [parts[1]]).allSatisfy { !$0.isEmpty && $0.allSatisfy(\.isASCIIDigit) }
    }

    static func isKey(_ key: Substring) -> Bool {
        !key.isEmpty && key.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}

/// A profile name from an AppArmor label: `varmor-x//child_0` → `varmor-x`,
/// `varmor-x (enforce)` → `varmor-x`; `unconfined`, `?` and empty → nil.
public func profileName(fromLabel label: String) -> String? {
    let first = label.split(separator: "/", omittingEmptySubsequences: false).first ?? ""
    let name = first.split(separator: " ").first.map(String.init) ?? ""
    return name.isEmpty || name == "?" || name == "unconfined" ? nil : name
}
