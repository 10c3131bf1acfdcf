// swift-tools-version: 6.0
// socialdb-bench: the benchmark program of socialdb, in a package of its own so that the root
// package (and its test runs) never build it. See README.md beside this file.
import Foundation
import PackageDescription

// The root package is this file's grandparent folder. Its name differs between checkouts (CI
// clones into a fresh folder), so it is computed, never written down: both the path and the
// package identity SwiftPM gives a path dependency (the folder's last path component) come from
// the same URL.
let rootURL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let rootPath = rootURL.path
let rootIdentity = rootURL.lastPathComponent

let package = Package(
    name: "socialdb-benchmarks",
    dependencies: [
        .package(path: rootPath),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // The peers, through their C APIs (Debian libsqlite3-dev, librocksdb-dev, libleveldb-dev;
        // scripts/install-bench-deps installs them). Only this package links them.
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CRocksDB", pkgConfig: "rocksdb", providers: [.apt(["librocksdb-dev"])]),
        .systemLibrary(name: "CLevelDB", providers: [.apt(["libleveldb-dev"])]),
        .executableTarget(
            name: "socialdb-bench",
            dependencies: [
                "CSQLite", "CRocksDB", "CLevelDB",
                .product(name: "StorageEngine", package: rootIdentity),
                .product(name: "Social", package: rootIdentity),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
