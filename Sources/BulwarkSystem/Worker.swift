import Foundation
import Synchronization

/// A loop on its own thread (the kernel interfaces here are blocking or poll-based), stopped by a
/// flag it checks at least every 200 ms.
public final class Worker: Sendable {
    let name: String
    private let stopFlag = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)

    public init(name: String, body: @escaping @Sendable (_ stopped: @Sendable () -> Bool) -> Void) {
        self.name = name
        let thread = Thread { [self] in
            body { self.stopFlag.load(ordering: .relaxed) }
            self.done.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Waits until the loop ends by itself, without asking it to stop (a launched NRI plugin lives
    /// as long as its connection). Any number of callers, any number of times: the semaphore is
    /// handed on.
    public func join() {
        done.wait()
        done.signal()
    }

    /// Asks the loop to stop, then waits for it.
    public func stop() {
        stopFlag.store(true, ordering: .relaxed)
        join()
    }
}
