// bulwark-fuzz: the harnesses in BulwarkFuzz under libFuzzer (scripts/fuzz.sh builds it with
// BULWARK_FUZZ_BUILD=1: -sanitize=fuzzer,address and FUZZING, and sets BULWARK_FUZZ=NAME). In an
// ordinary build it replays files instead: `bulwark-fuzz NAME FILE|DIR...` (seeds, crash inputs).
import BulwarkFuzz
import CFuzzDriver
import Foundation

let selected: Harness? = {
    guard let name = ProcessInfo.processInfo.environment["BULWARK_FUZZ"] else { return nil }
    return Harness(rawValue: name)
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let harness = selected else {
        let names = Harness.allCases.map(\.rawValue).joined(separator: ", ")
        FileHandle.standardError.write(Data("set BULWARK_FUZZ to one of: \(names)\n".utf8))
        exit(2)
    }
    harness.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
    return 0
}

#if FUZZING
    @main
    enum FuzzMain {
        static func main() {
            var argc = CommandLine.argc
            var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
            exit(LLVMFuzzerRunDriver(&argc, &argv, fuzzOne))
        }
    }
#else
    @main
    enum Replay {
        static func main() {
            let args = CommandLine.arguments.dropFirst()
            guard let name = args.first, let harness = Harness(rawValue: name) else {
                let names = Harness.allCases.map(\.rawValue).joined(separator: ", ")
                print("usage: bulwark-fuzz NAME FILE|DIR...  (NAME: \(names))")
                exit(2)
            }
            var count = 0
            for path in args.dropFirst() {
                var isDir: ObjCBool = false
                _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
                let files =
                    isDir.boolValue
                    ? ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted().map {
                        path + "/" + $0
                    } : [path]
                for f in files {
                    guard let d = FileManager.default.contents(atPath: f) else { continue }
                    harness.run(Array(d))
                    count += 1
                }
            }
            print("\(name): \(count) inputs replayed")
        }
    }
#endif
