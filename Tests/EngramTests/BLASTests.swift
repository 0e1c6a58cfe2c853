import XCTest
@testable import Engram

/// OpenBLAS picks its kernels from the CPU when it loads; a version that does not know the CPU falls
/// back to a generic core several times slower, which the commands point out (and how to choose another).
final class BLASTests: XCTestCase {
    func testCoreAdviceOnlyWhenTheCoreIsBelowTheCPU() throws {
        // Debian 12's OpenBLAS 0.3.21 on an Emerald Rapids CPU: Prescott, with AVX-512 there.
        let advice = try XCTUnwrap(BLAS.coreAdvice(core: "Prescott", vectorBits: 512, requested: nil))
        XCTAssertTrue(advice.contains("OPENBLAS_CORETYPE=SkylakeX") && advice.contains("AVX-512"), advice)
        XCTAssertTrue(try XCTUnwrap(BLAS.coreAdvice(core: "Sandybridge", vectorBits: 256, requested: "")).contains("OPENBLAS_CORETYPE=Haswell"))
        // A core that uses the CPU's vectors, a CPU without them, or the core asked for by name: nothing to say.
        for (core, bits, requested) in [("Haswell", 512, nil), ("SkylakeX", 512, nil), ("Zen", 256, nil), ("Prescott", 0, nil),
                                         ("Prescott", 512, "prescott"), ("armv8", 0, nil)] as [(String, Int, String?)] {
            XCTAssertNil(BLAS.coreAdvice(core: core, vectorBits: bits, requested: requested), "\(core), \(bits) bits, asked for \(requested ?? "-")")
        }
        // A name this OpenBLAS does not have falls back to the generic core too: said so, naming it.
        let unknown = try XCTUnwrap(BLAS.coreAdvice(core: "Prescott", vectorBits: 512, requested: "Cooperlake", chosenByEngram: false))
        XCTAssertTrue(unknown.contains("OPENBLAS_CORETYPE=Cooperlake is not a core this OpenBLAS has") && unknown.contains("OPENBLAS_CORETYPE=SkylakeX"), unknown)
        // The core engram chose is missing (a build without AVX-512 kernels): said so, and Haswell offered.
        let missing = try XCTUnwrap(BLAS.coreAdvice(core: "Prescott", vectorBits: 512, requested: "SkylakeX", chosenByEngram: true))
        XCTAssertTrue(missing.contains("OPENBLAS_CORETYPE=SkylakeX (set by engram) is not a core") && missing.contains("OPENBLAS_CORETYPE=Haswell"), missing)
        XCTAssertTrue(try XCTUnwrap(BLAS.coreAdvice(core: "Prescott", vectorBits: 256, requested: "Haswell", chosenByEngram: true)).contains("A newer OpenBLAS"))
        // The running process: whatever it says names a core to set.
        if let here = BLAS.coreAdvice() { XCTAssertTrue(here.contains("OPENBLAS_CORETYPE="), here) }
    }
}
