import BulwarkAgent
import BulwarkBPFMaps
import BulwarkModel
import BulwarkNRI
import BulwarkNRIPlugin
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import BulwarkTestSupport
import Foundation
import NRITestPeer
import Synchronization
import Testing

/// The NRI plugin against the Swift runtime-side peer over a real unix socket.
@Suite("NRI plugin", .serialized)
struct NRITests {
    struct Setup {
        var node: Node
        var peer: RuntimePeer
        var plugin: NRIPlugin
        var worker: Worker
        var store: PolicyStore
        func stop() {
            plugin.stop()
            worker.stop()
            node.remove()
        }
    }

    func setup(
        _ name: String, failurePolicy: NodeConfig.FailurePolicy = .ignore, maxSyncParts: Int = 32,
        maxSyncBytes: Int = 32 << 20, bpf: (any NRIBPFSide)? = nil
    ) throws -> Setup {
        var node = try Node(name)
        node.config.enforcers = [.bpf, .seccomp, .appArmor]
        node.config.failurePolicy = failurePolicy
        try node.write(policy: "web.yaml", shopPolicy)
        let store = PolicyStore(config: node.config, logger: quietLogger)
        store.reload()
        let peer = try RuntimePeer(path: node.dir + "/nri.sock")
        var settings = NRIPlugin.Settings(executableDirectory: "/usr/libexec/bulwark")
        settings.socketPath = peer.path
        settings.index = "10"
        settings.maxSyncParts = maxSyncParts
        settings.maxSyncBytes = maxSyncBytes
        let plugin = NRIPlugin(
            settings: settings, config: node.config, logger: quietLogger, bpf: bpf, policies: { store.activeIndex })
        return Setup(node: node, peer: peer, plugin: plugin, worker: plugin.worker(), store: store)
    }

    /// containerd 2.3 (NRI v0.12): register, configure, split synchronize, a matching pod's
    /// container gets hooks, decision annotations and the seccomp policy; an unmatched pod gets
    /// nothing; start/stop/remove answered.
    @Test func aFullLifecycleOnANewRuntime() throws {
        let s = try setup("nri-new")
        defer { s.stop() }
        let session = try s.peer.accept()
        #expect(session.pluginName == "bulwark")
        #expect(session.pluginIndex == "10")
        let configured = try session.configure(runtime: "containerd", version: "2.3.1", nriVersion: "v0.12.0")
        #expect(configured.events == 0x628)
        // split synchronization: parts with `more` get `more` back and no updates
        let web = nriPod(name: "web-1", namespace: "shop", labels: ["app": "web"])
        let first = try session.synchronize(pods: [web], containers: [], more: true)
        #expect(first.more && first.update.isEmpty)
        let last = try session.synchronize(pods: [], containers: [], more: false)
        #expect(!last.more)

        let created = try session.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
        let adjust = created.adjust
        #expect(adjust.annotations["bulwark.io/profile"] == "varmor-shop-web")
        #expect(adjust.annotations["bulwark.io/applied-policy"] == "shop/web")
        #expect(adjust.annotations["bulwark.io/bpf-profile"] == "varmor-shop-web")
        #expect(adjust.annotations["bulwark.io/failure-policy"] == "Ignore")
        #expect(adjust.hooks.createRuntime.map(\.path) == ["/usr/libexec/bulwark/bulwark-hook"])
        #expect(adjust.hooks.createRuntime.first?.args.prefix(2) == ["bulwark-hook", "createRuntime"])
        #expect(adjust.hooks.poststop.first?.args.prefix(2) == ["bulwark-hook", "poststop"])
        #expect(adjust.hooks.createRuntime.first?.timeout.value == 10)
        let seccomp = adjust.linux.seccompPolicy
        #expect(adjust.linux.hasSeccompPolicy)
        #expect(seccomp.defaultAction == "SCMP_ACT_ALLOW")
        #expect(seccomp.syscalls.contains { $0.names.contains("unshare") && $0.action == "SCMP_ACT_LOG" })

        let other = nriPod(name: "db-0", namespace: "shop", labels: ["app": "db"])
        let untouched = try session.createContainer(pod: other, container: nriContainer(pod: other, name: "db"))
        #expect(!untouched.hasAdjust || untouched.adjust == Nri_Pkg_Api_V1alpha1_ContainerAdjustment())

        var start = Nri_Pkg_Api_V1alpha1_StartContainerRequest()
        start.pod = web
        start.container = nriContainer(pod: web, name: "app", pid: 0, state: .containerRunning)
        _ = try session.call("StartContainer", start, as: Nri_Pkg_Api_V1alpha1_StartContainerResponse.self)
        var remove = Nri_Pkg_Api_V1alpha1_RemoveContainerRequest()
        remove.pod = web
        remove.container = start.container
        _ = try session.call("RemoveContainer", remove, as: Nri_Pkg_Api_V1alpha1_RemoveContainerResponse.self)
        // a method the plugin does not serve: Unimplemented, which makes new runtimes fall back
        switch session.callRaw("PostStartContainer", []) {
        case .failure(let f): #expect(f.code == 12)
        case .success: Issue.record("PostStartContainer answered")
        }
        #expect(s.plugin.runtimeDescription == "containerd 2.3.1 (NRI v0.12)")
    }

