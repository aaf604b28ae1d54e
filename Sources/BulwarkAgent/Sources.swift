import BulwarkBPF
import BulwarkBPFMaps
import BulwarkEvents
import BulwarkSystem
import Foundation
import Logging
import Synchronization

/// Kernel event sources of the agent.
enum EventSources {
    /// The enforcer's ring buffer. Waits for the enforcer to be loaded (it may come later), reads
    /// records in batches, and counts the kernel's own drops (ring buffer full) once a second.
    static func bpf(pipeline: EventPipeline, hub: EventHub, pinPath: String, logger: Logger) -> Worker {
        Worker(name: "bulwark-bpf-events") { stopped in
            let enforcer = Enforcer(pinPath: pinPath)
            var reported = false
            while !stopped() {
                guard enforcer.isLoaded, let reader = try? EventReader(enforcer: enforcer) else {
                    if !reported {
                        logger.info("BPF events: no enforcer loaded; waiting for one", metadata: ["pin": "\(pinPath)"])
                        reported = true
                    }
                    Thread.sleep(forTimeInterval: 0.2)
                    continue
                }
                logger.info("BPF events: reading the enforcer's ring buffer")
                reported = false
                var lastDrops = enforcer.counters()["drops"] ?? 0
                var lastCheck = Date()
                while !stopped() && enforcer.isLoaded {
                    let batch = reader.poll(timeoutMilliseconds: 200)
                    if !batch.isEmpty { pipeline.ingest(bpf: batch) }
                    if Date().timeIntervalSince(lastCheck) >= 1 {
                        let drops = enforcer.counters()["drops"] ?? lastDrops
                        hub.countSourceDrops("bpf", drops &- lastDrops)
                        lastDrops = drops
                        lastCheck = Date()
                    }
                }
            }
        }
    }

    /// AppArmor and seccomp audit records from `/dev/kmsg` (from the end: what the kernel logged
    /// before the agent started is not replayed) or from a log file that is followed across
    /// rotation.
    static func kernelLog(path: String, pipeline: EventPipeline, hub: EventHub, logger: Logger) -> Worker {
        Worker(name: "bulwark-kernel-log") { stopped in
            if path == "audit" {
                do {
                    let socket = try AuditSocket(group: AuditNetlink.readLogGroup)
                    logger.info("kernel audit records: from the audit netlink multicast")
                    readAudit(socket, pipeline: pipeline, hub: hub, logger: logger, stopped: stopped)
                    return
                } catch {
                    logger.warning(
                        "the audit netlink multicast cannot be joined (needs CAP_AUDIT_READ and the host network namespace); reading /dev/kmsg, whose audit lines the kernel rate-limits when auditd does not run",
                        metadata: ["error": "\(error)"])
                }
                readKmsg(path: "/dev/kmsg", pipeline: pipeline, hub: hub, logger: logger, stopped: stopped)
            } else if path == "/dev/kmsg" || path.hasPrefix("/dev/") {
                readKmsg(path: path, pipeline: pipeline, hub: hub, logger: logger, stopped: stopped)
            } else {
                followFile(path: path, pipeline: pipeline, logger: logger, stopped: stopped)
            }
        }
    }

    /// Audit records from the netlink multicast, in batches; records the kernel could not queue
    /// (ENOBUFS) are counted as the source's drops.
    static func readAudit(
        _ socket: AuditSocket, pipeline: EventPipeline, hub: EventHub, logger: Logger, stopped: () -> Bool
    ) {
        var buf: [UInt8] = []
        var lines: [String] = []
        while !stopped() {
            do {
                var n = try socket.receive(into: &buf, timeoutMilliseconds: 200)
                // drain what is queued, then publish the batch
                while n > 0 {
                    lines += AuditNetlink.lines(buf[0..<n])
                    if lines.count >= 256 { break }
                    n = try socket.receive(into: &buf, timeoutMilliseconds: 0)
                }
            } catch {
                if error.rawValue == ENOBUFS {
                    hub.countSourceDrops("audit", 1)
                } else {
                    logger.error("audit netlink read failed", metadata: ["error": "\(error)"])
                    Thread.sleep(forTimeInterval: 0.2)
                }
            }
            if !lines.isEmpty {
                pipeline.ingest(kernelLines: lines)
                lines.removeAll(keepingCapacity: true)
            }
        }
    }

