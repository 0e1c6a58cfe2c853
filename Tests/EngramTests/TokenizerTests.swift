import Foundation
import XCTest
import Engram

/// Byte-level BPE on the real SmolLM2 vocabulary against ids from the reference tokenizer.
final class TokenizerTests: XCTestCase {
    func testSmolLM2ReferenceIDs() throws {
        let cases = try TokenizerFixtures.smollm2Reference()
        let tokenizer = try TokenizerFixtures.smollm2Tokenizer()
        XCTAssertEqual(cases.count, 32)
        for c in cases {
            let ids = tokenizer.encode(c.text, addSpecial: false, parseSpecial: true)
            XCTAssertEqual(ids, c.ids, "ids of \(c.text.debugDescription)")
            XCTAssertEqual(ids.compactMap { tokenizer.piece($0) }, c.pieces, "pieces of \(c.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(c.ids), c.text, "decoding \(c.text.debugDescription)")
        }
    }
}