    /// containerd 2.0 (NRI v0.8): no seccomp adjustment (it would be silently dropped), events
    /// through StateChange.
    @Test func anOldRuntimeGetsNoSeccompAndUsesStateChange() throws {
        let s = try setup("nri-old")
        defer { s.stop() }
        let session = try s.peer.accept()
        let configured = try session.configure(runtime: "containerd", version: "2.0.5", nriVersion: "")
        #expect(configured.events & ~0x07FF == 0, "no bits an NRI < v0.10 runtime would refuse")
        let web = nriPod(name: "web-2", namespace: "shop", labels: ["app": "web"])
        let created = try session.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
        #expect(!created.adjust.linux.hasSeccompPolicy)
        #expect(created.adjust.annotations["bulwark.io/bpf-profile"] == "varmor-shop-web")
        var change = Nri_Pkg_Api_V1alpha1_StateChangeEvent()
        change.event = .startContainer
        change.pod = web
        change.container = nriContainer(pod: web, name: "app", state: .containerRunning)
        _ = try session.call("StateChange", change, as: Nri_Pkg_Api_V1alpha1_Empty.self)
        #expect(s.plugin.runtimeDescription.contains("NRI v0.8"))
    }

    /// vArmor's pod annotation binds a container to a named BPF profile without a policy.
    @Test func anExplicitVArmorAnnotationBindsWithoutAPolicy() throws {
        let s = try setup("nri-explicit")
        defer { s.stop() }
        let session = try s.peer.accept()
        _ = try session.configure(runtime: "cri-o", version: "1.34.2", nriVersion: "")
        let pod = nriPod(
            name: "legacy", namespace: "ops",
            annotations: ["container.bpf.security.beta.varmor.org/main": "localhost/varmor-ops-legacy"])
        let created = try session.createContainer(pod: pod, container: nriContainer(pod: pod, name: "main"))
        #expect(created.adjust.annotations["bulwark.io/bpf-profile"] == "varmor-ops-legacy")
        #expect(!created.adjust.linux.hasSeccompPolicy)
        let sidecar = try session.createContainer(pod: pod, container: nriContainer(pod: pod, name: "sidecar"))
        #expect(sidecar.adjust.annotations.isEmpty)
    }

    /// Fail-closed: a container whose BPF profile cannot be loaded (no enforcer here) is refused
    /// with an error naming it; the plugin keeps serving.
    @Test func anUnconfinableContainerIsRefusedWhenFailurePolicyIsFail() throws {
        let s = try setup("nri-fail", failurePolicy: .fail)
        defer { s.stop() }
        let session = try s.peer.accept()
        _ = try session.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
        let web = nriPod(name: "web-3", namespace: "shop", labels: ["app": "web"])
        do {
            _ = try session.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
            Issue.record("an unconfinable container was allowed")
        } catch let f as TTRPC.CallFailure {
            #expect(f.code == 9)
            #expect(f.message.contains("shop/web-3/app") && f.message.contains("BPF enforcer is not loaded"))
        }
        let other = nriPod(name: "db-1", namespace: "shop")
        _ = try session.createContainer(pod: other, container: nriContainer(pod: other, name: "db"))
        // a policy may allow its containers to run unconfined (label bulwark.io/failure-policy)
        try s.node.write(
            policy: "web.yaml",
            shopPolicy.replacingOccurrences(
                of: "  namespace: shop\n", with: "  namespace: shop\n  labels: {bulwark.io/failure-policy: Ignore}\n"))
        s.store.reload()
        let allowed = try session.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
        #expect(allowed.adjust.annotations["bulwark.io/failure-policy"] == "Ignore")
    }

