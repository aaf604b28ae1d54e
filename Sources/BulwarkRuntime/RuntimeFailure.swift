/// Why the runtime wrapper refuses a container: one line for the runtime to show the user.
public struct RuntimeFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
