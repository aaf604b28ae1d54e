import BulwarkBPFMaps
import BulwarkBPFObject
import CLibBPF
import Foundation

/// What the running kernel offers the BPF enforcer, probed once, with a precise account of what
/// is missing.
public struct KernelSupport: Sendable, Codable, Equatable {
    /// Active LSMs from /sys/kernel/security/lsm (nil: securityfs not readable).
    public var activeLSMs: [String]?
    public var btf: Bool
    public var bpffs: Bool
    /// A minimal `lsm/file_open` program could be loaded (nil: not tried).
    public var lsmProgramLoads: Bool?
    public var loadError: String?
    public var kernelRelease: String

    public var bpfLSMActive: Bool { activeLSMs?.contains("bpf") ?? false }
    public var usable: Bool { bpfLSMActive && btf && bpffs && lsmProgramLoads == true }

    /// One line per missing piece, each with what to do about it.
    public var problems: [String] {
        var out: [String] = []
        if activeLSMs == nil {
            out.append(
                "securityfs is not mounted or /sys/kernel/security/lsm is unreadable "
                    + "(mount -t securityfs securityfs /sys/kernel/security)")
        } else if !bpfLSMActive {
            out.append(
                "the BPF LSM is not active (\(activeLSMs!.joined(separator: ","))): boot with lsm=...,bpf "
                    + "on a kernel built with CONFIG_BPF_LSM=y")
        }
        if !btf { out.append("no kernel BTF at /sys/kernel/btf/vmlinux (needs CONFIG_DEBUG_INFO_BTF=y)") }
        if !bpffs { out.append("no BPF filesystem at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf)") }
        if lsmProgramLoads == false {
            out.append("the kernel refuses BPF LSM programs: \(loadError ?? "unknown error")")
        }
        return out
    }

    public static func probe(pinRoot: String = "/sys/fs/bpf") -> KernelSupport {
        var s = KernelSupport(
            activeLSMs: nil, btf: false, bpffs: false, lsmProgramLoads: nil, loadError: nil, kernelRelease: "")
        var u = utsname()
        uname(&u)
        s.kernelRelease = withUnsafeBytes(of: &u.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        if let text = try? String(contentsOfFile: "/sys/kernel/security/lsm", encoding: .utf8) {
            s.activeLSMs = text.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ",").map(String.init)
        }
        s.btf = access("/sys/kernel/btf/vmlinux", R_OK) == 0
        var st = statfs()
        s.bpffs = statfs(pinRoot, &st) == 0 && UInt(st.f_type) == 0xcafe_4a11
        if s.btf {
            let (ok, err) = tryLoadLSMProgram()
            s.lsmProgramLoads = ok
            s.loadError = err
        }
        return s
    }

    /// Loads (and unloads) the `bw_file_open` program of the embedded object: the same program the
    /// enforcer needs, so "loads" means the real thing loads.
    static func tryLoadLSMProgram() -> (Bool, String?) {
        let bytes = BPFObject.bulwark
        var result: (Bool, String?) = (false, "embedded object is empty")
        LibBPFLog.capture { log in
            bytes.withUnsafeBytes { raw in
                var opts = bpf_object_open_opts()
                opts.sz = MemoryLayout<bpf_object_open_opts>.size
                guard let obj = bpf_object__open_mem(raw.baseAddress, raw.count, &opts) else {
                    result = (false, "cannot open the BPF object: \(String(cString: strerror(errno)))")
                    return
                }
                defer { bpf_object__close(obj) }
                var prog = bpf_object__next_program(obj, nil)
                while let p = prog {
                    bpf_program__set_autoload(p, String(cString: bpf_program__name(p)) == "bw_file_open")
                    prog = bpf_object__next_program(obj, p)
                }
                var map = bpf_object__next_map(obj, nil)
                while let m = map {
                    // Probe with tiny maps: nothing is pinned or kept.
                    if bpf_map__type(m) != BPF_MAP_TYPE_RINGBUF && bpf_map__max_entries(m) > 1 {
                        bpf_map__set_max_entries(m, 1)
                    }
                    map = bpf_object__next_map(obj, m)
                }
                let rc = bpf_object__load(obj)
                if rc == 0 {
                    result = (true, nil)
                } else {
                    let e = -rc
                    var why = "BPF_PROG_LOAD of lsm/file_open failed: \(String(cString: strerror(e)))"
                    if e == EPERM { why += " (this kernel refuses BPF LSM and trampoline programs)" }
                    if let last = log.lastError { why += "; libbpf: \(last)" }
                    result = (false, why)
                }
            }
        }
        return result
    }
}

/// Routes libbpf's log into memory while a closure runs (libbpf prints to stderr otherwise).
enum LibBPFLog {
    final class Sink: @unchecked Sendable {
        var lines: [String] = []
        var lastError: String? { lines.first { $0.contains("failed") || $0.contains("error") } }
    }
    nonisolated(unsafe) static var current: Sink?
    static let lock = NSLock()

    static func capture<T>(_ body: (Sink) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        let sink = Sink()
        current = sink
        let previous = libbpf_set_print { level, fmt, args in
            guard let fmt, let args, let sink = LibBPFLog.current else { return 0 }
            // the verifier's log is one message: whole with BULWARK_LIBBPF_LOG, else its start
            var buf = [CChar](repeating: 0, count: getenv("BULWARK_LIBBPF_LOG") != nil ? 16 << 20 : 2048)
            let n = vsnprintf(&buf, buf.count, fmt, args)
            let line = String(decoding: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                .trimmingCharacters(in: .whitespacesAndNewlines)
            if level != LIBBPF_DEBUG, !line.isEmpty { sink.lines.append(line) }
            // BULWARK_LIBBPF_LOG=1: libbpf's messages (the verifier's log of a refused program) on stderr
            if getenv("BULWARK_LIBBPF_LOG") != nil { FileHandle.standardError.write(Data((line + "\n").utf8)) }
            return n
        }
        defer {
            libbpf_set_print(previous)
            current = nil
        }
        return try body(sink)
    }
}