    /// A stand-in for the enforcer's pinned maps (the real one is exercised by the kernel tier's
    /// NRI suite): records what the plugin asks of the BPF side.
    final class RecordingBPF: NRIBPFSide {
        struct State {
            var loaded: Set<String> = []
            var bound: [UInt32: String] = [:]
            var calls: [String] = []
            var refuse: String?
        }
        let state = Mutex(State())
        func ensure(policy: Policy?, profile: String) -> String? {
            state.withLock { s in
                s.calls.append("ensure \(profile)")
                if let why = s.refuse { return why }
                s.loaded.insert(profile)
                return nil
            }
        }
        func isBound(pid: UInt32) -> Bool? { state.withLock { $0.bound[pid] != nil } }
        func bind(pid: UInt32, profile: String, podIPs: [String]) throws(EnforcerError) {
            state.withLock { s in
                s.calls.append("bind \(pid) \(profile)" + (podIPs.isEmpty ? "" : " " + podIPs.joined(separator: ",")))
                s.bound[pid] = profile
            }
        }
        func unbind(pid: UInt32) {
            state.withLock { s in
                s.calls.append("unbind \(pid)")
                s.bound[pid] = nil
            }
        }
    }

    /// The plugin's BPF side effects, without pinned maps: a running targeted container found at
    /// Synchronize is bound (armed at first use); one started with its binding missing is bound;
    /// an untargeted one never is; stop unbinds; a profile that cannot be loaded refuses the
    /// container when the failure policy is Fail.
    @Test func bindingsFollowTheContainersLifecycle() throws {
        let bpf = RecordingBPF()
        let s = try setup("nri-bpf", failurePolicy: .fail, bpf: bpf)
        defer { s.stop() }
        let session = try s.peer.accept()
        _ = try session.configure(runtime: "containerd", version: "2.3.1", nriVersion: "v0.12.0")
        let web = nriPod(name: "web-1", namespace: "shop", labels: ["app": "web"], ips: ["10.244.1.5", "fd00::5"])
        let db = nriPod(name: "db-0", namespace: "shop", labels: ["app": "db"])
        _ = try session.synchronize(
            pods: [web, db],
            containers: [
                nriContainer(pod: web, name: "app", pid: 101, state: .containerRunning),
                nriContainer(pod: db, name: "db", pid: 102, state: .containerRunning),
                nriContainer(pod: web, name: "side", pid: 0, state: .containerCreated),
            ], more: false)
        #expect(bpf.state.withLock { $0.bound } == [101: "varmor-shop-web"])
        // the pod's addresses go with the binding (pod-self)
        #expect(
            bpf.state.withLock { $0.calls } == [
                "ensure varmor-shop-web", "bind 101 varmor-shop-web 10.244.1.5,fd00::5",
            ])

