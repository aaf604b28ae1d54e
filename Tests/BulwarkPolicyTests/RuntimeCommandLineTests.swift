import BulwarkOCI
import Testing

/// Issue 12 (5): every spelling runc or crun accepts for a container-creating verb is read as the
/// runtime reads it (bundle and id), or refused. The expected readings are those of runc 1.1.5
/// and crun 1.8.1 on this machine's Debian packages, checked by running them.
@Suite("Runtime argv as runc and crun read it")
struct RuntimeCommandLineTests {
    /// (argv after the runtime name, bundle the runtime uses or nil for the current directory,
    /// id) — nil id means the runtime fails or Bulwark must refuse.
    static let runc: [([String], String?, String?)] = [
        (["create", "--bundle", "/b", "id"], "/b", "id"),
        (["create", "-b", "/b", "id"], "/b", "id"),
        (["create", "-b=/b", "id"], "/b", "id"),  // Go flags: the fail-open form of issue 12
        (["create", "--bundle=/b", "id"], "/b", "id"),
        (["create", "-bundle", "/b", "id"], "/b", "id"),
        (["create", "--b", "/b", "id"], "/b", "id"),
        (["create", "id", "-b", "/b"], "/b", "id"),  // cli moves flags before the id
        (["create", "id", "--bundle=/b"], "/b", "id"),
        (["create", "-b", "/a", "id", "-b", "/b"], "/b", "id"),  // last wins
        (["create", "--pid-file", "-b", "/b", "id"], nil, nil),  // pid-file "-b": two positionals
        (["create", "-b/b", "id"], nil, nil),  // runc: flag provided but not defined
        (["create", "--bund=/b", "id"], nil, nil),  // no abbreviations in Go
        (["create", "--config", "x.json", "id"], nil, nil),  // crun's option, not runc's
        (["create", "-b", "/b", "--", "id"], "/b", "id"),
        (["create", "--no-pivot=true", "-b", "/b", "id"], "/b", "id"),
        (["create", "--no-pivot=yes", "id"], nil, nil),
        (["--root", "/r", "--log-format=json", "--log", "/l", "create", "--bundle", "/b", "id"], "/b", "id"),
        (["--root", "/r", "--", "create", "-b", "/b", "id"], "/b", "id"),
        (["--weird", "x", "create", "-b", "/b", "id"], nil, nil),  // unknown global: arity unknown
        (["run", "-d", "-b", "/b", "id"], "/b", "id"),
        (["restore", "--image-path", "/i", "-b", "/b", "id"], "/b", "id"),
        (["create", "id", "other"], nil, nil),
    ]

    static let crun: [([String], String?, String?)] = [
        (["create", "--bundle", "/b", "id"], "/b", "id"),
        (["create", "-b", "/b", "id"], "/b", "id"),
        (["create", "-b/b", "id"], "/b", "id"),  // getopt: the rest of the token is the value
        (["create", "-b=/b", "id"], "=/b", "id"),  // and "=/b" is that value
        (["create", "--bund=/b", "id"], "/b", "id"),  // unique prefix
        (["create", "--b", "/b", "id"], "/b", "id"),
        (["create", "--c", "x", "id"], nil, nil),  // ambiguous: config, console-socket
        (["run", "-db", "/b", "id"], "/b", "id"),  // bundled short options
        (["run", "-dbX", "id"], "X", "id"),
        (["create", "id", "-b", "/b"], nil, nil),  // argp in order: options stop at the id
        (["create", "-bundle", "/b", "id"], nil, nil),  // -b "undle", then two positionals
        (["create", "--no-pivot=1", "id"], nil, nil),
        (["create", "-b", "", "id"], nil, nil),  // crun: realpath("") fails
        (["--root=/r", "create", "-b", "/b", "id"], "/b", "id"),
    ]

    @Test func runcReadings() {
        for (args, bundle, id) in Self.runc {
            let c = RuntimeCommandLine.parse(args, dialect: .runc)
            #expect(c.createsContainer, "\(args)")
            if let id {
                #expect(c.refusal == nil && c.bundle == bundle && c.id == id, "\(args): \(c)")
            } else {
                #expect(c.refusal != nil, "\(args) was not refused: \(c)")
            }
        }
    }

    @Test func crunReadings() {
        for (args, bundle, id) in Self.crun {
            let c = RuntimeCommandLine.parse(args, dialect: .crun)
            if let id {
                #expect(c.refusal == nil && c.bundle == bundle && c.id == id, "\(args): \(c)")
            } else {
                #expect(c.refusal != nil, "\(args) was not refused: \(c)")
            }
        }
    }

    @Test func otherVerbsPassThrough() {
        #expect(RuntimeCommandLine.parseAgreed(["delete", "-f", "x"]).refusal == nil)
        #expect(!RuntimeCommandLine.parseAgreed(["exec", "-b", "x", "id", "sh"]).createsContainer)
        // runc prints help and creates nothing for --help, but creates for --help=false
        #expect(
            RuntimeCommandLine.parse(["create", "--help=false", "-b", "/evil", "c"], dialect: .runc).refusal != nil)
        #expect(RuntimeCommandLine.parse(["create", "-h=0", "-b", "/evil", "c"], dialect: .runc).refusal != nil)
    }

    /// The wrapper cannot know from a file name whether `runc` is crun (review finding): a
    /// creating command is read only where both grammars agree, which every engine's spelling does.
    @Test func theWrapperAcceptsOnlyWhatBothRuntimesReadAlike() {
        let agreed: [([String], String, String)] = [
            (["create", "--bundle", "/b", "--pid-file", "/p", "--console-socket", "/s", "id"], "/b", "id"),  // podman
            (
                [
                    "--root", "/r", "--log", "/l", "--log-format", "json", "create", "--bundle", "/b", "--pid-file",
                    "/p", "id",
                ], "/b", "id"
            ),  // containerd shim
            (["create", "--bundle=/b", "id"], "/b", "id"),
            (["create", "-b", "/b", "id"], "/b", "id"),
            (["run", "-d", "--bundle", "/b", "id"], "/b", "id"),
        ]
        for (args, bundle, id) in agreed {
            let c = RuntimeCommandLine.parseAgreed(args)
            #expect(c.refusal == nil && c.bundle == bundle && c.id == id, "\(args): \(c)")
        }
        for args in [
            ["create", "-b=/b", "id"], ["create", "id", "-b", "/b"], ["create", "-bundle", "/b", "id"],
            ["create", "-b/b", "id"], ["create", "--bund=/b", "id"], ["create", "--config", "x.json", "id"],
            ["create", "--help=false", "-b", "/b", "id"],
        ] {
            #expect(RuntimeCommandLine.parseAgreed(args).refusal != nil, "\(args)")
        }
    }
}
