// swift-tools-version:6.0
import PackageDescription

// Numeric code is unusably slow without optimisation, so the library is built with -O even in
// debug configurations (without -wmo there, which breaks incremental debug builds).
let optimized: [SwiftSetting] = [
    // -enable-testing lets the tests reach internal API in the release builds they run in.
    .unsafeFlags(["-Ounchecked", "-enable-testing"], .when(configuration: .release)),
    .unsafeFlags(["-O"], .when(configuration: .debug)),
]

let package = Package(
    name: "Engram",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "Engram", targets: ["Engram"]),
        .executable(name: "engram", targets: ["engram"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .target(
            name: "CSentencePiece",
            path: "Sources/CSentencePiece",
            cxxSettings: [.unsafeFlags(["-std=c++17"])],
            linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("stdc++")]
        ),
        .target(
            name: "Engram",
            dependencies: [
                "COpenBLAS", "CSentencePiece",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: optimized
        ),
        .executableTarget(
            name: "engram",
            dependencies: [
                "Engram",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .executableTarget(
            name: "EngramBench",
            dependencies: ["Engram"],
            path: "benchmarks/EngramBench",
            swiftSettings: optimized
        ),
        .testTarget(
            name: "EngramTests",
            dependencies: ["Engram"],
            swiftSettings: optimized
        ),
    ],
    swiftLanguageModes: [.v5]
)