        // created with hooks (the hook would bind, with the pod's addresses from the annotation the
        // plugin writes — always, so a value from anyone else never stands); at start the binding
        // is missing: the plugin binds
        let web2 = nriPod(
            name: "web-2", namespace: "shop", labels: ["app": "web"],
            annotations: ["bulwark.io/pod-ips": "6.6.6.6"], ips: ["10.244.1.6"])
        let created = try session.createContainer(pod: web2, container: nriContainer(pod: web2, name: "app"))
        #expect(created.adjust.annotations["bulwark.io/pod-ips"] == "10.244.1.6")
        let noIPs = try session.createContainer(
            pod: nriPod(name: "web-9", namespace: "shop", labels: ["app": "web"]),
            container: nriContainer(pod: nriPod(name: "web-9", namespace: "shop"), name: "app"))
        #expect(noIPs.adjust.annotations["bulwark.io/pod-ips"] == "")
        var start = Nri_Pkg_Api_V1alpha1_StartContainerRequest()
        start.pod = web2
        start.container = nriContainer(pod: web2, name: "app", pid: 201, state: .containerRunning)
        _ = try session.call("StartContainer", start, as: Nri_Pkg_Api_V1alpha1_StartContainerResponse.self)
        #expect(bpf.state.withLock { $0.bound[201] } == "varmor-shop-web")
        // an untargeted container's start binds nothing
        var other = Nri_Pkg_Api_V1alpha1_StartContainerRequest()
        other.pod = db
        other.container = nriContainer(pod: db, name: "db", pid: 301, state: .containerRunning)
        _ = try session.call("StartContainer", other, as: Nri_Pkg_Api_V1alpha1_StartContainerResponse.self)
        #expect(bpf.state.withLock { $0.bound[301] } == nil)

        var stop = Nri_Pkg_Api_V1alpha1_StopContainerRequest()
        stop.pod = web
        stop.container = nriContainer(pod: web, name: "app", pid: 101, state: .containerStopped)
        _ = try session.call("StopContainer", stop, as: Nri_Pkg_Api_V1alpha1_StopContainerResponse.self)
        #expect(bpf.state.withLock { $0.bound } == [201: "varmor-shop-web"])

