/// A behaviour-modeling recording window of one profile on this node: it opens when the profile is
/// first loaded here and lasts the policy's `modelingOptions.duration` minutes — read anew on every
/// reload, so changing the duration moves the end. Kept in the model's annotations (the model file
/// is the recording's state on disk): an agent restart continues the same window. When it closes
/// the recording is complete, and the profile switches to AlwaysAllow as in vArmor.
public struct RecordingWindow: Sendable, Equatable {
    public static let startedAnnotation = "bulwark.io/recording-started"
    public static let completedAnnotation = "bulwark.io/recording-completed"

    /// Wall-clock seconds when recording began.
    public var started: Double
    /// When it completed (nil while open).
    public var completed: Double?

    public init(started: Double, completed: Double? = nil) {
        self.started = started
        self.completed = completed
    }

    /// The window kept in `model`, if it has one.
    public init?(_ model: BehaviorModel) {
        guard let s = model.annotations[Self.startedAnnotation].flatMap(Double.init) else { return nil }
        self.init(started: s, completed: model.annotations[Self.completedAnnotation].flatMap(Double.init))
    }

    public func end(durationMinutes: Int) -> Double { started + Double(max(durationMinutes, 0)) * 60 }

    /// Open at `now` for a policy of `durationMinutes`.
    public func isOpen(now: Double, durationMinutes: Int) -> Bool {
        completed == nil && now < end(durationMinutes: durationMinutes)
    }

    /// Writes the window into the model's annotations.
    public func store(in model: inout BehaviorModel) {
        model.annotations[Self.startedAnnotation] = Self.text(started)
        model.annotations[Self.completedAnnotation] = completed.map(Self.text)
    }

    static func text(_ t: Double) -> String { String(Int64(t.rounded(.down))) }
}
