import BulwarkAgent
import BulwarkClient
import BulwarkOCI
import BulwarkPolicy
import Foundation
import Prometheus
import Testing

/// Issue 12 (1): the metrics port is open to every local user. Idle connections, a flood of them,
/// or pipelined requests whose answers are never read must neither stall the node socket nor
/// grow the agent; every listener closes a connection that has not finished its request in 10 s.
@Suite("Listener bounds", .serialized)
struct ListenerTests {
    func tcpConnect(port: UInt16) -> Int32? {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = port.bigEndian
        inet_pton(AF_INET, "127.0.0.1", &addr.sin_addr)
        let ok = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard ok == 0 else {
            close(fd)
            return nil
        }
        return fd
    }

    /// Reads until EOF or `seconds`; nil on timeout (the peer kept the connection open).
    func readToEnd(_ fd: Int32, seconds: Double) -> [UInt8]? {
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, 100) > 0 else { continue }
            let n = read(fd, &buf, buf.count)
            if n <= 0 { return out }
            out += buf[0..<n]
        }
        return nil
    }

    @Test func idleFloodsAndPipelinesAreBounded() throws {
        var node = try Node("listeners")
        defer { node.remove() }
        let port = UInt16(20000 + (getpid() + 7) % 20000)
        node.config.metricsAddress = "127.0.0.1:\(port)"
        let agent = try Agent(config: node.config, logger: quietLogger, metrics: PrometheusCollectorRegistry())
        try agent.start(sources: false)
        defer { agent.stop() }

        // pipelined requests: one answer, then the connection closes (the rest is never read)
        if let fd = tcpConnect(port: port) {
            defer { close(fd) }
            let one = "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
            let many = Array(String(repeating: one, count: 2000).utf8)
            _ = many.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            let answer = String(decoding: readToEnd(fd, seconds: 15) ?? [], as: UTF8.self)
            #expect(answer.components(separatedBy: "HTTP/1.1 200").count - 1 == 1, "\(answer.prefix(200))")
        }

        // 300 idle connections to the metrics port, and 20 silent ones to the node socket
        let idle = (0..<300).compactMap { _ in tcpConnect(port: port) }
        defer { for fd in idle { close(fd) } }
        #expect(idle.count > 16)
        let silent = (0..<20).compactMap { _ in try? UnixSocket.connect(path: node.config.socketPath) }
        defer { for fd in silent { close(fd) } }
        #expect(silent.count == 20)
        // the node socket still answers at once
        let start = Date()
        let status = try NodeClient.call(socketPath: node.config.socketPath, request("status"))
        #expect(status["ok"] == .bool(true))
        #expect(Date().timeIntervalSince(start) < 2)
        // the excess metrics connections were closed as they were accepted
        let closedAtOnce = idle.filter { readToEnd($0, seconds: 0.01) != nil }.count
        #expect(closedAtOnce >= idle.count - 16, "\(closedAtOnce) of \(idle.count) closed")

        // after the 10 s request deadline every idle connection is closed, on both listeners (5 s of
        // slack: under a loaded test run the accepts and timers run late)
        Thread.sleep(forTimeInterval: 10)
        #expect(idle.allSatisfy { readToEnd($0, seconds: 5) != nil })
        #expect(silent.allSatisfy { readToEnd($0, seconds: 5) != nil })
        #expect(httpGet(host: "127.0.0.1", port: port, path: "/metrics")?.contains("200 OK") == true)
    }
}