        bpf.state.withLock { $0.refuse = "the BPF enforcer is not loaded" }
        let web3 = nriPod(name: "web-3", namespace: "shop", labels: ["app": "web"])
        do {
            _ = try session.createContainer(pod: web3, container: nriContainer(pod: web3, name: "app"))
            Issue.record("a container whose profile could not be loaded was allowed")
        } catch let f as TTRPC.CallFailure {
            #expect(f.code == 9 && f.message.contains("shop/web-3/app"))
        }
    }

    /// Malformed bytes close the connection (never a crash); a restarted runtime is found again.
    @Test func malformedInputAndARuntimeRestartAreSurvived() throws {
        var s = try setup("nri-restart")
        defer { s.stop() }
        let session = try s.peer.accept()
        _ = try session.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
        session.sendRaw([0, 0, 0, 0, 0, 0, 0, 4, 1, 2, 3, 4])  // a frame for the reserved connection 0
        #expect(session.waitClosed(timeout: 5), "the plugin kept a connection that sent garbage")
        // it reconnects (backoff 1 s) to the same runtime
        let again = try s.peer.accept(timeout: 10)
        _ = try again.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
        // the runtime restarts: its socket goes away and comes back
        again.close()
        let path = s.peer.path
        s.peer = try RuntimePeer(path: path + ".tmp")  // release the old listener first
        s.peer = try RuntimePeer(path: path)
        let third = try s.peer.accept(timeout: 15)
        let web = nriPod(name: "web-4", namespace: "shop", labels: ["app": "web"])
        _ = try third.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
        let created = try third.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
        #expect(created.adjust.annotations["bulwark.io/profile"] == "varmor-shop-web")
        #expect(s.plugin.connections >= 3)
    }

    /// The ordering hazard of §2.3: Configure arrives before the RegisterPlugin answer (here 1 s
    /// late) and is served; a runtime that never answers within 5 s is given up and retried.
    @Test func configureBeforeTheRegistrationAnswerAndARegistrationTimeout() throws {
        let s = try setup("nri-order")
        defer { s.stop() }
        s.peer.registerDelay = 1
        let session = try s.peer.accept()
        let configured = try session.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
        #expect(configured.events == 0x628, "Configure was not served before the registration answer")
        #expect(eventually(timeout: 5) { s.plugin.isRegistered })
        // now a runtime that never answers RegisterPlugin: the plugin closes after 5 s and retries
        session.close()
        s.peer.registerDelay = 60
        let silent = try s.peer.accept(timeout: 10)
        #expect(silent.waitClosed(timeout: 10), "the plugin waited for ever")
        s.peer.registerDelay = 0
        let third = try s.peer.accept(timeout: 15)
        _ = try third.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
    }

    /// Issue 12 (11): a split Synchronize is bounded in parts and bytes; over a bound nothing more
    /// is kept and nothing is bound at its end, but the sequence is answered normally (pod data is
    /// tenants' data: a refusal would keep the plugin unregistered); the next sequence and the next
    /// connection start afresh.
    @Test func splitSynchronizeIsBounded() throws {
        let s = try setup("nri-sync", maxSyncParts: 3, maxSyncBytes: 64 << 10)
        defer { s.stop() }
        let session = try s.peer.accept()
        _ = try session.configure(runtime: "containerd", version: "2.3.1", nriVersion: "v0.12.0")
        let pod = nriPod(name: "p", namespace: "other", labels: [:])
        for _ in 0..<5 { #expect(try session.synchronize(pods: [pod], containers: [], more: true).more) }
        #expect(try !session.synchronize(pods: [pod], containers: [], more: false).more)
        // bytes: two parts of 40 KiB each exceed 64 KiB; still answered
        let big = nriPod(name: "big", namespace: "other", labels: ["x": String(repeating: "a", count: 40 << 10)])
        #expect(try session.synchronize(pods: [big], containers: [], more: true).more)
        #expect(try session.synchronize(pods: [big], containers: [], more: true).more)
        #expect(try !session.synchronize(pods: [pod], containers: [], more: false).more)
        // the plugin is still registered and serves CreateContainer after an oversized sync
        let web = nriPod(name: "web-1", namespace: "shop", labels: ["app": "web"])
        let created = try session.createContainer(pod: web, container: nriContainer(pod: web, name: "app"))
        #expect(created.adjust.hooks.createRuntime.count == 1, "\(created)")
        #expect(s.plugin.isRegistered)
        // a connection that ends mid-sequence leaves nothing for the next one
        _ = try session.synchronize(pods: [pod], containers: [], more: true)
        _ = try session.synchronize(pods: [pod], containers: [], more: true)
        session.close()
        let next = try s.peer.accept(timeout: 15)
        _ = try next.configure(runtime: "containerd", version: "2.3.1", nriVersion: "v0.12.0")
        for _ in 0..<3 { #expect(try next.synchronize(pods: [pod], containers: [], more: true).more) }
        #expect(try !next.synchronize(pods: [pod], containers: [], more: false).more)
    }

    /// Issue 12 (6): `bulwark nri` launched by the runtime waited for its worker with stop(), which
    /// raised the flag the worker checks before it first connects: a worker thread not yet
    /// scheduled never registered. join() waits without stopping; here a gate holds the worker
    /// back until the joiner has run (the losing order, made certain).
    @Test func joiningAWorkerDoesNotStopAWorkerThatHasNotStarted() {
        let gate = DispatchSemaphore(value: 0)
        let seen = Mutex<Bool?>(nil)
        let w = Worker(name: "t") { stopped in
            gate.wait()
            seen.withLock { $0 = stopped() }
        }
        let joined = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            w.join()
            joined.signal()
        }
        Thread.sleep(forTimeInterval: 0.1)
        gate.signal()
        #expect(joined.wait(timeout: .now() + 5) == .success)
        #expect(seen.withLock { $0 } == false)
        w.stop()  // a second wait returns at once
    }

    /// Issue 12 (6), end to end: `bulwark nri` launched as the runtime launches a plugin (the
    /// socket as fd 3, NRI_PLUGIN_* in a bare environment), 30 times while both cores are busy:
    /// every launch registers (before the fix some exited at once without a word).
    @Test func everyLaunchedBulwarkNRIRegisters() throws {
        let node = try Node("nri-launch")
        defer { node.remove() }
        let config = try node.writeConfig()
        let busy = Atomic<Bool>(true)
        for _ in 0..<2 {
            Thread.detachNewThread {
                var x = 0
                while busy.load(ordering: .relaxed) { x &+= 1 }
                _ = x
            }
        }
        defer { busy.store(false, ordering: .relaxed) }
        var registered = 0
        for _ in 0..<30 {
            var fds: [Int32] = [0, 0]
            try #require(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 3)
            posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
            posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0)
            let path = bulwarkDirectory() + "/bulwark"
            let args: [String] = [path, "nri", "--config", config]
            let env: [String] = ["NRI_PLUGIN_SOCKET=3", "NRI_PLUGIN_NAME=bulwark", "NRI_PLUGIN_IDX=10"]
            let argv: [UnsafeMutablePointer<CChar>?] = args.map { strdup($0) } + [nil]
            let envp: [UnsafeMutablePointer<CChar>?] = env.map { strdup($0) } + [nil]
            var pid: pid_t = 0
            let rc = posix_spawn(&pid, path, &actions, nil, argv, envp)
            posix_spawn_file_actions_destroy(&actions)
            for p in argv + envp { free(p) }
            close(fds[1])
            try #require(rc == 0)
            let session = RuntimePeer.Session.adopt(fd: fds[0])
            if (try? session.waitRegistered(timeout: 5)) != nil { registered += 1 }
            session.close()
            var status: Int32 = 0
            let deadline = Date().addingTimeInterval(10)
            while waitpid(pid, &status, WNOHANG) == 0 {
                if Date() > deadline {
                    kill(pid, SIGKILL)
                    Issue.record("a launched plugin did not end with its connection")
                }
                usleep(10_000)
            }
        }
        #expect(registered == 30, "\(30 - registered) of 30 launches never registered")
    }

    /// A plugin the runtime launched itself gets its socket as fd 3 (here: a socketpair fd).
    @Test func aPreLaunchedPluginUsesItsInheritedSocket() throws {
        var node = try Node("nri-launched")
        defer { node.remove() }
        node.config.enforcers = [.seccomp]
        var fds: [Int32] = [0, 0]
        #expect(socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0, &fds) == 0)
        let settings = try #require(
            NRIPlugin.Settings.launched(
                environment: ["NRI_PLUGIN_SOCKET": "\(fds[1])", "NRI_PLUGIN_NAME": "bulwark", "NRI_PLUGIN_IDX": "05"],
                executableDirectory: "/x"))
        #expect(settings.index == "05")
        let plugin = NRIPlugin(
            settings: settings, config: node.config, logger: quietLogger, policies: { PolicyIndex([]) })
        let worker = plugin.worker()
        defer { worker.stop() }
        let session = RuntimePeer.Session.adopt(fd: fds[0])
        #expect(throws: Never.self) { try session.waitRegistered(timeout: 5) }
        #expect(session.pluginIndex == "05")
        let configured = try session.configure(runtime: "cri-o", version: "1.36.0", nriVersion: "v0.11.0")
        #expect(configured.events == 0x628)
        session.close()
        #expect(session.waitClosed(timeout: 5))
    }
}

