/// Turns a recorded path into the pattern a model keeps, so that what changes from one run of a
/// container to the next (process ids, overlay snapshot numbers, temporary and random names) does
/// not make the allow-list refuse the next run. vArmor's rules (`trimPath`,
/// `../shared/reference/varmor.md` §7.3), in the same order, then — where vArmor asks its classifier
/// service to find random strings — a fixed set of rules for what is clearly random: UUIDs, long hex
/// runs, long digit runs, Kubernetes' atomic-writer directories (`..2025_06_04_09_13_27.1178563029`).
/// Patterns use AppArmor's glob (`*` one component or part of it, `**` anything below).
public struct PathGeneraliser: Sendable {
    /// Directories under which container root filesystems live on this node (overlay lower/upper
    /// directories from /proc/mounts, up to their first numeric component — vArmor's
    /// `parseOverlayInfo`): a path under one is a host path of a container file, its numbers are
    /// snapshot ids.
    public var overlayPrefixes: [String]

    public init(overlayPrefixes: [String] = []) { self.overlayPrefixes = overlayPrefixes }

    /// Library directories: read-only access anywhere below one becomes `<dir>/**`.
    static let libraryDirectories = [
        "/lib/x86_64-linux-gnu/", "/usr/lib/x86_64-linux-gnu/", "/lib/aarch64-linux-gnu/",
        "/usr/lib/aarch64-linux-gnu/",
    ]
    static let serviceAccountDirectories = [
        "/run/secrets/kubernetes.io/serviceaccount/", "/var/run/secrets/kubernetes.io/serviceaccount/",
    ]
    /// Never searched for random components (vArmor's `randomExclusions`): names there are chosen by
    /// the system, and a `*` in them would widen what the profile allows over system files.
    static let randomExclusions = ["/lib/", "/usr/lib/", "/usr/local/lib/", "/sys/", "/proc/", "/var/lib/"]

    /// - Parameter writes: the access wrote, appended, linked or locked (vArmor's mask `a w l k`):
    ///   such an access to a library directory is kept exact.
    public func generalise(_ path: String, writes: Bool) -> String {
        var path = path
        if let prefix = overlayPrefixes.first(where: { path.hasPrefix($0) }) {
            path = prefix + Self.replacingNumericComponents(path.dropFirst(prefix.count))
        } else if path.contains("/snapshots/"), path.contains("/fs/") {
            path = Self.replacingSnapshotNumbers(path)
        }
        if !writes {
            for dir in Self.libraryDirectories where path.hasPrefix(dir) {
                return path == dir ? path : dir + "**"
            }
        }
        if path.hasPrefix("/tmp/") { return path == "/tmp/" ? path : "/tmp/**" }
        for dir in Self.serviceAccountDirectories where path.hasPrefix(dir) { return dir + "**" }
        if path.hasPrefix("/proc") {
            var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
            for i in parts.indices where !parts[i].isEmpty && parts[i].utf8.allSatisfy(Self.isDigit) { parts[i] = "*" }
            if let m = parts.firstIndex(of: "map_files"), m + 1 < parts.count {
                parts = Array(parts[...m]) + ["*"]
            }
            return parts.joined(separator: "/")
        }
        if Self.randomExclusions.contains(where: { path.hasPrefix($0) }) { return path }
        return path.split(separator: "/", omittingEmptySubsequences: false).map(Self.derandomised).joined(
            separator: "/")
    }

    // MARK: Components

