import Foundation

/// An IPv4 or IPv6 network (address + prefix length), parsed without libc. IPv4-mapped IPv6
/// (`::ffff:a.b.c.d`) is normalised to IPv4 so one rule covers both spellings.
public struct IPNetwork: Sendable, Hashable, Codable, CustomStringConvertible {
    public enum Family: String, Sendable, Hashable, Codable { case ipv4, ipv6 }

    public var family: Family
    /// 4 or 16 bytes, host bits cleared.
    public var bytes: [UInt8]
    public var prefixLength: Int

    public init(family: Family, bytes: [UInt8], prefixLength: Int) {
        self.family = family
        self.prefixLength = prefixLength
        var b = bytes
        for i in 0..<b.count {
            let keep = max(0, min(8, prefixLength - i * 8))
            b[i] &= keep == 0 ? 0 : UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
        self.bytes = b
    }

    public static func host(_ text: String) -> IPNetwork? {
        if let v4 = parseIPv4(text) { return IPNetwork(family: .ipv4, bytes: v4, prefixLength: 32) }
        if let v6 = parseIPv6(text) { return normalised(v6, prefixLength: 128) }
        return nil
    }

    public static func cidr(_ text: String) -> IPNetwork? {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let len = Int(parts[1]), !parts[1].hasPrefix("+") else { return nil }
        if let v4 = parseIPv4(String(parts[0])), (0...32).contains(len) {
            return IPNetwork(family: .ipv4, bytes: v4, prefixLength: len)
        }
        if let v6 = parseIPv6(String(parts[0])), (0...128).contains(len) {
            return normalised(v6, prefixLength: len)
        }
        return nil
    }

    static let anyV4 = IPNetwork(family: .ipv4, bytes: [0, 0, 0, 0], prefixLength: 0)
    static let anyV6 = IPNetwork(family: .ipv6, bytes: [UInt8](repeating: 0, count: 16), prefixLength: 0)

    private static func normalised(_ v6: [UInt8], prefixLength: Int) -> IPNetwork {
        let mapped = v6[0..<10].allSatisfy { $0 == 0 } && v6[10] == 0xFF && v6[11] == 0xFF
        if mapped && prefixLength >= 96 {
            return IPNetwork(family: .ipv4, bytes: Array(v6[12..<16]), prefixLength: prefixLength - 96)
        }
        return IPNetwork(family: .ipv6, bytes: v6, prefixLength: prefixLength)
    }

    public func contains(_ other: IPNetwork) -> Bool {
        guard family == other.family, other.prefixLength >= prefixLength else { return false }
        return IPNetwork(family: family, bytes: other.bytes, prefixLength: prefixLength).bytes == bytes
    }

    public var description: String {
        let addr: String
        switch family {
        case .ipv4: addr = bytes.map(String.init).joined(separator: ".")
        case .ipv6:
            addr = stride(from: 0, to: 16, by: 2).map {
                String(UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]), radix: 16)
            }
            .joined(separator: ":")
        }
        return "\(addr)/\(prefixLength)"
    }

    static func parseIPv4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var out: [UInt8] = []
        for p in parts {
            guard !p.isEmpty, p.count <= 3, p.allSatisfy(\.isASCII), p.allSatisfy(\.isNumber), let v = UInt8(p) else {
                return nil
            }
            if p.count > 1 && p.hasPrefix("0") { return nil }  // no octal ambiguity
            out.append(v)
        }
        return out
    }

    static func parseIPv6(_ text: String) -> [UInt8]? {
        guard text.count >= 2, text.count <= 45, !text.contains("%") else { return nil }
        var head: [UInt16] = []
        var tail: [UInt16] = []
        var sawGap = false
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ s: String, allowV4Tail: Bool) -> [UInt16]? {
            if s.isEmpty { return [] }
            var out: [UInt16] = []
            let items = s.split(separator: ":", omittingEmptySubsequences: false)
            for (i, item) in items.enumerated() {
                if allowV4Tail && i == items.count - 1 && item.contains(".") {
                    guard let v4 = parseIPv4(String(item)) else { return nil }
                    out.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    out.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard !item.isEmpty, item.count <= 4, let v = UInt16(item, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        if halves.count == 2 {
            sawGap = true
            guard let h = groups(halves[0], allowV4Tail: false), let t = groups(halves[1], allowV4Tail: true) else {
                return nil
            }
            head = h
            tail = t
            guard head.count + tail.count <= 7 else { return nil }
        } else {
            guard let h = groups(text, allowV4Tail: true), h.count == 8 else { return nil }
            head = h
        }
        let all = sawGap ? head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail : head
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}
