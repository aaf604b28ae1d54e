import BulwarkCluster
import BulwarkPolicy
import BulwarkSystem

/// Reads the node config's `inventoryFile` (the one place it is read from disk).
public enum InventorySource {
    public static let maxBytes = 256 << 20

    /// nil when no file is configured; an error names the file, the line and the fix.
    public static func read(_ path: String) -> Result<ClusterInventory?, DiagnosticsError> {
        guard !path.isEmpty else { return .success(nil) }
        // larger than a policy file may be: a cluster's objects
        let text: String
        do {
            text = String(decoding: try RegularFile.read(path, maxBytes: maxBytes), as: UTF8.self)
        } catch {
            return .failure(
                DiagnosticsError([
                    Diagnostic(
                        .error, file: path, line: 1, column: 1, path: "", message: "cannot read: \(error)",
                        hint:
                            "a regular file of at most \(maxBytes >> 20) MiB (docs/policy.md: inventory file), or inventoryFile: \"\""
                    )
                ]))
        }
        do { return .success(try InventoryFile.parse(text, file: path)) } catch { return .failure(error) }
    }
}
