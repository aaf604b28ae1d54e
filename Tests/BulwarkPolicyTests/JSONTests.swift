import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import Foundation
import Testing

/// The start path's JSON (`JSONValue`): what it reads must mean what Foundation (and Go, for
/// runc) read, what it writes must parse back to the same document, and the caller's key order,
/// numbers and unknown fields survive a rewrite.
@Suite("JSON for config.json and hook state")
struct JSONTests {
    @Test func aRewriteKeepsOrderNumbersAndUnknownFields() throws {
        let text =
            #"{"ociVersion":"1.0.2","z-unknown":{"n":1.5e3,"big":18446744073709551615,"neg":-0.25},"#
            + #""process":{"args":["/bin/sh","-c","echo \"hi\"\n"]},"annotations":{"b":"2","a":"1"},"x":[true,false,null]}"#
        var spec = try #require(JSONValue.parse(text).object)
        #expect(spec.keys == ["ociVersion", "z-unknown", "process", "annotations", "x"])
        #expect(JSONValue.object(spec).text == text, "an untouched document is written back byte for byte")
        var annotations = try #require(spec["annotations"]?.object)
        annotations["bulwark.io/applied-policy"] = .string("p")
        spec["annotations"] = .object(annotations)
        let out = JSONValue.object(spec).text
        #expect(out.contains(#""annotations":{"b":"2","a":"1","bulwark.io/applied-policy":"p"}"#))
        #expect(out.contains(#""big":18446744073709551615"#) && out.contains(#""n":1.5e3"#))
        // and Foundation reads the same document
        let f = try #require(JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any])
        #expect((f["process"] as? [String: Any])?["args"] as? [String] == ["/bin/sh", "-c", "echo \"hi\"\n"])
    }

