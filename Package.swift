// swift-tools-version: 6.0
// socialdb: a storage-engine-first database for a Twitter-like service.
// See README.md for the two commands a newcomer needs, Docs/ARCHITECTURE.md for the shape.
import PackageDescription

let package = Package(
    name: "socialdb",
    products: [
        .library(name: "StorageEngine", targets: ["StorageEngine"]),
        .library(name: "Social", targets: ["Social"]),
        .executable(name: "socialdb", targets: ["socialdb"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // socialdb serve: the server (SwiftNIO), password hashes (scrypt from swift-crypto's
        // _CryptoExtras), structured logs and metrics. Kept to these four: CI builds them every run.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"4.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
    ],
    targets: [
        // C modules: thin shims over Debian's liburing-dev, libxxhash-dev and libzstd-dev, found
        // with pkg-config.
        .systemLibrary(
            name: "CLibURing",
            pkgConfig: "liburing",
            providers: [.apt(["liburing-dev"])]
        ),
        .systemLibrary(
            name: "CXXHash",
            pkgConfig: "libxxhash",
            providers: [.apt(["libxxhash-dev"])]
        ),
        .systemLibrary(
            name: "CZstd",
            pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]
        ),
        .target(
            name: "StorageEngine",
            dependencies: ["CLibURing", "CXXHash", "CZstd"]
        ),
        .target(
            name: "Social",
            dependencies: [
                "StorageEngine",
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "socialdb",
            dependencies: [
                "Social",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ]
        ),
        // A child process for crash tests: appends to a log and prints what was acknowledged,
        // so a test can kill it with SIGKILL at a random moment and check what survived.
        .target(name: "TortureSupport"),
        .executableTarget(
            name: "socialdb-torture",
            dependencies: ["StorageEngine", "TortureSupport"]
        ),
        .testTarget(
            name: "StorageEngineTests",
            dependencies: ["StorageEngine", "TortureSupport", "socialdb-torture"]
        ),
        .testTarget(
            name: "SocialTests",
            dependencies: ["Social", "socialdb", .product(name: "Logging", package: "swift-log")],
            // Read by the transcript tests through #filePath, not bundled.
            exclude: ["Transcripts"]
        ),
    ],
    swiftLanguageModes: [.v6]
)
