import BulwarkCluster
import BulwarkKube
import BulwarkPolicy
import BulwarkSystem
import Dispatch
import Foundation
import Synchronization

/// The CLI's one-shot read of a cluster's addresses (`policy compile --kubeconfig`).
enum ClusterRead {
    static func inventory(kubeconfig path: String, pods: Bool) throws -> ClusterInventory {
        func fail(_ message: String) -> Failure {
            FileHandle.standardError.write(Data("error: \(message)\n".utf8))
            return Failure()
        }
        let endpoint: KubeEndpoint
        do { endpoint = try KubeEndpoint.load(kubeconfig: path) } catch { throw fail(error.description) }
        let client: KubeClient
        do { client = try KubeClient(endpoint: endpoint) } catch { throw fail(error.description) }
        // the CLI is synchronous: wait for the reads on a semaphore
        let result = Mutex<Result<ClusterInventory, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Task.detached {
            let r: Result<ClusterInventory, any Error>
            do { r = .success(try await Reflector.inventory(client: client, pods: pods)) } catch { r = .failure(error) }
            await client.shutdown()
            result.withLock { $0 = r }
            done.signal()
        }
        done.wait()
        switch result.withLock({ $0 }) {
        case .success(let inventory)?: return inventory
        case .failure(let error)?: throw fail("\(endpoint.server): \(error)")
        case nil: throw fail("\(endpoint.server): no answer")
        }
    }
}
