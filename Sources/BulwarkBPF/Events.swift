import BulwarkBPFMaps
import BulwarkProfiles
import CBulwarkABI
import CLibBPF
import Foundation

/// Reads the enforcer's ring buffer (pinned `bw_events`). One reader at a time should consume
/// it (the agent); records are removed as they are read. The kernel never waits for it: when the
/// buffer is full, records are dropped and counted (`drops`).
public final class EventReader {
    private let fd: Int32
    private var ring: OpaquePointer?
    private final class Box {
        var batch: [BPFEvent] = []
        var malformed = 0
    }
    private let box = Box()

    public init(enforcer: Enforcer) throws(EnforcerError) {
        let path = enforcer.mapPath(BULWARK_MAP_EVENTS)
        fd = bpf_obj_get(path)
        guard fd >= 0 else { throw .errno("cannot open \(path)", hint: "load the enforcer: bulwark enforcer load") }
        let ctx = Unmanaged.passUnretained(box).toOpaque()
        ring = ring_buffer__new(
            fd,
            { ctx, data, size in
                guard let ctx, let data else { return 0 }
                let box = Unmanaged<Box>.fromOpaque(ctx).takeUnretainedValue()
                if let e = BPFEvent(bytes: UnsafeRawBufferPointer(start: data, count: Int(size))) {
                    box.batch.append(e)
                } else {
                    box.malformed += 1
                }
                return 0
            }, ctx, nil)
        guard ring != nil else {
            close(fd)
            throw .errno("cannot map the event ring buffer")
        }
    }

    deinit {
        if let ring { ring_buffer__free(ring) }
        close(fd)
    }

    /// Waits up to `timeoutMilliseconds` and returns what arrived.
    public func poll(timeoutMilliseconds: Int32) -> [BPFEvent] {
        box.batch.removeAll(keepingCapacity: true)
        _ = ring_buffer__poll(ring, timeoutMilliseconds)
        return box.batch
    }

    /// Reads everything already in the buffer without waiting.
    public func drain() -> [BPFEvent] {
        box.batch.removeAll(keepingCapacity: true)
        _ = ring_buffer__consume(ring)
        return box.batch
    }
}