@Suite("NRI plugin decisions")
struct PluginCoreTests {
    /// vArmor's and Kubernetes' explicit profile annotations, without any policy.
    @Test func explicitProfileAnnotations() throws {
        var config = NodeConfig()
        config.enforcers = [.bpf, .seccomp, .appArmor]
        let core = PluginCore(config: config, policies: PolicyIndex([]), executableDirectory: "/x")
        let caps = PluginCore.RuntimeCapabilities(nriVersion: "v0.12.0", runtimeName: "", runtimeVersion: "")
        let pod = nriPod(
            name: "p", namespace: "n",
            annotations: [
                "container.apparmor.security.beta.kubernetes.io/a": "localhost/my-aa",
                "container.seccomp.security.beta.varmor.org/s": "localhost/my-sc",
                "container.bpf.security.beta.varmor.org/evil": "localhost/../../etc/x",
            ])
        let aa = core.createContainer(pod: pod, container: nriContainer(pod: pod, name: "a"), capabilities: caps)
        #expect(aa.response.adjust.annotations["bulwark.io/apparmor-profile"] == "my-aa")
        #expect(aa.response.adjust.annotations["bulwark.io/bpf-profile"] == nil)
        let stored = LinuxSeccomp(
            defaultAction: "SCMP_ACT_ERRNO", syscalls: [LinuxSyscall(names: ["read"], action: "SCMP_ACT_ALLOW")])
        let sc = core.createContainer(
            pod: pod, container: nriContainer(pod: pod, name: "s"), capabilities: caps,
            storedSeccomp: { $0 == "my-sc" ? stored : nil })
        #expect(sc.response.adjust.linux.seccompPolicy.defaultAction == "SCMP_ACT_ERRNO")
        // a path in a profile name is not a profile name
        let evil = core.createContainer(pod: pod, container: nriContainer(pod: pod, name: "evil"), capabilities: caps)
        #expect(evil.response.adjust.annotations.isEmpty)
    }

