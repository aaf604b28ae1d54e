#if canImport(Glibc)
    import Glibc
#endif

/// A failed system call's errno, typed (in the spirit of swift-system's `Errno`): compared by
/// value, printed as strerror text. Every call in this module that can be interrupted is retried
/// on EINTR in one place (`Errno.retrying`), so callers never see EINTR.
public struct Errno: Error, Equatable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: Int32

    public init(_ rawValue: Int32) { self.rawValue = rawValue }

    /// The calling thread's current errno.
    public static var current: Errno { Errno(errno) }

    public static let noSuchFile = Errno(ENOENT)
    public static let exists = Errno(EEXIST)
    public static let permissionDenied = Errno(EACCES)
    public static let wouldBlock = Errno(EAGAIN)

    public var description: String { String(cString: strerror(rawValue)) }

    /// Runs `call` until it does not fail with EINTR; a negative result throws the errno.
    @discardableResult
    public static func retrying<T: BinaryInteger>(_ call: () -> T) throws(Errno) -> T {
        while true {
            let r = call()
            if r >= 0 { return r }
            if errno != EINTR { throw Errno.current }
        }
    }
}
