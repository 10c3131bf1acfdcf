// swift-tools-version: 6.0
// socialdb-fuzz: libFuzzer targets for socialdb's parsers and on-disk decoders, in a package of
// their own so the root package (and CI) never builds them. `scripts/fuzz` builds them with
// coverage instrumentation and AddressSanitizer and links clang's libFuzzer runtime from the
// Swift toolchain; see README.md beside this file.
import Foundation
import PackageDescription

// The root package is this file's grandparent folder; its name differs between checkouts, so it
// is computed (as Benchmarks/Package.swift does).
let rootURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let rootPath = rootURL.path
let rootIdentity = rootURL.lastPathComponent

let package = Package(
    name: "socialdb-fuzz",
    dependencies: [
        .package(path: rootPath),
    ],
    targets: [
        // The libFuzzer entry (LLVMFuzzerRunDriver) and what every fuzz program shares.
        .target(name: "FuzzSupport"),
        // The decoders of every on-disk format and the import parsers.
        .executableTarget(
            name: "socialdb-fuzz",
            dependencies: [
                "FuzzSupport",
                .product(name: "StorageEngine", package: rootIdentity),
                .product(name: "Social", package: rootIdentity),
            ]
        ),
        // The shell language: tokenizer, command parser and execution against a database. The
        // shell's sources live in the root's `socialdb` executable target, which another package
        // cannot import, so this target compiles those files through symbolic links.
        .executableTarget(
            name: "socialdb-fuzz-shell",
            dependencies: [
                "FuzzSupport",
                .product(name: "StorageEngine", package: rootIdentity),
                .product(name: "Social", package: rootIdentity),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