    /// A DefenseInDepth pod policy whose allow-list comes from a behaviour model: without the model
    /// the outcome says why it cannot be confined (the plugin then refuses it); with it, the seccomp
    /// allow-list from the model is the adjustment.
    @Test func aPolicyWithoutItsModelIsUnavailable() throws {
        var config = NodeConfig()
        config.enforcers = [.seccomp]
        let parsed = PolicyParser.parse(
            """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: learned, namespace: n}
            spec:
              target: {kind: Pod, selector: {matchLabels: {app: web}}}
              policy:
                enforcer: Seccomp
                mode: DefenseInDepth
                defenseInDepth: {seccomp: {profileType: BehaviorModel}}
            """, file: "p.yaml")
        let core = PluginCore(config: config, policies: PolicyIndex(parsed.policies), executableDirectory: "/x")
        let caps = PluginCore.RuntimeCapabilities(nriVersion: "v0.12.0", runtimeName: "", runtimeVersion: "")
        let pod = nriPod(name: "p", namespace: "n", labels: ["app": "web"])
        let without = core.createContainer(pod: pod, container: nriContainer(pod: pod, name: "c"), capabilities: caps)
        #expect(without.unavailable?.contains("no behaviour model") == true)
        #expect(!without.response.adjust.linux.hasSeccompPolicy)
        var model = BehaviorModel(name: "varmor-n-learned", namespace: "n")
        model.seccomp = SeccompBehavior(syscalls: ["read", "write", "execve"])
        let with = core.createContainer(
            pod: pod, container: nriContainer(pod: pod, name: "c"), capabilities: caps,
            model: { $0 == "varmor-n-learned" ? model : nil })
        #expect(with.unavailable == nil)
        #expect(with.response.adjust.linux.seccompPolicy.defaultAction == "SCMP_ACT_ERRNO")
        #expect(with.response.adjust.linux.seccompPolicy.syscalls.contains { $0.names.contains("execve") })
    }

    @Test func runtimeVersionsAreInferredWhenNotSent() {
        typealias C = PluginCore.RuntimeCapabilities
        #expect(C(nriVersion: "", runtimeName: "containerd", runtimeVersion: "2.2.1").seccompAdjustment)
        #expect(!C(nriVersion: "", runtimeName: "containerd", runtimeVersion: "v2.1.4").seccompAdjustment)
        #expect(!C(nriVersion: "unknown", runtimeName: "containerd", runtimeVersion: "1.7.20").seccompAdjustment)
        #expect(C(nriVersion: "", runtimeName: "cri-o", runtimeVersion: "1.34.0").seccompAdjustment)
        #expect(!C(nriVersion: "", runtimeName: "cri-o", runtimeVersion: "1.33.2").seccompAdjustment)
        #expect(C(nriVersion: "v0.12.1", runtimeName: "", runtimeVersion: "").perEventCalls)
        #expect(!C(nriVersion: "v0.11.0", runtimeName: "", runtimeVersion: "").perEventCalls)
    }
}

@Suite("Pod addresses")
struct PodAddressTests {
    /// The first IPv4 and the first IPv6 address are the pod's own (IPv4-mapped IPv6 is IPv4, as
    /// the enforcer compares); anything else is ignored.
    @Test func theFirstAddressOfEachFamilyIsThePods() {
        let a = Enforcer.podAddresses(["junk", "fd00::5", " 10.244.1.5", "10.244.1.6", "fd00::6"])
        #expect(a.v4 == [10, 244, 1, 5])
        #expect(a.v6 == [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5])
        let mapped = Enforcer.podAddresses(["::ffff:192.0.2.1"])
        #expect(mapped.v4 == [192, 0, 2, 1] && mapped.v6 == nil)
        let none = Enforcer.podAddresses(["", "10.0.0.256"])
        #expect(none.v4 == nil && none.v6 == nil)
    }
}
