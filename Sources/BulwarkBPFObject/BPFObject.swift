import BulwarkOCI
import Foundation

/// The BPF LSM object compiled from `bpf/bulwark.bpf.c` during the build (BPFObjectPlugin) and
/// embedded here: nothing to install next to the binaries.
public enum BPFObject {
    /// The ELF object bytes (BTF included, DWARF stripped).
    public static var bulwark: [UInt8] {
        let text = bulwarkBase64.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
        return [UInt8](Data(base64Encoded: text) ?? Data())
    }

    /// The process tracker (`bpf/tracker.bpf.c`): BTF tracepoints, no LSM programs.
    public static var tracker: [UInt8] {
        let text = trackerBase64.withUTF8Buffer { String(decoding: $0, as: UTF8.self) }
        return [UInt8](Data(base64Encoded: text) ?? Data())
    }

    /// FNV-1a 64 of the object: identifies what is loaded (pinned state records it).
    public static func identity(of bytes: [UInt8]) -> UInt64 { FNV1a.hash(bytes) }
}
