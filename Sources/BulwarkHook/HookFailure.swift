/// Why the hook refuses a container: one line for the runtime to show the user.
public struct HookFailure: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
