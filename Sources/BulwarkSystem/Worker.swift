import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A loop on its own thread (the kernel interfaces here are blocking or poll-based), stopped by a
/// flag it checks at least every 200 ms. Waits on a POSIX semaphore, not Dispatch: this module is
/// linked into the start-path executables (the hook, the runtime wrapper), which need no Dispatch of
/// their own (measured: no difference in the hook's start time — Swift's concurrency runtime links
/// libdispatch anyway; the semaphore is simply all this needs).
public final class Worker: Sendable {
    let name: String
    private let stopFlag = Atomic<Bool>(false)
    private let done = Semaphore()

    public init(name: String, body: @escaping @Sendable (_ stopped: @Sendable () -> Bool) -> Void) {
        self.name = name
        let start: @Sendable () -> Void = { [self] in
            body { self.stopFlag.load(ordering: .relaxed) }
            self.done.post()
        }
        final class Box: @unchecked Sendable {
            let run: @Sendable () -> Void
            init(_ run: @escaping @Sendable () -> Void) { self.run = run }
        }
        var thread = pthread_t()
        let box = Unmanaged.passRetained(Box(start)).toOpaque()
        let rc = pthread_create(
            &thread, nil,
            { arg in
                let box = Unmanaged<Box>.fromOpaque(arg!).takeRetainedValue()
                box.run()
                return nil
            }, box)
        precondition(rc == 0, "cannot start thread \(name): \(Errno(rc))")
        pthread_detach(thread)
    }

    /// Waits until the loop ends by itself, without asking it to stop (a launched NRI plugin lives
    /// as long as its connection). Any number of callers, any number of times: the semaphore is
    /// handed on.
    public func join() {
        done.wait()
        done.post()
    }

    /// Asks the loop to stop, then waits for it.
    public func stop() {
        stopFlag.store(true, ordering: .relaxed)
        join()
    }
}

/// A counting semaphore (`sem_t`), for threads that are not on Swift's cooperative pool.
final class Semaphore: @unchecked Sendable {
    // sem_t is used only through sem_wait/sem_post, which are thread-safe; the storage never moves
    private let sem = UnsafeMutablePointer<sem_t>.allocate(capacity: 1)

    init(value: UInt32 = 0) { sem_init(sem, 0, value) }

    deinit {
        sem_destroy(sem)
        sem.deallocate()
    }

    func wait() {
        while sem_wait(sem) != 0 && errno == EINTR {}
    }

    func post() { sem_post(sem) }
}
