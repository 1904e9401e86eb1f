import Crypto
public import Foundation

/// RFC 9162 (Certificate Transparency 2.0) §2.1 Merkle tree hashing over SHA-256: the root a
/// signed usage commitment carries over the hashes of the events it covers, and the inclusion
/// proofs that show one event is among them.
///
/// A leaf's hash is `SHA-256(0x00 ‖ leaf)`, an interior node's `SHA-256(0x01 ‖ left ‖ right)`
/// (the prefixes keep a leaf from passing for a node); a tree of n > 1 leaves splits at the largest
/// power of two below n. The empty tree's root is `SHA-256("")`.
public enum MerkleTree {
    /// The root over `leaves` (`MTH`).
    public static func root(_ leaves: [Data]) -> Data {
        root(leaves.map(leafHash), in: 0..<leaves.count)
    }

    /// The inclusion proof of leaf `index` (`PATH`): the sibling hashes from the leaf up.
    public static func inclusionProof(of index: Int, in leaves: [Data]) -> [Data]? {
        guard leaves.indices.contains(index) else { return nil }
        return path(index, leaves.map(leafHash), in: 0..<leaves.count)
    }

    /// Whether `proof` shows that a leaf with hash `leafHash` is leaf `index` of a tree of `size`
    /// leaves whose root is `root` (RFC 9162 §2.1.3.2).
    public static func verify(leafHash: Data, index: Int, size: Int, proof: [Data], root: Data) -> Bool {
        guard index >= 0, index < size else { return false }
        var fn = index
        var sn = size - 1
        var hash = leafHash
        for sibling in proof {
            guard sn != 0 else { return false }
            if fn & 1 == 1 || fn == sn {
                hash = nodeHash(sibling, hash)
                if fn & 1 == 0 {
                    while fn & 1 == 0, fn != 0 {
                        fn >>= 1
                        sn >>= 1
                    }
                }
            } else {
                hash = nodeHash(hash, sibling)
            }
            fn >>= 1
            sn >>= 1
        }
        return sn == 0 && hash == root
    }

    public static func leafHash(_ leaf: Data) -> Data {
        Data(SHA256.hash(data: Data([0x00]) + leaf))
    }

    static func nodeHash(_ left: Data, _ right: Data) -> Data {
        Data(SHA256.hash(data: Data([0x01]) + left + right))
    }

    /// The largest power of two below `count` (count > 1).
    static func split(_ count: Int) -> Int {
        var k = 1
        while k << 1 < count { k <<= 1 }
        return k
    }

    static func root(_ hashes: [Data], in range: Range<Int>) -> Data {
        switch range.count {
        case 0: return Data(SHA256.hash(data: Data()))
        case 1: return hashes[range.lowerBound]
        default:
            let middle = range.lowerBound + split(range.count)
            return nodeHash(root(hashes, in: range.lowerBound..<middle), root(hashes, in: middle..<range.upperBound))
        }
    }

    static func path(_ index: Int, _ hashes: [Data], in range: Range<Int>) -> [Data] {
        guard range.count > 1 else { return [] }
        let middle = range.lowerBound + split(range.count)
        if index < middle {
            return path(index, hashes, in: range.lowerBound..<middle) + [root(hashes, in: middle..<range.upperBound)]
        }
        return path(index, hashes, in: middle..<range.upperBound) + [root(hashes, in: range.lowerBound..<middle)]
    }
}
