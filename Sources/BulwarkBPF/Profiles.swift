import BulwarkBPFMaps
import BulwarkProfiles
import CBulwarkABI
import Foundation

extension Enforcer {
    public struct AppliedProfile: Sendable, Equatable {
        public var name: String
        public var id: UInt32
        public var tables: UInt32
        public var rows: Int
        public var skipped: [String]
        public var replaced: Bool
    }

    /// Loads a compiled profile. A profile of the same name is replaced live: the new rows are
    /// written under a fresh table id, then one update of `bw_profiles` switches every bound
    /// container at once, then the old rows are deleted. On failure the new rows are removed and
    /// the old profile stays in force.
    @discardableResult
    public func apply(_ profile: BPFProfile) throws(EnforcerError) -> AppliedProfile {
        try withLock { () throws(EnforcerError) -> AppliedProfile in
            let names = try map(BULWARK_MAP_NAMES)
            let profiles = try map(BULWARK_MAP_PROFILES)
            let nameKey = try Self.nameKey(profile.name)
            var id: UInt32
            var oldTables: UInt32?
            if let v = names.lookup(key: nameKey), let existing = Bytes.load(UInt32.self, from: v) {
                id = existing
                if let pv = profiles.lookup(key: Bytes.of(id)), let old = Bytes.load(bulwark_profile.self, from: pv) {
                    oldTables = old.tables
                }
            } else {
                let used = Set(profiles.keys().compactMap { Bytes.load(UInt32.self, from: $0) })
                    .union(
                        names.keys().compactMap { names.lookup(key: $0).flatMap { Bytes.load(UInt32.self, from: $0) } })
                id = 1
                while used.contains(id) { id += 1 }
                guard id <= UInt32(BULWARK_MAX_PROFILES) else {
                    throw EnforcerError("no free profile slot (\(BULWARK_MAX_PROFILES) profiles loaded)")
                }
            }
            var meta = try readMeta()
            let tables = meta.next_tables == 0 ? 1 : meta.next_tables
            meta.next_tables = tables &+ 1 == 0 ? 1 : tables &+ 1
            try map(BULWARK_MAP_META).update(key: Bytes.of(UInt32(0)), value: Bytes.of(meta))

            let rows = BPFTableEncoding.rows(profile, tables: tables)
            do throws(EnforcerError) {
                try write(rows)
                try profiles.update(key: Bytes.of(id), value: rows.profile)
                try names.update(key: nameKey, value: Bytes.of(id))
            } catch {
                deleteTables(tables)
                throw error
            }
            if let oldTables, oldTables != tables { deleteTables(oldTables) }
            return AppliedProfile(
                name: profile.name, id: id, tables: tables, rows: rows.count, skipped: rows.skipped,
                replaced: oldTables != nil)
        }
    }

    private func write(_ rows: BPFTableRows) throws(EnforcerError) {
        let sets: [(String, [BPFTableRows.Row])] = [
            (BULWARK_MAP_PATH_PREFIX, rows.pathPrefix), (BULWARK_MAP_PATH_SUFFIX, rows.pathSuffix),
            (BULWARK_MAP_COMPOUND, rows.compound), (BULWARK_MAP_SOCKETS, rows.sockets),
            (BULWARK_MAP_EGRESS4, rows.egress4), (BULWARK_MAP_EGRESS6, rows.egress6),
            (BULWARK_MAP_PORT_RANGES, rows.portRanges), (BULWARK_MAP_MOUNTS, rows.mounts),
        ]
        for (name, list) in sets where !list.isEmpty {
            let m = try map(name)
            for r in list { try m.update(key: r.key, value: r.value) }
        }
    }

    /// Deletes every row whose key carries table id `tables`.
    func deleteTables(_ tables: UInt32) {
        // Offset and byte order of the table id in each key type.
        let layouts: [(String, Int, Bool)] = [
            (BULWARK_MAP_PATH_PREFIX, 4, true), (BULWARK_MAP_PATH_SUFFIX, 4, true), (BULWARK_MAP_COMPOUND, 0, false),
            (BULWARK_MAP_SOCKETS, 0, false), (BULWARK_MAP_EGRESS4, 4, true), (BULWARK_MAP_EGRESS6, 4, true),
            (BULWARK_MAP_PORT_RANGES, 0, false), (BULWARK_MAP_MOUNTS, 0, false),
        ]
        for (name, offset, bigEndian) in layouts {
            guard let m = try? map(name) else { continue }
            for key in m.keys() {
                guard let raw = Bytes.load(UInt32.self, from: Array(key[offset..<(offset + 4)])) else { continue }
                if (bigEndian ? UInt32(bigEndian: raw) : raw) == tables { m.delete(key: key) }
            }
        }
    }

    /// Unloads a profile. Containers bound to it are unbound (no binding may point at nothing).
    public func remove(profile name: String) throws(EnforcerError) {
        try withLock { () throws(EnforcerError) in
            let names = try map(BULWARK_MAP_NAMES)
            let profiles = try map(BULWARK_MAP_PROFILES)
            let nameKey = try Self.nameKey(name)
            guard let v = names.lookup(key: nameKey), let id = Bytes.load(UInt32.self, from: v) else {
                throw EnforcerError("no BPF profile named \(name) is loaded")
            }
            let bindings = try map(BULWARK_MAP_BINDINGS)
            for key in bindings.keys() {
                if let b = bindings.lookup(key: key).flatMap({ Bytes.load(bulwark_binding.self, from: $0) }),
                    b.profile == id
                {
                    bindings.delete(key: key)
                }
            }
            let old = profiles.lookup(key: Bytes.of(id)).flatMap { Bytes.load(bulwark_profile.self, from: $0) }
            names.delete(key: nameKey)
            profiles.delete(key: Bytes.of(id))
            if let old { deleteTables(old.tables) }
        }
    }
}