    static func readKmsg(
        path: String, pipeline: EventPipeline, hub: EventHub, logger: Logger, stopped: () -> Bool
    ) {
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            logger.error(
                "kernel log unavailable: AppArmor and seccomp events are not collected",
                metadata: ["path": "\(path)", "error": "\(Errno.current)"])
            return
        }
        defer { close(fd) }
        lseek(fd, 0, SEEK_END)
        var buf = [UInt8](repeating: 0, count: 8192)
        var lastSeq: UInt64?
        var lines: [String] = []
        while !stopped() {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 200) > 0 else { continue }
            // one record per read; drain what is there, then publish the batch
            while true {
                let n = read(fd, &buf, buf.count)
                if n < 0 {
                    if errno == EPIPE {  // records overwritten before we read them
                        hub.countSourceDrops("kmsg", 1)
                        lastSeq = nil
                        continue
                    }
                    break
                }
                if n == 0 { break }
                let record = String(decoding: buf[0..<n], as: UTF8.self)
                if let seq = KernelLogLine.kmsgSequence(record) {
                    if let last = lastSeq, seq > last + 1 { hub.countSourceDrops("kmsg", seq - last - 1) }
                    lastSeq = seq
                }
                if record.contains("audit") { lines.append(record) }
                if lines.count >= 256 { break }
            }
            if !lines.isEmpty {
                pipeline.ingest(kernelLines: lines)
                lines.removeAll(keepingCapacity: true)
            }
        }
    }

    static func followFile(path: String, pipeline: EventPipeline, logger: Logger, stopped: () -> Bool) {
        var fd: Int32 = -1
        var inode: UInt = 0
        var offset: off_t = 0
        var partial: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let maxPartialLine = 1 << 16
        var skippingLongLine = false
        var first = true
        while !stopped() {
            var st = stat()
            if stat(path, &st) == 0, st.st_ino != inode || (fd >= 0 && st.st_size < offset) {
                if fd >= 0 { close(fd) }
                fd = open(path, O_RDONLY | O_CLOEXEC)
                inode = st.st_ino
                // the first file is read from its end; a rotated-in file from its start
                offset = first ? st.st_size : 0
                first = false
                partial = []
                skippingLongLine = false
            }
            guard fd >= 0 else {
                Thread.sleep(forTimeInterval: 0.2)
                continue
            }
            let n = pread(fd, &buf, buf.count, offset)
            guard n > 0 else {
                Thread.sleep(forTimeInterval: 0.1)
                continue
            }
            offset += off_t(n)
            partial += buf[0..<n]
            if skippingLongLine, let newline = partial.firstIndex(of: 0x0A) {
                partial.removeSubrange(...newline)
                skippingLongLine = false
            }
            guard !skippingLongLine, let lastNewline = partial.lastIndex(of: 0x0A) else {
                // a line no audit record can be: dropped up to its end, memory stays bounded
                if partial.count > maxPartialLine {
                    partial.removeAll(keepingCapacity: true)
                    skippingLongLine = true
                    logger.warning(
                        "kernel log line longer than \(maxPartialLine) bytes dropped", metadata: ["path": "\(path)"])
                }
                continue
            }
            let text = String(decoding: partial[...lastNewline], as: UTF8.self)
            partial.removeSubrange(...lastNewline)
            pipeline.ingest(kernelLines: text.split(separator: "\n").map(String.init))
        }
        if fd >= 0 { close(fd) }
    }

    /// Watches the policy directories with inotify and reloads (debounced) on any change; a
    /// directory that does not exist yet is watched once it appears.
    static func policyWatcher(directories: [String], logger: Logger, reload: @escaping @Sendable () -> Void) -> Worker {
        // the watches exist before this returns (before the agent says it has started): an edit
        // right after start-up is never missed while the thread is still being scheduled
        let ifd = inotify_init1(Int32(IN_NONBLOCK | IN_CLOEXEC))
        let mask = UInt32(
            IN_CREATE | IN_DELETE | IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_ATTRIB
                | IN_DELETE_SELF | IN_MOVE_SELF)
        var initial: [Int32: String] = [:]
        if ifd >= 0 {
            for dir in directories {
                let wd = inotify_add_watch(ifd, dir, mask)
                if wd >= 0 { initial[wd] = dir }
            }
        }
        let firstWatches = initial
        return Worker(name: "bulwark-policy-watch") { stopped in
            guard ifd >= 0 else {
                logger.error("inotify unavailable: policy changes need SIGHUP or `bulwark reload`")
                return
            }
            defer { close(ifd) }
            var watched = firstWatches
            var buf = [UInt8](repeating: 0, count: 16384)
            var lastAttempt = Date()
            var dirty: Date?
            while !stopped() {
                if watched.count < directories.count && Date().timeIntervalSince(lastAttempt) >= 1 {
                    lastAttempt = Date()
                    for dir in directories where !watched.values.contains(dir) {
                        let wd = inotify_add_watch(ifd, dir, mask)
                        if wd >= 0 {
                            watched[wd] = dir
                            // a directory that appeared after start-up: its files count now
                            dirty = dirty ?? Date()
                        }
                    }
                }
                var p = pollfd(fd: ifd, events: Int16(POLLIN), revents: 0)
                if poll(&p, 1, 100) > 0 {
                    while true {
                        let n = read(ifd, &buf, buf.count)
                        guard n > 0 else { break }
                        var i = 0
                        while i + 16 <= n {
                            let wd = buf.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i, as: Int32.self) }
                            let m = buf.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self) }
                            let len = buf.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i + 12, as: UInt32.self) }
                            if m & UInt32(IN_IGNORED) != 0 { watched[wd] = nil }
                            // hidden files are not read (an atomic write's temporary file, the
                            // model directory's lock, which every model update opens for writing:
                            // counting them would make each reload cause the next); `..data`, the
                            // link a ConfigMap volume swaps on an update, is counted
                            let hidden =
                                len > 1 && i + 17 < n
                                && buf.withUnsafeBytes {
                                    $0[i + 16] == UInt8(ascii: ".") && $0[i + 17] != UInt8(ascii: ".")
                                }
                            if !hidden { dirty = Date() }
                            i += 16 + Int(len)
                        }
                    }
                }
                // debounce: editors write a file in several steps
                if let d = dirty, Date().timeIntervalSince(d) >= 0.15 {
                    dirty = nil
                    reload()
                }
            }
        }
    }
}