    @Test(arguments: [
        (#""caf\u00e9 \ud83d\ude00 \/ \t""#, "café 😀 / \t"),
        (#""\u0000\u001f""#, "\u{0}\u{1f}"),
        (#""plain""#, "plain"),
    ])
    func stringsDecodeEscapesAndSurrogatePairs(json: String, expected: String) throws {
        let v = try JSONValue.parse(json)
        #expect(v.string == expected)
        #expect(try JSONValue.parse(v.text) == v, "round trip")
        let f = try JSONSerialization.jsonObject(with: Data(v.text.utf8), options: .fragmentsAllowed) as? String
        #expect(f == expected, "Foundation reads what we wrote")
    }

    @Test(arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "1e", "\"\\ud800\"", "\"\\udc00x\"", "\"a\nb\"", "tru",
        "{\"a\" 1}", "{} {}", "\"\\x\"", "[\"\\u12\"]", "nul", "{1:2}",
    ])
    func malformedDocumentsAreRejected(json: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(json) }
    }

    @Test func nestingIsBounded() {
        let deep = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        let fine = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect((try? JSONValue.parse(fine)) != nil)
    }

    /// 100,000 keys (user annotations can be that many): all kept in order; a late duplicate is
    /// found. (Duplicates are found in one pass; checking each insert against the members would be
    /// quadratic in the number of keys.)
    @Test func manyKeysParseAndALateDuplicateIsFound() throws {
        let n = 100_000
        let keys = (0..<n).map { #""k\#($0)":"v""# }.joined(separator: ",")
        let o = try #require(JSONValue.parse("{" + keys + "}").object)
        #expect(o.members.count == n && o.keys[7] == "k7")
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{" + keys + #","k7":"last"}"#) }
    }

    /// runc (Go) merges duplicate members into one field and crun (yajl) reads the first: a
    /// document with a duplicate is refused, at any depth, also when an escape spells the key.
    @Test func duplicateMembersAreRefused() {
        for text in [
            #"{"a":1,"b":2,"a":3}"#, #"{"x":{"annotations":{},"annotations":{"k":"v"}}}"#,
            #"{"linux":{},"li\u006eux":{"seccomp":null}}"#,
        ] {
            #expect(throws: JSONParseError.self, "\(text)") { try JSONValue.parse(text) }
        }
        let e = try? JSONValue.parse(#"{"a":1,"a":3}"#)
        #expect(e == nil)
        do { _ = try JSONValue.parse(#"{"a":1,"a":3}"#) } catch { #expect(error.message == #"duplicate member "a""#) }
    }

    /// Issue 12 (4): members that runc (Go, case-insensitive with Unicode folding) would read as a
    /// spec field but an exact reader would not are refused; string maps keep exact keys.
    @Test func specsThatRuncReadsDifferentlyAreAmbiguous() throws {
        let ambiguous = [
            #"{"linux":{"seccomp":{}},"Linux":{"seccomp":null}}"#,
            #"{"Annotations":{"bulwark.io/policy":"p"}}"#,
            #"{"process":{"ApparmorProfile":"unconfined"}}"#,
            #"{"annotation\u017f":{"bulwark.io/policy":"p"}}"#,  // ſ folds to s in Go
            #"{"\u212aind":1}"#,  // Kelvin sign folds to k
            #"{"x-ext":1,"X-EXT":2}"#,
            #"{"mounts":[{"destination":"/a"},{"Destination":"/b"}]}"#,
            #"{"linux":{"netDevices":{"eth0":{"Name":"x"}}}}"#,
        ]
        for text in ambiguous {
            let spec = try #require(JSONValue.parse(text).object)
            #expect(SpecShape.ambiguity(in: spec) != nil, "\(text)")
        }
        let fine = [
            #"{"ociVersion":"1.0.2","process":{"apparmorProfile":"p","env":["A=b"]},"linux":{"seccomp":null}}"#,
            #"{"annotations":{"A":"1","a":"2","Ünïcode":"ok"},"linux":{"sysctl":{"net.X":"1","net.x":"2"}}}"#,
            #"{"x-bulwark-test-unknown":{"kept":true}}"#,
        ]
        for text in fine {
            let spec = try #require(JSONValue.parse(text).object)
            #expect(SpecShape.ambiguity(in: spec) == nil, "\(text)")
        }
    }

    /// Every compiled seccomp profile of the conformance examples: `LinuxSeccomp(json:)` reads
    /// what Codable wrote, and `json` writes what Codable reads back.
    @Test func seccompMappingAgreesWithCodable() throws {
        let policy = PolicyParser.inline(
            """
                enforcer: Seccomp
                mode: EnhanceProtect
                enhanceProtect:
                  hardeningRules: [disallow-create-user-ns, disallow-userfaultfd-creation]
                  syscallRawRules:
                  - {names: [chmod], action: SCMP_ACT_ERRNO, errnoRet: 13, args: [{index: 1, value: 2048, valueTwo: 2048, op: SCMP_CMP_MASKED_EQ}]}
            """, name: "j")
        #expect(policy.isValid, "\(policy.errors)")
        var profile = try SeccompCompiler().compile(policy.policies[0])
        profile.flags = ["SECCOMP_FILTER_FLAG_LOG"]
        profile.architectures = ["SCMP_ARCH_X86_64"]
        let codable = try JSONEncoder().encode(profile)
        #expect(try LinuxSeccomp(json: JSONValue.parse(codable)) == profile)
        #expect(try JSONDecoder().decode(LinuxSeccomp.self, from: Data(profile.json.serialized())) == profile)
    }

    @Test func aWrongSeccompFieldNamesItsPath() {
        let bad = try? JSONValue.parse(#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["a"],"action":1}]}"#)
        #expect(throws: LinuxSeccomp.FieldError(path: "syscalls[0].action", expected: "a string")) {
            try LinuxSeccomp(json: bad ?? .null)
        }
    }

    @Test func hookStateIsParsedLeniently() throws {
        let s = try OCIState.parse(
            Array(
                #"{"ociVersion":"1.0.2","id":"c1","status":"creating","pid":42,"bundle":"/b","root":"/r","annotations":{"k":"v","n":3}}"#
                    .utf8))
        #expect(s.id == "c1" && s.pid == 42 && s.bundle == "/b" && s.annotations == ["k": "v"])
        let stopped = try OCIState.parse(Array(#"{"id":"c1","pid":0,"bundle":"/b"}"#.utf8))
        #expect(stopped.pid == nil)
        #expect(throws: OCIState.ParseError.self) { try OCIState.parse(Array(#"{"id":"c1","bundle":"rel"}"#.utf8)) }
    }
}
