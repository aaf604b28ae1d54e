import BulwarkPolicy

/// Turns path rules into the rows of the prefix trie, the suffix trie and the compound table
/// (see `bulwark_abi.h`), and evaluates those rows the way the kernel does.
///
/// A trie lookup returns only the longest matching entry, so every entry carries the union of
/// all entries of the same kind whose key is a prefix of its own key ("closure"). Exact paths
/// are prefix keys ending in NUL. Patterns with both a prefix and a suffix become compound
/// rules: their bit is set in the prefix entry and in the suffix entry, and the kernel
/// intersects the two bitmaps.
public enum PathTables {
    static func build(_ p: inout BPFProfile) {
        var prefixes: [Key: Row] = [:]
        var suffixes: [Key: Row] = [:]
        var compound: [BPFProfile.CompoundRule] = []
        var compoundIndex: [BPFProfile.PathKind: Int] = [:]
        var compoundByPattern: [Key: Int] = [:]

        for r in p.pathRules {
            let pathKind: BPFProfile.PathKind
            let nameKind: BPFProfile.PathKind
            (pathKind, nameKind) = r.exec ? (.exec, .execName) : (.file, .fileName)
            switch r.pattern.form {
            case .exact(let text):
                prefixes[Key(kind: pathKind, text: text, exact: true), default: Row()].verdict.formUnion(r.verdict)
            case .greedy(let prefix, let suffix), .basename(let prefix, let suffix):
                let isName: Bool
                if case .basename = r.pattern.form { isName = true } else { isName = false }
                let kind = isName ? nameKind : pathKind
                // Every path starts with "/", so a "/" prefix adds nothing.
                let pre = (!isName && prefix == "/") ? "" : prefix
                if suffix.isEmpty {
                    prefixes[Key(kind: kind, text: pre, exact: false), default: Row()].verdict.formUnion(r.verdict)
                } else if pre.isEmpty {
                    suffixes[Key(kind: kind, text: suffix, exact: false), default: Row()].verdict.formUnion(r.verdict)
                } else {
                    let patternKey = Key(kind: kind, text: pre + "\u{0}" + suffix, exact: false)
                    if let i = compoundByPattern[patternKey] {
                        if let j = compound.firstIndex(where: { $0.kind == kind && $0.index == i }) {
                            compound[j].verdict.formUnion(r.verdict)
                        }
                        continue
                    }
                    let i = compoundIndex[kind, default: 0]
                    compoundIndex[kind] = i + 1
                    compoundByPattern[patternKey] = i
                    compound.append(.init(kind: kind, index: i, pattern: r.pattern.text, verdict: r.verdict))
                    prefixes[Key(kind: kind, text: pre, exact: false), default: Row()].compound.insert(i)
                    suffixes[Key(kind: kind, text: suffix, exact: false), default: Row()].compound.insert(i)
                }
            }
        }
        p.prefixes = closure(prefixes, reversed: false)
        p.suffixes = closure(suffixes, reversed: true)
        p.compound = compound
        for (kind, n) in compoundIndex where n > 1024 {
            p.notes.append("\(n) compound \(kind) patterns exceed the 1024 the kernel tables hold")
        }
    }

    struct Key: Hashable {
        var kind: BPFProfile.PathKind
        var text: String
        var exact: Bool
        /// Bytes as stored in the trie (suffix keys reversed), NUL-terminated when exact.
        func bytes(reversed: Bool) -> [UInt8] {
            let b = Array(text.utf8)
            return (reversed ? Array(b.reversed()) : b) + (exact ? [0] : [])
        }
    }

    struct Row {
        var verdict = BPFProfile.Verdict()
        var compound = Set<Int>()
    }

    /// Every entry gets the union of the entries of its kind whose key is a prefix of its own.
    /// Only prefixes whose length some key has are looked up: O(keys × distinct lengths).
    private static func closure(_ rows: [Key: Row], reversed: Bool) -> [BPFProfile.PathEntry] {
        let keys = rows.keys.sorted { ($0.kind, $0.text, $0.exact ? 1 : 0) < ($1.kind, $1.text, $1.exact ? 1 : 0) }
        var byBytes: [BPFProfile.PathKind: [[UInt8]: Row]] = [:]
        var lengths: [BPFProfile.PathKind: Set<Int>] = [:]
        for k in keys {
            let b = k.bytes(reversed: reversed)
            byBytes[k.kind, default: [:]][b] = rows[k]
            lengths[k.kind, default: []].insert(b.count)
        }
        return keys.map { k in
            var v = BPFProfile.Verdict()
            var c = Set<Int>()
            let kb = k.bytes(reversed: reversed)
            let table = byBytes[k.kind] ?? [:]
            for n in lengths[k.kind] ?? [] where n <= kb.count {
                if let row = table[Array(kb.prefix(n))] {
                    v.formUnion(row.verdict)
                    c.formUnion(row.compound)
                }
            }
            return BPFProfile.PathEntry(kind: k.kind, key: k.text, exact: k.exact, verdict: v, compound: c.sorted())
        }
    }
}

extension BPFProfile {
    /// The verdict the kernel tables give for `path` (full path as seen in the container),
    /// evaluated exactly as the BPF program does: one longest-prefix lookup in each trie per
    /// kind, compound bits intersected. Used as the oracle in tests and by `explain`.
    public func tableVerdict(path: String, exec: Bool) -> Verdict {
        var v = Verdict()
        let name = path.split(separator: "/", omittingEmptySubsequences: false).last.map(String.init) ?? path
        for (kind, subject) in exec ? [(PathKind.exec, path), (.execName, name)] : [(.file, path), (.fileName, name)] {
            let bytes = Array(subject.utf8)
            let pre = Self.longest(prefixes, kind: kind, subject: bytes + [0], reversed: false)
            let suf = Self.longest(suffixes, kind: kind, subject: Array(bytes.reversed()), reversed: true)
            if let pre { v.formUnion(pre.verdict) }
            if let suf { v.formUnion(suf.verdict) }
            let both = Set(pre?.compound ?? []).intersection(suf?.compound ?? [])
            for c in compound where c.kind == kind && both.contains(c.index) { v.formUnion(c.verdict) }
        }
        return v
    }

    private static func longest(_ entries: [PathEntry], kind: PathKind, subject: [UInt8], reversed: Bool) -> PathEntry?
    {
        var best: (PathEntry, Int)?
        for e in entries where e.kind == kind {
            let k = PathTables.Key(kind: e.kind, text: e.key, exact: e.exact).bytes(reversed: reversed)
            if k.count <= subject.count && Array(subject.prefix(k.count)) == k && (best == nil || k.count > best!.1) {
                best = (e, k.count)
            }
        }
        return best?.0
    }

    /// The verdict of the source rules evaluated one by one (the specification).
    public func ruleVerdict(path: String, exec: Bool) -> Verdict {
        var v = Verdict()
        for r in pathRules where r.exec == exec && r.pattern.matches(path) { v.formUnion(r.verdict) }
        return v
    }
}