    static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }
    static func isHex(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "f"))
            || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "F"))
    }

    /// `\b\d+\b` → `*` as vArmor does below an overlay prefix: numbers that stand alone between
    /// non-word characters (`snapshots/86/fs`), not digits inside names (`nginx1.conf`).
    static func replacingNumericComponents(_ s: Substring) -> String {
        let u = Array(s.utf8)
        func isWord(_ c: UInt8) -> Bool {
            isDigit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
                || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
                || c == UInt8(ascii: "_")
        }
        var out: [UInt8] = []
        var i = 0
        while i < u.count {
            if isDigit(u[i]), i == 0 || !isWord(u[i - 1]) {
                var j = i
                while j < u.count, isDigit(u[j]) { j += 1 }
                if j == u.count || !isWord(u[j]) {
                    out.append(UInt8(ascii: "*"))
                    i = j
                    continue
                }
            }
            out.append(u[i])
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `/snapshots/<digits>/fs/` → `/snapshots/*/fs/`, every occurrence.
    static func replacingSnapshotNumbers(_ path: String) -> String {
        var parts = path.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        for i in parts.indices.dropFirst().dropLast()
        where parts[i - 1] == "snapshots" && parts[i + 1] == "fs" && !parts[i].isEmpty
            && parts[i].utf8.allSatisfy(isDigit)
        {
            parts[i] = "*"
        }
        return parts.joined(separator: "/")
    }

    /// One path component with its random parts replaced by `*`.
    static func derandomised(_ component: Substring) -> String {
        let c = Array(component.utf8)
        // Kubernetes' atomic writer: `..<date>_<time>.<random>` (secret, configmap and projected volumes)
        if c.count > 2, c[0] == UInt8(ascii: "."), c[1] == UInt8(ascii: "."),
            c[2...].allSatisfy({
                isDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: ".")
            }), c[2...].contains(where: isDigit)
        {
            return "*"
        }
        var out: [UInt8] = []
        var i = 0
        while i < c.count {
            if let n = uuidLength(c, at: i) {
                out.append(UInt8(ascii: "*"))
                i += n
                continue
            }
            // a run of hex digits (at least 16, with at least one digit: not an English word) or of
            // decimal digits (at least 6: timestamps, pids written into names, counters)
            var j = i
            while j < c.count, isHex(c[j]) { j += 1 }
            let run = c[i..<j]
            let bounded = (i == 0 || !isAlnum(c[i - 1])) && (j == c.count || !isAlnum(c[j]))
            if bounded, run.count >= 16, run.contains(where: isDigit) {
                out.append(UInt8(ascii: "*"))
                i = j
                continue
            }
            var k = i
            while k < c.count, isDigit(c[k]) { k += 1 }
            if k - i >= 6 {
                out.append(UInt8(ascii: "*"))
                i = k
                continue
            }
            // copy up to the next place a run could start
            repeat {
                out.append(c[i])
                i += 1
            } while i < c.count && isAlnum(c[i]) && isAlnum(c[i - 1])
        }
        // `*` next to `*` says nothing more than one
        var collapsed: [UInt8] = []
        for b in out where !(b == UInt8(ascii: "*") && collapsed.last == UInt8(ascii: "*")) { collapsed.append(b) }
        return String(decoding: collapsed, as: UTF8.self)
    }

    static func isAlnum(_ c: UInt8) -> Bool {
        isDigit(c) || (c >= UInt8(ascii: "a") && c <= UInt8(ascii: "z"))
            || (c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z"))
    }

    /// The length of a UUID (8-4-4-4-12 hex digits) starting at `i`, if one does.
    static func uuidLength(_ c: [UInt8], at i: Int) -> Int? {
        let groups = [8, 4, 4, 4, 12]
        var j = i
        for (n, g) in groups.enumerated() {
            for _ in 0..<g {
                guard j < c.count, isHex(c[j]) else { return nil }
                j += 1
            }
            if n < 4 {
                guard j < c.count, c[j] == UInt8(ascii: "-") else { return nil }
                j += 1
            }
        }
        guard i == 0 || !isAlnum(c[i - 1]), j == c.count || !isAlnum(c[j]) else { return nil }
        return j - i
    }

    /// Overlay directory prefixes from /proc/mounts text (each overlay mount's `lowerdir`,
    /// `upperdir` and `workdir` paths, cut before their first numeric component).
    public static func overlayPrefixes(mounts: String) -> [String] {
        var out: [String] = []
        for line in mounts.split(separator: "\n") where line.hasPrefix("overlay ") {
            let fields = line.split(separator: " ")
            guard fields.count >= 4 else { continue }
            for option in fields[3].split(separator: ",") {
                guard let eq = option.firstIndex(of: "="), option[..<eq].hasSuffix("dir") else { continue }
                for dir in option[option.index(after: eq)...].split(separator: ":") {
                    let parts = dir.split(separator: "/", omittingEmptySubsequences: false)
                    guard let n = parts.firstIndex(where: { !$0.isEmpty && $0.utf8.allSatisfy(isDigit) }) else {
                        continue
                    }
                    let prefix = parts[..<n].joined(separator: "/") + "/"
                    if prefix.count > 1, !out.contains(prefix) { out.append(prefix) }
                }
            }
        }
        return out
    }
}
