// swift-tools-version:6.1
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
        .library(name: "EngramServer", targets: ["EngramServer"]),
        .executable(name: "engram", targets: ["engram"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        // Default traits off: the server needs neither swift-configuration nor full Foundation codecs.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.20.0", traits: []),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.60.0"),
    ],
    targets: [
        .systemLibrary(name: "COpenBLAS", path: "Sources/COpenBLAS"),
        .target(
            name: "CSentencePiece",
            path: "Sources/CSentencePiece",
            cxxSettings: [.unsafeFlags(["-std=c++17"])],
            linkerSettings: [.linkedLibrary("sentencepiece"), .linkedLibrary("stdc++")]
        ),
        // Products over quantized blocks of every GGML type, 16-bit and float rows, and the dequantizer (AVX2
        // chosen at run time), with their thread pool. No contraction into fused multiply-adds beyond the
        // kernels' own: a token's sums must not depend on how many rows share a sweep, whatever the compiler's
        // default (GCC ignores the sources' FP_CONTRACT pragma).
        .target(name: "CDecodeKernels", path: "Sources/CDecodeKernels",
                cSettings: [.unsafeFlags(["-ffp-contract=off"]), .unsafeFlags(["-O2"], .when(configuration: .debug))]),
        .target(
            name: "Engram",
            dependencies: [
                "COpenBLAS", "CSentencePiece", "CDecodeKernels",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: optimized
        ),
        .target(
            name: "EngramServer",
            dependencies: [
                "Engram",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: [.unsafeFlags(["-enable-testing"], .when(configuration: .release))]
        ),
        .executableTarget(
            name: "engram",
            dependencies: [
                "Engram",
                "EngramServer",
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
            dependencies: [
                "Engram", "EngramServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: optimized
        ),
    ],
    swiftLanguageModes: [.v5]
)
