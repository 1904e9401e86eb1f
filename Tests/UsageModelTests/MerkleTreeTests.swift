import Foundation
import Testing

@testable import UsageModel

/// `MerkleTree` against the Certificate Transparency test vectors (the eight leaves of RFC 6962's
/// reference tests, kept for RFC 9162), and every inclusion proof of trees up to 40 leaves.
@Suite struct MerkleTreeTests {
    static let leaves: [Data] = [
        Data(), Data([0x00]), Data([0x10]), Data([0x20, 0x21]), Data([0x30, 0x31]), Data([0x40, 0x41, 0x42, 0x43]),
        Data(0x50..<0x58), Data(0x60..<0x70),
    ]

    static let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]

    static func hex(_ data: Data) -> String { data.map { String(format: "%02x", $0) }.joined() }

    @Test func rootsMatchTheReferenceVectors() {
        #expect(Self.hex(MerkleTree.root([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        for size in 1...8 {
            #expect(Self.hex(MerkleTree.root(Array(Self.leaves.prefix(size)))) == Self.roots[size - 1], "size \(size)")
        }
    }

    @Test func theFirstLeafsProofInTheTreeOfEight() throws {
        let proof = try #require(MerkleTree.inclusionProof(of: 0, in: Self.leaves))
        #expect(proof.map(Self.hex) == [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ])
    }

    /// Every leaf's proof verifies in every tree up to 40 leaves; the wrong leaf, index, a size of
    /// another shape or a changed sibling does not.
    @Test func everyProofVerifiesAndNothingElseDoes() throws {
        let leaves = (0..<40).map { Data("event-\($0)".utf8) }
        for size in 1...leaves.count {
            let tree = Array(leaves.prefix(size))
            let root = MerkleTree.root(tree)
            for index in 0..<size {
                let proof = try #require(MerkleTree.inclusionProof(of: index, in: tree))
                let leaf = MerkleTree.leafHash(tree[index])
                #expect(MerkleTree.verify(leafHash: leaf, index: index, size: size, proof: proof, root: root))
                let other = MerkleTree.leafHash(Data("forged".utf8))
                #expect(!MerkleTree.verify(leafHash: other, index: index, size: size, proof: proof, root: root))
                // (A size whose tree has the same shape above this leaf takes the same proof: the
                // signed commitment binds the size to the root.)
                #expect(!MerkleTree.verify(leafHash: leaf, index: index, size: size * 2 + 1, proof: proof, root: root))
                if size > 1 {
                    #expect(!MerkleTree.verify(leafHash: leaf, index: (index + 1) % size, size: size, proof: proof, root: root))
                    var changed = proof
                    changed[changed.count - 1][0] ^= 1
                    #expect(!MerkleTree.verify(leafHash: leaf, index: index, size: size, proof: changed, root: root))
                }
            }
            #expect(MerkleTree.inclusionProof(of: size, in: tree) == nil)
        }
    }
}
